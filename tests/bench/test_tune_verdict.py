"""The tune evaluation's decision rule (`hasten.bench.tune_verdict`) on made-up parts: the
target is the baseline's median final quality, a run that never reaches it counts as B, a
lower-is-better metric reads the other way, a recipe not the plan's is left out, and the
verdict is incomplete, undecided (no oracle), pass or fail as the plan's three items say."""

from __future__ import annotations

import pytest

from hasten.bench.tune_verdict import FINGERPRINTS, MARGINS, task_reading, time_to, tune_verdict

HIGHER = {"fashion-mnist": True, "sst2-small": True, "mt-en-de": True,
          "shakespeare-char": False}


def run(task, method, seed, curve, fingerprint=None):
    """A run of the suite: curve rows [seconds, work, quality]; final the last quality."""
    return {"task": task, "method": method, "seed": seed, "higher_is_better": HIGHER[task],
            "final": curve[-1][1], "curve": [[s, {}, q] for s, q in curve],
            "notes": {"recipe_fingerprint": fingerprint or FINGERPRINTS[task]}}


def parts(tuned_at=600.0, tuned_final=None, tasks=tuple(MARGINS), seeds=(0, 1, 2)):
    """Every task x seed: the baseline reaches 10 (or 1.0 bits, lower) at 1200 s, the
    throughput arm at 900 s, the tuned arm at `tuned_at` and ends at `tuned_final`."""
    runs = []
    for task in tasks:
        hi = HIGHER[task]
        good, bad = (10.0, 5.0) if hi else (1.0, 2.0)
        end = good if tuned_final is None else tuned_final
        for s in seeds:
            runs += [run(task, "baseline", s, [(600.0, bad), (1200.0, good)]),
                     run(task, "throughput-autotune", s, [(300.0, bad), (900.0, good)]),
                     run(task, "tuned", s, [(tuned_at, end if tuned_at < 1200 else bad),
                                            (1200.0, end)])]
    return runs


def test_time_to_target_reads_the_first_evaluation_past_it_and_b_when_none_is():
    r = run("fashion-mnist", "tuned", 0, [(100.0, 8.0), (200.0, 10.0), (300.0, 11.0)])
    assert time_to(r, 10.0) == 200.0 and time_to(r, 12.0) == 1200.0
    bits = run("shakespeare-char", "tuned", 0, [(100.0, 2.0), (200.0, 1.4)])
    assert time_to(bits, 1.5) == 200.0 and time_to(bits, 1.3) == 1200.0


def test_the_rule_passes_fails_or_waits_for_the_oracle_as_the_plan_says():
    oracle = {"fashion-mnist": 580.0, "sst2-small": 600.0}
    verdict, lines = tune_verdict(parts(), oracle)
    assert verdict == "pass" and lines[-1] == "verdict: pass (fast on 4 of 4 tasks)"
    assert tune_verdict(parts())[0] == "undecided"  # item 3 needs the oracle's times
    far = tune_verdict(parts(), {"fashion-mnist": 500.0, "sst2-small": 600.0})
    assert far == ("fail", far[1]) and far[1][-1] == \
        "verdict: fail (fast on 4 of 4 tasks; far from the oracle)"
    # 0.7 x B is 840 s: tuned at 850 s is slower than the rule, though before throughput's 900
    slow = tune_verdict(parts(tuned_at=850.0), oracle)
    assert slow[0] == "fail" and slow[1][-1].startswith("verdict: fail (fast on 0 of 4")


def test_ending_below_the_margin_on_one_task_fails_the_rule():
    runs = [r for r in parts() if r["task"] != "shakespeare-char"]
    # bits per character: 1.0 is the baseline's; 1.03 is past the 0.02 margin, 1.01 within
    worse = runs + parts(tuned_final=1.03, tasks=("shakespeare-char",))
    verdict, lines = tune_verdict(worse, {"fashion-mnist": 600.0, "sst2-small": 600.0})
    assert verdict == "fail" and "worse than the margin on shakespeare-char" in lines[-1]
    within = runs + parts(tuned_final=1.01, tasks=("shakespeare-char",))
    assert tune_verdict(within, {"fashion-mnist": 600.0, "sst2-small": 600.0})[0] == "pass"


def test_missing_parts_read_as_incomplete_and_another_recipe_is_left_out():
    runs = parts(seeds=(0,)) + parts(tasks=("fashion-mnist",), seeds=(1, 2))
    verdict, lines = tune_verdict(runs)
    assert verdict == "incomplete" and lines[-1] == "verdict: incomplete (6 of 12 parts)"
    stray = run("sst2-small", "baseline", 1, [(1200.0, 99.0)], fingerprint="0" * 16)
    row = task_reading([*parts(tasks=("sst2-small",)), stray], "sst2-small")
    assert row["left_out"] == 1 and row["target"] == 10.0 and row["seeds"] == 3
    assert row["times"] == {"baseline": 1200.0, "throughput-autotune": 900.0,
                            "tuned": 600.0}
    lines = tune_verdict([*parts(), stray])[1]
    assert "sst2-small: 1 run(s) left out, their recipe's fingerprint not the plan's " \
           f"{FINGERPRINTS['sst2-small']}" in lines


@pytest.mark.parametrize("task", list(MARGINS))
def test_the_target_is_the_baselines_median_final_over_seeds(task):
    runs = parts(tasks=(task,))
    runs[0]["final"] = 3.0  # one seed's baseline far off: the median holds
    assert task_reading(runs, task)["target"] == (10.0 if HIGHER[task] else 1.0)


def test_the_oracles_runs_in_the_join_decide_item_3_once_all_three_seeds_are_in():
    def oracle_runs(at, seeds=(0, 1, 2), quality=10.0):
        return [run(t, "oracle", s, [(at, quality)]) for t in ("fashion-mnist", "sst2-small")
                for s in seeds]
    near = tune_verdict(parts() + oracle_runs(580.0))
    assert near[0] == "pass" and any("oracle 580 s, near" in x for x in near[1])
    far = tune_verdict(parts() + oracle_runs(500.0))
    assert far[0] == "fail" and far[1][-1].endswith("far from the oracle)")
    two = tune_verdict(parts() + oracle_runs(580.0, seeds=(0, 1)))
    assert two[0] == "undecided" and any("oracle 2 of 3 seeds" in x for x in two[1])
    never = tune_verdict(parts() + oracle_runs(700.0, quality=5.0))  # never there: B
    assert never[0] == "pass" and any("oracle 1200 s, near" in x for x in never[1])
