"""Under DDP the levers choose as one process does: two ranks of micro-batch 8 draw, prune and
backpropagate exactly the rows one process of micro-batch 16 does (per-example losses are
gathered across ranks by example id; selective backprop picks from the whole global draw)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_two_ranks_make_the_selections_of_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
           "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(HERE / "ddp_run.py"), str(tmp_path / "one"),
                          "16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(HERE / "ddp_run.py"),
                          str(tmp_path / "two"), "8"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    single = json.loads((tmp_path / "one" / "rank-0.json").read_text())
    ranks = [json.loads((tmp_path / "two" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert len(single["kept"]) == len(ranks[0]["kept"]) == len(ranks[1]["kept"]) > 0
    for key in ("drawn", "kept"):
        for step, rows in enumerate(single[key]):
            assert ranks[0][key][step] + ranks[1][key][step] == rows, (key, step)
    for name, values in single["weights"].items():
        torch.testing.assert_close(torch.tensor(ranks[0]["weights"][name]),
                                   torch.tensor(values), atol=1e-5, rtol=0)
