"""The prune suite's methods: subset sizes, budgets in epochs of the subset, scoring charged."""

from dataclasses import replace

import pytest
from conftest import RECORD_HEADER

import hasten.bench.prune as prune
from hasten.bench.harness import SUITES, run_one


def test_suite_lists_every_scorer_at_every_keep():
    methods = SUITES["prune"].methods
    assert methods[0] == "baseline" and len(methods) == 1 + 7 * 5
    assert {"random-0.1", "el2n-0.5", "forgetting-0.9", "aum-0.3", "ccs-0.1",
            "prototypes-0.7", "ccs-el2n-0.5"} <= set(methods)


@pytest.mark.parametrize("method,keep", [("random-0.3", 0.3), ("el2n-0.1", 0.1),
                                         ("ccs-0.1", 0.1)])
def test_pruned_run_trains_its_subset_for_the_same_epochs(method, keep, monkeypatch):
    # the proxies and the run in fp32: bf16 autocast is emulated, and about five times
    # slower, on CPUs without bf16 units; nothing here depends on the precision
    task = prune.PRUNE_TASKS["fashion-prune"]
    monkeypatch.setitem(prune.PRUNE_TASKS, "fashion-prune",
                        replace(task, recipe={**task.recipe, "precision": "fp32"}))
    run, _ = run_one("fashion-prune", method, seed=0, quick=True)
    kept = round(keep * 60000)
    assert run["notes"]["kept"] == kept
    epochs = run["notes"]["epochs"]
    assert run["budget"] == f"{epochs * kept}ex"
    assert run["work"]["examples_backpropagated"] >= epochs * kept
    if method.startswith("random"):
        assert run["overhead_seconds"] == 0.0
    else:  # the scorer's time is charged on the curve
        assert run["overhead_seconds"] == run["notes"]["scoring_seconds"] > 0
        assert run["curve"][0][0] >= run["overhead_seconds"]


def test_ccs_reuses_the_aum_scores_of_the_same_seed():
    a = prune.scores_for("aum", 0, True, "fashion-prune")
    assert prune.scores_for("aum", 0, True) is a
    assert a.higher_is == "easier" and len(a) == 60000


def _run(method, seed, time_to_target, overhead=0.0):
    return {"task": "fashion-prune", "method": method, "seed": seed, "baseline": "baseline",
            "time_to_target": time_to_target, "overhead_seconds": overhead, "notes": {}}


def test_break_even_rows_come_from_the_measured_times():
    results = {"runs": [
        _run("baseline", 0, 10.0), _run("baseline", 1, 14.0), _run("baseline", 2, None),
        _run("el2n-0.5", 0, 9.0, overhead=3.0),  # 6 s trained: 6 s saved on 12, 3 s scoring
        _run("el2n-0.5", 1, 15.0, overhead=5.0),  # 10 s: 2 s saved, 5 s scoring
        _run("random-0.5", 0, 7.0),  # free scoring: repaid at once
        _run("aum-0.1", 0, None, overhead=2.0),  # never reached
        _run("forgetting-0.1", 0, 13.0, overhead=0.5)]}  # 12.5 s: slower than full data
    prune.break_even_rows(results)
    rows = {(r["method"], r["seed"]): r["notes"].get("report_rows") for r in results["runs"]}
    assert rows[("baseline", 0)] is None and rows[("baseline", 2)] is None
    assert rows[("el2n-0.5", 0)] == {prune.BREAK_EVEN_ROW: 0.5}
    assert rows[("el2n-0.5", 1)] == {prune.BREAK_EVEN_ROW: 2.5}
    assert rows[("random-0.5", 0)] == {prune.BREAK_EVEN_ROW: 0.0}
    assert rows[("aum-0.1", 0)] == {prune.BREAK_EVEN_ROW: None}
    assert rows[("forgetting-0.1", 0)] == {prune.BREAK_EVEN_ROW: None}
    assert SUITES["prune"].after_run is prune.break_even_rows


def test_a_joined_record_gets_its_break_even_rows_again(tmp_path, capsys):
    import json

    from hasten.cli import main

    def part(runs, **extra):
        return {**RECORD_HEADER, "suite": "prune", "quick": True, "margin": 0.5, "runs": [
            {**r, "metric": "accuracy", "final": 90.0, "train_seconds": 20.0,
             "curve": [[r["time_to_target"], {}, 90.0]]} for r in runs], **extra}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(part([_run("baseline", 0, 12.0)])))
    b.write_text(json.dumps(part([_run("el2n-0.5", 0, 9.0, overhead=3.0)])))
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "ab"), "--quiet"]) == 0
    text = (tmp_path / "ab" / "report.md").read_text()
    assert "| break-even trainings | n/a | 0.5 |" in text  # 3 s of scoring, 12 - 6 s saved
