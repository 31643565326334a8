"""scripts/stack_verdict.py: the stack's verdict from a quality record and a step-cost record,
printed with its interval; a record measured against another baseline is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HEAD = {"schema_version": 1, "suite": "stack", "created": "2026-12-07T00:00:00+00:00",
        "machine": "m", "code": "abc", "command": "c", "status": "complete"}


def curve(crosses):
    return [[0.0, {"steps": s}, 90.0 if s >= crosses else 80.0] for s in range(10, 201, 10)] \
        + [[0.0, {"steps": 200}, 90.0]]


def write(tmp_path, costs_baseline="tuned-baseline"):
    runs = [{"task": "t", "method": m, "seed": s, "final": 90.0 + 0.1 * s, "curve": curve(c),
             "work": {"steps": 200}} for m, cs in (("tuned-baseline", [100, 120, 110]),
                                                     ("stack", [40, 50, 45]),
                                                     ("stack-minus-bf16", [40, 50, 45]))
            for s, c in enumerate(cs)]
    rows = {"one-off seconds": 0.2, "baseline ms per step": 20.0}
    costs = {**HEAD, "notes": {"baseline": {"method": costs_baseline, "one_off_seconds": 0}},
             "runs": [{"task": "t", "method": m, "final": r, "notes": {"report_rows": rows}}
                      for m, r in (("stack", 0.5), ("stack-minus-bf16", 0.8))]}
    (tmp_path / "q.json").write_text(json.dumps({**HEAD, "runs": runs}))
    (tmp_path / "c.json").write_text(json.dumps(costs))
    return [sys.executable, str(ROOT / "scripts" / "stack_verdict.py"), str(tmp_path / "q.json"),
            str(tmp_path / "c.json"), "--margin", "0.3"]


def test_prints_the_stack_verdict_and_each_levers_removal_cost(tmp_path):
    out = subprocess.run(write(tmp_path), capture_output=True, text=True, check=True,
                         env=ENV).stdout
    assert "target 89.70" in out
    assert "  stack: relative time by seed 0: 0.300, 1: 0.292, 2: 0.318\n" in out
    assert "stack: 0.303 [0.270, 0.337], passes" in out and "], passes (at most 0.6x" in out
    assert "bf16: removal cost 0.4" in out and ": pays" in out


def test_costs_against_another_baseline_are_one_line_and_exit_2(tmp_path):
    done = subprocess.run(write(tmp_path, "baseline"), capture_output=True, text=True, env=ENV)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("hasten: error: the step costs were measured against 'baseline', "
                           "not 'tuned-baseline'\n")


def test_out_keeps_the_printed_verdict_as_a_record_and_never_replaces_one(tmp_path):
    cmd = [*write(tmp_path), "--out", str(tmp_path / "v.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV).stdout
    assert out.endswith(f"wrote {tmp_path / 'v.json'}\n")
    record = json.loads((tmp_path / "v.json").read_text())
    assert record["suite"] == "stack-verdict" and record["status"] == "complete"
    assert record["inputs"] == {"quality": "q.json", "costs": "c.json"}
    assert "python scripts/stack_verdict.py" in record["command"]
    assert round(record["target"], 2) == 89.70
    stack = {r["method"]: r for r in record["runs"]}["stack"]
    assert stack["final"] == 0.3 and stack["notes"]["reached"] == 3
    assert {k: round(v, 3) for k, v in stack["notes"]["by_seed"].items()} == \
        {"0": 0.300, "1": 0.292, "2": 0.318}
    assert record["stack"]["verdict"] == "passes"
    assert round(record["stack"]["interval"]["mean"], 3) == 0.303
    assert record["removal_costs"]["bf16"]["verdict"] == "pays"
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.endswith(f"{tmp_path / 'v.json'} exists: records are never replaced\n")
