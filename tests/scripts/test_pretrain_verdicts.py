"""scripts/pretrain_verdicts.py: the verdict table from the committed ladder records, and bad
input as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pretrain_verdicts.py"
PARTS = [ROOT / "benchmarks" / "results" / f"pretrain-verdicts-part{n}-20261207.json"
         for n in (1, 2)]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_committed_parts_give_their_verdicts():
    out = run(*map(str, PARTS), "--loss-rows", "4096")
    assert out.returncode == 0, out.stderr
    lines = {line.split(" | ")[0].lstrip("| "): line for line in out.stdout.splitlines()
             if line.startswith("| ")}
    assert "-0.044 [-0.116, +0.029] | no difference" in lines["original-data"]
    assert "+2.329 [+2.283, +2.374] | worse" in lines["original-setup"]
    assert "+0.746 [+0.713, +0.780] | worse" in lines["original-arch"]
    assert "the plan came first" in out.stdout


def test_a_missing_file_and_a_row_in_two_files_are_one_line_each(tmp_path):
    missing = run(str(tmp_path / "none.json"))
    twice = run(str(PARTS[0]), str(PARTS[0]))
    for out, says in ((missing, "ladder results file not found"),
                      (twice, "appears in more than one file")):
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
