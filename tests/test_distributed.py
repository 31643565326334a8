import os
import subprocess
import sys

import torch
from conftest import ROOT, run_hasten
from safetensors.torch import load_file

ARGS = ["train", "--task", "digits", "--budget", "30steps", "--device", "cpu", "--quiet"]


def test_two_process_ddp_equals_one_process_with_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_hasten(*ARGS, "--micro-batch", "64", "--out", one, check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hasten", *ARGS, "--micro-batch", "32", "--out", str(two)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
    # only rank 0 writes: one metrics file, one checkpoint folder at most
    assert (two / "metrics.jsonl").exists()
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
