"""scripts/gpu_check.sh in its CPU dry run: every part runs and writes its file, so the GPU
run cannot rot unseen."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hasten.bench.gpu_check import PEAK_BF16, peak_flops

ROOT = Path(__file__).resolve().parents[2]
GUTENBERG = ROOT.parent / "shared" / "data" / "gutenberg" / "11-0.txt"


def test_peak_flops():
    import torch

    assert peak_flops(torch.device("cpu"), None) is None
    assert peak_flops(torch.device("cpu"), 5e14) == 5e14
    assert PEAK_BF16["H200"] == 989e12


@pytest.mark.slow
def test_dry_run_writes_every_part(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    text = GUTENBERG.read_text(encoding="utf-8-sig")
    for i, name in enumerate(["Carroll__A.txt", "Carroll__B.txt", "Wells__C.txt"]):
        (books / name).write_text(text[20_000 * (i + 1):20_000 * (i + 2)])
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable,
           "HASTEN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "--corpus", str(books)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in out.iterdir()} >= {"env.json", "throughput.json", "ladder.json",
                                               "summary.json", "log.txt"}
    summary = json.loads((out / "summary.json").read_text())
    assert "error" not in summary["throughput"] and "error" not in summary["ladder"]
    rows = json.loads((out / "throughput.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["ours-sparse-static", "hf-bert"]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["flops_per_step"] > 0 and r["mfu"] is None
    ladder = json.loads((out / "ladder.json").read_text())
    assert [r["method"] for r in ladder["runs"]] == ["crammed", "electra"]
    assert all(r["rung_flops"] == 5e9 and r["work"]["flops"] >= 5e9 for r in ladder["runs"])
    assert "wrote" in (out / "log.txt").read_text()
