"""scripts/iteration_cost.py: a suite's methods trained in turn on one core, written as a
record `hasten report` reads, each lever's step cost over the baseline's: by default over three
instances a method with Welch's interval between them; with one instance, its quartiles."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from hasten.bench.records import load_record


def _run(*args, out):
    return subprocess.run(
        [sys.executable, "scripts/iteration_cost.py", "--suite", "demo", "--task", "digits",
         "--baseline", "fp32", "--levers", "for-loop-adamw", "--quick", "--block", "5", *args,
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_script_writes_a_record_of_step_cost_ratios_over_instances(tmp_path):
    out = tmp_path / "ic.json"
    proc = _run(out=out)
    assert proc.returncode == 0, proc.stderr
    record = load_record(out)
    assert record["suite"] == "iteration-cost" and record["status"] == "complete"
    assert "python scripts/iteration_cost.py --suite demo" in record["command"]
    assert record["notes"]["instances"] == 3
    (run,) = record["runs"]
    rows = run["notes"]["report_rows"]
    assert run["method"] == "for-loop-adamw" and run["baseline"] == "fp32"
    assert rows["step cost ratio, 95% low"] <= run["final"] <= rows["step cost ratio, 95% high"]
    assert rows["instances"] == 3 and rows["one-off seconds"] == 0.0
    assert set(record["blocks"]) == {f"{m}#{i}" for m in ("fp32", "for-loop-adamw")
                                     for i in range(3)}
    proc = _run(out=out)
    assert proc.returncode == 2 and "exists: records are never replaced" in proc.stderr
    again = tmp_path / "ic-again.json"
    proc = subprocess.run([sys.executable, "scripts/iteration_cost.py", "--reread", str(out),
                           "--out", str(again)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    second = load_record(again)
    assert second["read_again_from"] == "ic.json" and second["blocks"] == record["blocks"]
    assert second["notes"]["measured"]["command"] == record["command"]
    assert [r["final"] for r in second["runs"]] == [r["final"] for r in record["runs"]]


def test_one_instance_keeps_the_quartiles_of_its_rounds(tmp_path):
    out = tmp_path / "ic.json"
    proc = _run("--instances", "1", out=out)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_record(out)["runs"]
    rows = run["notes"]["report_rows"]
    assert rows["step cost ratio, lower quartile"] <= run["final"] <= \
        rows["step cost ratio, upper quartile"]
    assert rows["rounds"] >= 5
    proc = _run("--instances", "0", out=tmp_path / "none.json")
    assert proc.returncode == 2 and proc.stderr == \
        "hasten: error: --instances must be >= 1 and a method's name has no '#'\n"


def test_choices_for_a_suite_without_them_are_one_line_and_exit_2(tmp_path):
    choices = tmp_path / "choices.json"
    choices.write_text('{"choices": {"levers": {}, "plain": null}}')
    proc = subprocess.run(
        [sys.executable, "scripts/iteration_cost.py", "--suite", "demo", "--task", "digits",
         "--baseline", "fp32", "--levers", "bf16", "--quick", "--choices", str(choices),
         "--out", str(tmp_path / "ic.json")], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "hasten: error: --choices: suite demo has no choices to set\n"
    assert not (tmp_path / "ic.json").exists()


def test_records_of_one_instance_each_join_as_instances(tmp_path):
    parts = [tmp_path / f"ic-{k}.json" for k in range(3)]
    for part in parts[:2]:
        proc = _run("--instances", "1", out=part)
        assert proc.returncode == 0, proc.stderr
    joined = tmp_path / "joined.json"
    proc = subprocess.run([sys.executable, "scripts/iteration_cost.py", "--reread",
                           *map(str, parts[:2]), "--out", str(joined)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    record, firsts = load_record(joined), [load_record(p) for p in parts[:2]]
    assert record["read_again_from"] == ["ic-0.json", "ic-1.json"]
    assert record["notes"]["instances"] == 2
    assert [m["command"] for m in record["notes"]["measured"]] == \
        [f["command"] for f in firsts]
    assert record["blocks"] == {f"{name}#{k}": blocks for k, first in enumerate(firsts)
                                for name, blocks in first["blocks"].items()}
    (run,) = record["runs"]
    rows = run["notes"]["report_rows"]
    assert rows["instances"] == 2
    assert rows["step cost ratio, 95% low"] <= run["final"] <= rows["step cost ratio, 95% high"]
    # other arms are not instances of these: refused in one line, nothing written
    proc = subprocess.run(
        [sys.executable, "scripts/iteration_cost.py", "--suite", "demo", "--task", "digits",
         "--baseline", "fp32", "--levers", "bf16", "--quick", "--block", "5",
         "--instances", "1", "--out", str(parts[2])], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "scripts/iteration_cost.py", "--reread",
                           str(parts[0]), str(parts[2]), "--out", str(tmp_path / "no.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"hasten: error: --reread: {parts[2]} measured other methods, task "
                           f"or block than {parts[0]}; only records of the same arms are "
                           "joined\n")
    assert not (tmp_path / "no.json").exists()
