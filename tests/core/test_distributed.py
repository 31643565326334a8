import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, run_hasten, run_in_process
from safetensors.torch import load_file

from hasten.core import distributed
from hasten.core.distributed import (
    default_device,
    is_main_process,
    rank_from_env,
    resolve_device,
    world_size_from_env,
)
from hasten.core.errors import ConfigError

ARGS = ["train", "--task", "digits", "--budget", "30steps", "--device", "cpu", "--quiet"]


@pytest.mark.slow
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
    # sharded evaluation: the ranks' partial counts add up to exactly what one process
    # scores on the whole test set with the final weights
    from hasten.bench.vision import _data, accuracy_on
    from hasten.models.vision import build_model

    model = build_model("convnet3", _data("digits"), width=32, depth=2)
    model.load_state_dict(b)
    model.eval()
    with torch.no_grad():
        single = accuracy_on(_data("digits").test)(model)
    result = json.loads((two / "result.json").read_text())
    assert result["metrics"]["accuracy"] == single["accuracy"]


def test_device_is_checked_in_one_line(monkeypatch):
    with pytest.raises(ConfigError, match=r"^unknown device 'tpu'; use cpu, cuda, cuda:N or mps$"):
        distributed.init("tpu")
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match=r"^device 'cuda' asked for, but (this torch build "
                                              r"has no CUDA support|no CUDA GPU is visible); "
                                              r"use --device cpu$"):
            distributed.init("cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_rank_helpers_read_torchrun_variables(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_from_env() == 0 and world_size_from_env() == 1 and is_main_process()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rank_from_env() == 3 and world_size_from_env() == 4 and not is_main_process()


def test_cli_device_errors_are_one_line(tmp_path):
    proc = run_in_process("train", "--task", "digits", "--budget", "2steps", "--device",
                          "tpu", "--quiet", "--out", tmp_path / "r")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("hasten: error: unknown device 'tpu'; use cpu, cuda, "
                                   "cuda:N or mps")
