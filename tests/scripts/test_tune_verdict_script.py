"""scripts/tune_verdict.py: the tune evaluation's reading from its part records, printed as
`hasten.bench.tune_verdict` words it and kept as a record a page can cite; a run given twice
is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hasten.bench.tune_verdict import FINGERPRINTS

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HEAD = {"schema_version": 1, "suite": "tune", "created": "2026-12-07T00:00:00+00:00",
        "machine": "m", "code": "abc", "command": "c", "status": "complete"}


def run(method, seed, reach_at, final):
    """A fashion-mnist run: 80.0 at 100 s, `final` from `reach_at` on."""
    return {"task": "fashion-mnist", "method": method, "seed": seed, "higher_is_better": True,
            "metric": "accuracy", "final": final,
            "curve": [[100.0, {}, 80.0], [reach_at, {}, final], [1200.0, {}, final]],
            "notes": {"recipe_fingerprint": FINGERPRINTS["fashion-mnist"]}}


def write(tmp_path):
    parts = []
    for seed, base in enumerate((90.0, 91.0, 92.0)):
        runs = [run("baseline", seed, 1100.0, base), run("throughput-autotune", seed, 900.0, 92.0),
                run("tuned", seed, 600.0 + 100 * seed, 92.5)]
        parts.append(tmp_path / f"p{seed}.json")
        parts[-1].write_text(json.dumps({**HEAD, "runs": runs}))
    oracle = [run("oracle", s, 500.0, 91.5) for s in (0, 1)]
    parts.append(tmp_path / "o.json")
    parts[-1].write_text(json.dumps({**HEAD, "runs": oracle}))
    return [sys.executable, str(ROOT / "scripts" / "tune_verdict.py"), *map(str, parts)]


def test_prints_the_reading_and_keeps_it_as_a_record(tmp_path):
    cmd = [*write(tmp_path), "--out", str(tmp_path / "v.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV).stdout
    assert ("fashion-mnist (3 seed(s)): target 91; time to it tuned 700 s, throughput 900 s, "
            "baseline 1100 s; final tuned 92.5, baseline 91 (seeds 90-92); fast, no worse; "
            "oracle 2 of 3 seeds\n") in out
    assert "verdict: incomplete (3 of 12 parts)\n" in out
    record = json.loads((tmp_path / "v.json").read_text())
    assert record["suite"] == "tune-verdict" and record["verdict"] == "incomplete"
    assert record["inputs"] == ["p0.json", "p1.json", "p2.json", "o.json"]
    assert "python scripts/tune_verdict.py" in record["command"]
    rows = {r["method"]: r for r in record["runs"]}
    assert rows["tuned"]["final"] == 92.5 and rows["tuned"]["notes"]["time_to_target"] == 700.0
    assert rows["oracle"]["notes"] == {"time_to_target": 500.0, "seeds": [0, 1]}
    assert rows["baseline"]["notes"]["time_to_target"] == 1100.0  # seed 0 never: B; median
    fashion = record["tasks"]["fashion-mnist"]
    assert fashion["target"] == 91.0 and fashion["fast"] and fashion["oracle_seeds"] == 2
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.endswith(f"{tmp_path / 'v.json'} exists: records are never replaced\n")


def test_a_run_given_twice_is_one_line_and_exit_2(tmp_path):
    cmd = write(tmp_path)
    done = subprocess.run([*cmd, cmd[2]], capture_output=True, text=True, env=ENV)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("hasten: error: p0.json repeats fashion-mnist / baseline / seed 0, "
                           "already in p0.json\n")


def test_a_later_reading_names_the_one_it_supersedes(tmp_path):
    cmd = [*write(tmp_path), "--out", str(tmp_path / "v2.json")]
    subprocess.run([*cmd, "--supersedes", "v1.json"], capture_output=True, check=True, env=ENV)
    assert json.loads((tmp_path / "v2.json").read_text())["supersedes"] == "v1.json"
    cmd[-1] = str(tmp_path / "v3.json")
    subprocess.run(cmd, capture_output=True, check=True, env=ENV)
    assert "supersedes" not in json.loads((tmp_path / "v3.json").read_text())
    alone = subprocess.run([*write(tmp_path), "--supersedes", "v1.json"], capture_output=True,
                           text=True, env=ENV)
    assert alone.returncode == 2 and alone.stdout == ""
    assert alone.stderr.endswith("--supersedes names what the --out record replaces: give --out\n")
