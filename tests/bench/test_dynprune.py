import pytest

import hasten.bench.work_levers  # noqa: F401  (registers dynprune-work)
from hasten.bench import dynprune
from hasten.bench.evidence import decisions
from hasten.bench.harness import METHODS, SUITES, TASKS, build_recipe, run_one, scale_budget
from hasten.bench.report import fill_targets
from hasten.core.errors import ConfigError
from hasten.select.infobatch import InfoBatch, InfoBatchHook


def test_methods_prune_by_their_rule_and_refuse_a_second_sampler():
    for name, rule in (("infobatch", "infobatch"), ("random-drop", "random-drop"),
                       ("drop-easiest", "drop-easiest")):
        recipe = METHODS[name](TASKS["digits"](0, True))
        assert isinstance(recipe.sampler, InfoBatch) and recipe.sampler.rule == rule
        assert (recipe.sampler.ratio, recipe.sampler.anneal) == (0.5, 0.875)
        assert isinstance(recipe.hooks[-1].hook, InfoBatchHook)  # timed for its lever's cost
    with pytest.raises(ConfigError, match="infobatch draws its own epochs: it follows only "
                                          "a curriculum .*, not InfoBatch"):
        METHODS["infobatch"](METHODS["random-drop"](TASKS["digits"](0, True)))
    suite = SUITES["infobatch"]
    assert suite.methods[:3] == ["baseline", "infobatch@0.7", "random-drop@0.7"]
    assert suite.margin == 0.2 and suite.overrides == {"eval_every": 0.02}


def test_infobatch_run_counts_only_what_it_trains(one_thread):
    run, _ = run_one("digits", "infobatch", 0, quick=True, budget="3200ex")
    stats = run["notes"]["pruning"]
    assert run["work"]["examples_backpropagated"] == run["work"]["examples_forwarded"]
    assert stats["drawn"] == run["work"]["examples_forwarded"] >= 3200
    assert stats["pruned"] > 0 and stats["annealed"]
    assert stats["epochs"] > 3200 // 1437 + 1  # pruned epochs are shorter


def _run(method, seed, curve, final=None):
    return {"task": "t", "method": method, "seed": seed, "metric": "accuracy",
            "higher_is_better": True, "final": final if final is not None else curve[-1][2],
            "curve": [[t, {"examples_backpropagated": t, "flops": t}, v] for t, _, v in curve]}


def test_verdict_applies_the_preregistered_rule():
    base = [(10.0, None, 80.0), (50.0, None, 89.0), (100.0, None, 90.0)]
    runs = []
    for seed in (0, 1):
        runs.append(_run("baseline", seed, base))
        runs.append(_run("infobatch@0.7", seed, [(10.0, None, 85.0), (70.0, None, 89.9)]))
        runs.append(_run("baseline@0.8", seed, [(10.0, None, 82.0), (70.0, None, 89.5),
                                                (80.0, None, 89.95)]))
        runs.append(_run("random-drop@0.7", seed, [(10.0, None, 84.0), (70.0, None, 89.7)]))
    results = fill_targets({"runs": runs}, margins={"t": 0.2})  # target 89.8, base t 100
    out = dynprune.verdict(results)
    assert out["pass"] and out["seeds"][0] == {
        "relative_time": 0.7, "within": True,
        "ahead": {"baseline@0.8": True, "random-drop@0.7": True}, "pass": True}
    # on seed 1, baseline@0.8 is ahead at infobatch's time to target: a paired failure
    runs[6]["curve"][1][2] = 90.0
    out = dynprune.verdict(fill_targets({"runs": runs}, margins={"t": 0.2}))
    assert not out["pass"] and out["seeds"][1]["ahead"]["baseline@0.8"] is False
    # a seed that never reaches the target is a miss
    runs[5]["curve"][1][2] = 89.0
    out = dynprune.verdict(fill_targets({"runs": runs}, margins={"t": 0.2}))
    assert out["seeds"][1] == {"relative_time": None, "within": False,
                               "ahead": {"baseline@0.8": False, "random-drop@0.7": False},
                               "pass": False}
    assert dynprune.verdict_lines(fill_targets({"runs": runs}, margins={"t": 0.2})) == [
        "verdict: FAIL: infobatch@0.7 reaches the target within 0.8x the baseline's time and "
        "is ahead of baseline@0.8 and random-drop@0.7 at that moment, on every seed",
        "  seed 0: relative time 0.70; ahead of baseline@0.8, ahead of random-drop@0.7: pass",
        "  seed 1: never reaches the target; not ahead of baseline@0.8, not ahead of "
        "random-drop@0.7: miss"]
    assert dynprune.value_at([[1.0, {}, 5.0], [2.0, {}, 6.0]], 1.5) == 5.0
    assert dynprune.value_at([[1.0, {}, 5.0]], 0.5) is None


def test_a_prune_ratio_per_fraction_rides_in_the_method_name():
    """The dynprune-work plan's rows (`RULE:prune=R@F`): the registered rule at ratio R and
    fraction F of the budget, in one invocation; the verdict pairs it with `baseline@F`."""
    options = SUITES["dynprune-work"].options(prune_ratio=0.27)
    for rule in ("infobatch", "random-drop", "drop-easiest"):
        named = build_recipe("digits", f"{rule}:prune=0.27@0.8", 0, True)
        registered = build_recipe("digits", f"{rule}@0.8", 0, True, options=options)
        for recipe in (named, registered):
            pruner = recipe.sampler
            assert (pruner.rule, pruner.ratio, pruner.anneal) == (rule, 0.27, 0.875)
        assert named.config.budget == registered.config.budget == scale_budget(
            build_recipe("digits", "baseline", 0, True).config.budget, 0.8)
    runs = [{"method": m, "seed": s, "final": 90.0 + s + d, "baseline": "baseline",
             "work": {"examples_backpropagated": w}}
            for s in (0, 1, 2) for m, d, w in (("baseline", 0.0, 1000),
                                              ("baseline@0.8", -0.5, 800),
                                              ("infobatch:prune=0.27@0.8", -0.1, 800))]
    (row,) = decisions({"margin": 0.3, "runs": runs}, "examples_backpropagated")
    assert (row["method"], row["fraction"]) == ("infobatch:prune=0.27@0.8", 0.8)
    assert row["vs_baseline"]["work_fraction"] == pytest.approx(0.8)
    assert row["vs_plain"]["against"] == "baseline@0.8"
    assert row["vs_plain"]["interval"].mean == pytest.approx(0.4)
