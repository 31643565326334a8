"""The measurement standard (`hasten.bench.evidence`): the paired t-interval and its verdict,
the decisions a record yields, evaluation at the same points on a fixed subset, whole runs'
time ratio by seed, and a plan committed after its runs reading as exploratory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.evidence import (
    Interval,
    compare,
    decide,
    decision_lines,
    decisions,
    dense_eval,
    paired_interval,
    plan_stamp,
    plan_status,
    pruned_fraction,
    run_time_ratio,
    subset_until_final,
)
from hasten.bench.harness import Recipe
from hasten.core.errors import ConfigError
from hasten.core.eval_plan import sharded_eval
from hasten.core.trainer import TrainConfig


def test_the_paired_interval_is_students():
    i = paired_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, sd sqrt(2.5), t(4) = 2.776: half-width 2.776 * 1.5811 / sqrt(5) = 1.9630
    assert (i.n, i.mean) == (5, 3.0)
    assert i.low == pytest.approx(3 - 1.96296, abs=1e-4)
    assert i.high == pytest.approx(3 + 1.96296, abs=1e-4)
    with pytest.raises(ConfigError, match="at least 2 pairs"):
        paired_interval([1.0])


@pytest.mark.parametrize("low, high, verdict", [
    (-0.3, 0.5, "no loss"), (-0.29, 0.1, "no loss"), (-0.9, -0.31, "loss"),
    (-0.5, 0.2, "undecided"), (-0.8, -0.3, "undecided")])
def test_the_verdict_at_a_margin(low, high, verdict):
    assert decide(Interval(0.0, low, high, 5), 0.3) == verdict


def _run(method, seed, final, examples, pruning=None):
    return {"task": "t", "method": method, "seed": seed, "final": final,
            "baseline": "baseline", "work": {"examples_backpropagated": examples},
            "notes": {"pruning": pruning} if pruning else {}}


def _record():
    runs = []
    for seed, (b, b6, ib) in enumerate([(90.0, 89.0, 90.1), (91.0, 90.2, 90.9),
                                        (90.5, 89.9, 90.6)]):
        runs += [_run("baseline", seed, b, 1000), _run("baseline@0.6", seed, b6, 600),
                 _run("infobatch@0.6", seed, ib, 600,
                      {"drawn": 600, "pruned": 400 + 10 * seed})]
    return {"margin": 0.3, "runs": runs, "created": "2026-12-07T00:00:00+00:00"}


def test_a_record_yields_each_lever_against_the_baseline_and_baseline_at_f():
    (row,) = decisions(_record(), "examples_backpropagated")
    c, p = row["vs_baseline"], row["vs_plain"]
    assert (row["method"], row["fraction"]) == ("infobatch@0.6", 0.6)
    assert c["seeds"] == [0, 1, 2] and c["interval"].mean == pytest.approx(0.1 / 3)
    assert c["verdict"] == "no loss" and c["work_fraction"] == pytest.approx(0.6)
    assert c["pruned_fraction"] == pytest.approx(600 / 1010)
    assert p["against"] == "baseline@0.6" and p["interval"].mean == pytest.approx(2.5 / 3)
    assert pruned_fraction(_run("x", 0, 1.0, 1)) is None


def test_decision_lines_say_exploratory_without_a_plan(tmp_path):
    lines = decision_lines(_record(), "examples_backpropagated", root=tmp_path)
    assert lines[0] == "plan: exploratory (no plan recorded)"
    assert lines[1].startswith("  infobatch@0.6: exploratory: +0.03 [")
    assert "vs baseline (margin 0.3, 3 seeds, work 0.600, per-epoch share 0.594)" in lines[1]


def _sums(test):
    x_all, y_all = test.tensors

    def partial(model, rank, world):
        n = len(y_all)
        lo, hi = rank * n // world, (rank + 1) * n // world
        return {"correct": int((model(x_all[lo:hi]).argmax(1) == y_all[lo:hi]).sum()),
                "count": hi - lo}

    return sharded_eval(partial, lambda t: {"accuracy": 100.0 * t["correct"] / t["count"],
                                            "count": t["count"]})


def test_intermediate_evaluations_score_a_fixed_fifth_the_final_all():
    test = TensorDataset(torch.randn(100, 3), torch.randint(0, 2, (100,)))
    evaluate = subset_until_final(_sums(test), 5)
    model = nn.Linear(3, 2)
    assert evaluate(model)["count"] == 20 and evaluate(model, final=True)["count"] == 100
    recipe = Recipe(model, test, lambda m, b: m(b[0]).sum(1), _sums(test),
                    TrainConfig(budget="10ex"))
    recipe = dense_eval(0.02, 5)(recipe, "infobatch@0.8")
    assert recipe.config.eval_every == pytest.approx(0.025)  # every 2% of the baseline's work
    assert recipe.evaluate(model)["count"] == 20
    with pytest.raises(ConfigError, match="built by sharded_eval"):
        subset_until_final(lambda m: {"accuracy": 1.0}, 5)


def _git(root, *args, when=None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def test_a_plan_committed_after_its_runs_prints_exploratory(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "plans").mkdir(parents=True)
    _git(root, "init", "-q")
    plan = root / "plans" / "p.md"
    plan.write_text("rows, seeds, budgets, margin, rule\n")
    monkeypatch.chdir(root)
    stamp = plan_stamp("plans/p.md", root)
    assert stamp["path"] == "plans/p.md" and stamp["commit"] is None  # not committed yet
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "plan", when="2026-12-07T12:00:00+00:00")
    stamp = plan_stamp(Path("plans/p.md"), root)
    assert stamp["commit"] is not None
    record = {"notes": {"plan": stamp}, "margin": 0.3, "runs": _record()["runs"]}
    before = {**record, "created": "2026-12-07T11:00:00+00:00"}
    after = {**record, "created": "2026-12-07T13:00:00+00:00"}
    status, why = plan_status(before, root)
    assert status == "exploratory" and why.endswith("after the runs began")
    assert plan_status(after, root)[0] == "planned"
    assert decision_lines(before, "examples_backpropagated", root)[1].startswith(
        "  infobatch@0.6: exploratory:")
    assert decision_lines(after, "examples_backpropagated", root)[1].startswith(
        "  infobatch@0.6: no loss: +0.03 [")
    plan.write_text("changed after the runs\n")  # a plan edited later is not the one run
    _git(root, "commit", "-qam", "edit", when="2026-12-07T14:00:00+00:00")
    assert plan_status(after, root)[0] == "planned"  # the recorded hash's commit counts
    with pytest.raises(ConfigError, match="--plan: plans/none.md is not a file"):
        plan_stamp("plans/none.md", root)


def test_whole_runs_time_ratio_pairs_seconds_by_seed():
    runs = [{"method": m, "seed": s, "final": 90.0, "train_seconds": t, "work": {}}
            for m, times in (("baseline", [100.0, 200.0, 100.0]), ("lever", [70.0, 120.0, 50.0]))
            for s, t in enumerate(times)]
    i = run_time_ratio(runs, "lever", "baseline")  # ratios 0.7, 0.6, 0.5
    assert (i.mean, i.n) == (pytest.approx(0.6), 3)
    assert i.high == pytest.approx(0.6 + 4.303 * 0.1 / 3 ** 0.5)
    assert compare(runs, "lever", "baseline", 0.3, "steps")["run_time_ratio"] == i
    assert run_time_ratio(runs[:4], "lever", "baseline") is None  # one paired seed
