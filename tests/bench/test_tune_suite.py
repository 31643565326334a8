"""The tune evaluation's suite: its budgets are wall clock (the pilots charge seconds), and
every run records the fingerprint the plan checks its recipe by; its report says whether the
plan predates the runs and reads the plan's rule on the parts it holds."""

from __future__ import annotations

import hasten.bench.tune_suite as ts
from hasten.bench.harness import SUITES, build_recipe
from hasten.core.budget import Budget


def test_every_budget_of_the_suite_is_wall_clock_quick_or_not():
    suite = SUITES["tune"]
    assert set(suite.budgets) == set(suite.quick_budgets) == set(ts.TASKS)
    assert all(Budget(b).is_wall_clock for b in [*suite.budgets.values(),
                                                 *suite.quick_budgets.values()])
    assert suite.budgets["fashion-mnist"] == "1200s"


def test_the_fingerprint_ignores_what_the_harness_sets_per_run_and_nothing_else():
    a = build_recipe("shakespeare-char", "baseline", 0, True, budget="30s")
    b = build_recipe("shakespeare-char", "baseline", 1, True, budget="1200s")
    fp = ts.recipe_fingerprint(a)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert ts.recipe_fingerprint(b) == fp  # seed and budget differ
    b.config.lr *= 2
    assert ts.recipe_fingerprint(b) != fp


def test_a_run_keeps_the_fingerprint_of_its_recipe_before_the_method():
    recipe = build_recipe("shakespeare-char", "baseline", 0, True, budget="30s")
    before = ts.recipe_fingerprint(recipe)
    ts._fingerprinted(recipe)
    recipe.config.micro_batch *= 2  # a lever's change after the fingerprint was taken
    assert SUITES["tune"].prepare(recipe, "tuned").notes["recipe_fingerprint"] == before


def test_a_tune_record_says_whether_its_plan_predates_it():
    code, lines = ts.plan_verdict({"notes": {}, "created": "2026-12-07T00:00:00+00:00"})
    assert code == 0 and lines[0] == "plan: exploratory (no plan recorded)"
    assert lines[-1] == "verdict: incomplete (0 of 12 parts)"  # the rule, on no parts yet


def test_a_tuned_run_keeps_the_evidence_for_each_lever_it_kept_or_left():
    recipe = build_recipe("shakespeare-char", "baseline", 0, True, budget="20s")
    ts.tuned(recipe)
    report, chosen = recipe.notes["tune_report"], recipe.notes["tune"]
    assert set(report) == set(ts.REPORT_KEYS)
    kept = [spec for spec, v in report["verdicts"].items() if v["keep"]]
    assert sorted(kept) == sorted(chosen["levers"])
    considered = {*report["verdicts"], *report["refused"], *report["not_piloted"]}
    assert "bf16" in considered and "infobatch" in considered
