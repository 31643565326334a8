"""`hasten bench` beyond the plain suites: `chaos` (its own settings, a record `hasten report`
reads, exit 1 when the run was not bit-identical), `infobatch` as a harness suite with its
own options, the thread count chosen and recorded, `--repeat-flagged`, timing flags in the
report, and `hasten list` naming the new commands and suites."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import RECORD_HEADER, help_text
from own_tasks import write_task

import hasten.bench.chaos as chaos
import hasten.bench.harness as harness
from hasten.bench.chaos import ChaosRecord
from hasten.bench.machine import MARKER
from hasten.bench.records import load_record
from hasten.cli import main


@pytest.fixture
def threads():
    """Commands set torch's threads; put them back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_chaos_writes_a_record_report_reads_and_exits_by_its_verdict(tmp_path, monkeypatch,
                                                                     capsys):
    seen = {}

    def fake(config, say=None):
        seen["config"] = config
        say("reference run: 30 steps, 1 process(es)")
        return ChaosRecord(kills=1, kills_in_save=1, resumes=1, fallbacks=0, identical=True,
                           seconds=2.5)

    monkeypatch.setattr(chaos, "run_chaos", fake)
    out = tmp_path / "chaos"
    assert main(["bench", "chaos", "--kills", "1", "--steps", "30", "--set", "save_pause=0.1",
                 "--out", str(out)]) == 0
    assert (seen["config"].kills, seen["config"].steps, seen["config"].save_pause) == (1, 30, 0.1)
    text = capsys.readouterr().out
    assert "reference run: 30 steps, 1 process(es)" in text
    assert f"results: {out / 'result.json'}" in text
    assert text.rstrip().endswith(
        "chaos: 1 kills (1 inside a save), 1 resumes, 0 fallbacks: bit-identical; 2.5s")
    record = load_record(out / "result.json")
    assert record["suite"] == "chaos" and record["status"] == "complete"
    (run,) = record["runs"]
    assert (run["task"], run["method"], run["final"]) == ("chaos", "kill-resume", 1.0)
    assert run["notes"]["processes"] == 1 and "timing_flag" in run  # a harness run
    assert run["notes"]["report_rows"] == {"kills": 1, "kills inside a save": 1, "resumes": 1,
                                           "fallbacks": 0, "problems": 0}
    config = json.loads((out / "config.json").read_text())
    options = config["options"]  # a suite's options, as every suite keeps them
    assert options["kills"] == 1 and options["save_pause"] == 0.1 and config["suite"] == "chaos"
    assert main(["report", str(out / "result.json")]) == 0
    assert "kills inside a save" in capsys.readouterr().out

    monkeypatch.setattr(chaos, "run_chaos", lambda config, say=None: ChaosRecord(
        kills=1, identical=False, mismatches=["weights fc.weight"]))
    assert main(["bench", "chaos", "--out", str(tmp_path / "bad"), "--quiet"]) == 1
    assert "DIFFERENT (weights fc.weight)" in capsys.readouterr().out
    assert main(["bench", "chaos", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "holds a finished record" in capsys.readouterr().err
    assert main(["bench", "chaos", "--budget", "20steps", "--out", str(tmp_path / "x")]) == 2
    assert ("bench chaos: --budget 20steps does not apply (its runs are sized by its own "
            "options)"
            in capsys.readouterr().err)
    assert not (tmp_path / "x" / "result.json").exists()


def test_chaos_and_infobatch_help_list_their_own_settings(capsys):
    text = help_text(capsys, "bench", "chaos")
    assert "--kills KILLS" in text and "--save-kills SAVE_KILLS" in text
    assert "kills = 5  # enough kills to hit several phases of a run" in text
    text = help_text(capsys, "bench", "infobatch")
    assert "--prune-ratio PRUNE_RATIO" in text and "--anneal ANNEAL" in text
    assert "methods: baseline, infobatch@0.7, random-drop@0.7" in text


@pytest.mark.slow
def test_infobatch_runs_as_a_harness_suite_with_its_options(tmp_path, capsys, monkeypatch,
                                                            threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "ib"
    assert main(["bench", "infobatch", "--quick", "--budget", "4steps", "--methods",
                 "baseline,infobatch@0.5", "--prune-ratio", "0.25", "--quiet",
                 "--out", str(out)]) == 0
    record = load_record(out / "result.json")
    assert record["options"] == {"prune_ratio": 0.25, "anneal": 0.875}
    runs = {r["method"]: r for r in record["runs"]}
    assert runs["infobatch@0.5"]["budget"] == "2steps"
    assert runs["infobatch@0.5"]["notes"]["pruning"]["ratio"] == 0.25
    # the thread count the command chose, in the record's pinning and notes
    assert record["pinning"]["torch_threads"] == 1
    assert record["notes"]["threads"]["torch_threads"] == 1
    assert json.loads((out / "config.json").read_text())["threads"]["torch_threads"] == 1


def test_repeat_flagged_reaches_the_suite(tmp_path, monkeypatch):
    seen = {}

    def fake_run_suite(name, **kw):
        seen.update(kw)
        return {"suite": name, "runs": []}

    monkeypatch.setattr(harness, "run_suite", fake_run_suite)
    task = f"{write_task(tmp_path)}:make_recipe"
    assert main(["bench", "vision", "--tasks", task, "--repeat-flagged", "--quiet",
                 "--out", str(tmp_path / "b")]) == 0
    assert seen["repeat_flagged"] is True
    assert seen["notes"]["threads"]["torch_threads"] == torch.get_num_threads()


def test_report_marks_flagged_columns_and_says_why(tmp_path, capsys):
    def run(method, seed, flag=None):
        return {"task": "t", "method": method, "seed": seed, "metric": "accuracy",
                "final": 90.0, "train_seconds": 2.0, "curve": [[1.0, {}, 90.0]],
                "work": {}, "timing_flag": flag}

    flag = {"reasons": ["load average 3.10 over 2 cores"], "repeated": False}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**RECORD_HEADER, "runs": [
        run("baseline", 0), run("fast", 0, flag), run("fast", 1)]}))
    assert main(["report", str(path), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert f"|  | baseline | fast{MARKER} |" in text
    assert (f"{MARKER} Timing flagged in 1 of 3 runs (1 still flagged): t/fast seed 0: load "
            "average 3.10 over 2 cores.") in text


def test_list_names_the_commands_and_suites(capsys):
    assert main(["list", "commands"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["demo", "bench", "report", "train", "prune", "distill", "cram", "glue",
                     "eval-lm", "tune", "list"]
    assert main(["list", "suites"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"chaos", "stack", "stack-sst2", "infobatch", "pretrain-ladder"} <= set(lines)
    assert "options: prune_ratio, anneal" in lines["infobatch"]
    assert "options: task, levers" in lines["stack"]
    assert "kill a run at random moments" in lines["chaos"]
    assert main(["list", "scorers"]) == 0
    assert "el2n-first-epoch" in capsys.readouterr().out


def test_report_of_an_infobatch_record_prints_its_verdict_seed_by_seed(tmp_path, capsys):
    def run(method, curve):
        return {"task": "t", "method": method, "seed": 0, "metric": "accuracy",
                "higher_is_better": True, "final": curve[-1][1], "baseline": "baseline",
                "curve": [[t, {"examples_backpropagated": t, "flops": t}, v] for t, v in curve]}

    runs = [run("baseline", [(10.0, 80.0), (100.0, 90.0)]),
            run("infobatch@0.7", [(10.0, 85.0), (70.0, 89.9)]),
            run("baseline@0.8", [(10.0, 82.0), (70.0, 89.5)]),
            run("random-drop@0.7", [(10.0, 84.0), (70.0, 89.7)])]
    path = tmp_path / "result.json"
    path.write_text(json.dumps({**RECORD_HEADER, "suite": "infobatch", "margin": 0.2,
                                "runs": runs}))
    assert main(["report", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("verdict: PASS: infobatch@0.7 reaches the target within 0.8x")
    assert out[-1] == ("  seed 0: relative time 0.70; ahead of baseline@0.8, ahead of "
                       "random-drop@0.7: pass")
