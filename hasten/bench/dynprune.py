"""The dynamic-pruning suite: InfoBatch against its controls, at a shorter budget.

Paper: Qin et al. 2024 (ICLR), "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic
Data Pruning" (`hasten.select.infobatch`). Methods, each usable on any task with a
map-style dataset (the vision tasks digits, mnist1d, fashion-mnist, fashion-mnist-val, the
pruning tasks):
  infobatch     prune below-mean-loss examples with probability r = 0.5 each epoch, rescale
                the kept ones by 1 / (1 - r), full data from 87.5% of the budget
  random-drop   the same number of examples dropped uniformly at random, no rescaling
  drop-easiest  the same number of lowest-loss examples dropped, no rescaling

In a budget-bound run pruning buys more epochs within the same budget, so the saving shows
at a shorter budget. The paper's 20 epochs at delta = 0.875 cost (1 + 16.5 k + 2.5) / 20 of
the full data's examples when each pruned epoch keeps a fraction k (one full first epoch,
the last 2.5 full); `infobatch@0.7` is that budget for k = 0.6, the pre-registered
fraction. `baseline@0.7` and `baseline@0.8` are the plain recipe given as little.

Task `fashion-prune-cnn` (ConvNet-3, width 32, depth 2, `hasten.bench.prune`) at 20 epochs,
evaluated every 2% of the budget; target = the baseline's median - 0.2 points. `verdict`
applies the pre-registered decision rule to a results dict. The suite's options are r and
delta (`hasten bench infobatch --prune-ratio R --anneal D`; the paper's by default).

Where its result is shown: docs/benchmarks.md, "Dynamic data pruning: drop-easiest pays
at 0.7 of the examples; InfoBatch beats training less, its loss undecided".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hasten.bench.prune  # noqa: F401  (registers the fashion-prune tasks)
from hasten.bench.harness import Recipe, Suite, register_method, register_suite
from hasten.bench.report import fill_targets
from hasten.core.config import option
from hasten.levers import LEVERS, apply_levers

RATIO, ANNEAL = 0.5, 0.875  # the paper's defaults


@dataclass
class InfoBatchOptions:
    """Settings of `hasten bench infobatch`."""

    prune_ratio: float = option(RATIO, "InfoBatch's r, the paper's default")
    anneal: float = option(ANNEAL, "InfoBatch's delta, the paper's default: full data for "
                           "the last eighth of the budget")


def add_pruning(recipe: Recipe, rule: str, ratio: float = RATIO,
                anneal: float = ANNEAL) -> Recipe:
    """Make `recipe` prune by `rule` (the lever of that name, `hasten.levers.dynamic`): its
    sampler and its hook; its statistics go to `recipe.notes["pruning"]`."""
    return apply_levers(recipe, [LEVERS[rule](prune=ratio, anneal=anneal)])


def _options(recipe: Recipe) -> tuple[float, float]:
    """r and delta from the suite's options when it has them, else the paper's."""
    opts = recipe.options
    return (float(getattr(opts, "prune_ratio", RATIO)), float(getattr(opts, "anneal", ANNEAL)))


def _method(rule: str, doc: str):
    def method(recipe: Recipe) -> Recipe:
        return add_pruning(recipe, rule, *_options(recipe))
    method.__doc__ = doc
    return method


# each applies wherever its lever's needs are met (a per-example loss, examples by index)
register_method("infobatch")(_method(
    "infobatch", "InfoBatch: prune below-mean losses with probability r, rescale the rest, "
    "anneal."))
register_method("random-drop")(_method(
    "random-drop", "The control: as many examples as InfoBatch prunes, dropped at random, no "
    "rescaling."))
register_method("drop-easiest")(_method(
    "drop-easiest", "As many examples as InfoBatch prunes, the lowest losses, no rescaling."))


FRACTION = 0.7
register_suite(Suite(
    name="infobatch", tasks=["fashion-prune-cnn"],
    methods=["baseline", f"infobatch@{FRACTION}", f"random-drop@{FRACTION}",
             f"drop-easiest@{FRACTION}", f"baseline@{FRACTION}", "baseline@0.8"],
    margin=0.2, budgets={"fashion-prune-cnn": "1200000ex"}, overrides={"eval_every": 0.02},
    options=InfoBatchOptions, verdict=lambda results: (0, verdict_lines(results)),
    description="InfoBatch dynamic pruning vs random-drop and plain training at 70% budget"))


# -----------------------------------------------------------------------------
# the pre-registered decision rule


def value_at(curve: list[list[Any]], seconds: float) -> float | None:
    """A run's metric at `seconds`: its last evaluation at or before then (None if none)."""
    value = None
    for t, _work, v in curve:
        if t <= seconds + 1e-12 and v is not None:
            value = float(v)
    return value


def verdict(results: Mapping[str, Any], method: str = f"infobatch@{FRACTION}",
            rivals: tuple[str, ...] = ("baseline@0.8", f"random-drop@{FRACTION}"),
            max_relative: float = 0.8) -> dict[str, Any]:
    """Pass iff on every seed `method` reaches the target (baseline median - margin; fill
    the targets first) within `max_relative` x the baseline's median time to it, and at that
    moment its metric is strictly ahead of every rival's (their last evaluation by then;
    a rival with no evaluation yet counts as behind). A seed that never reaches is a miss."""
    runs = [r for r in results.get("runs", []) if r.get("method") in (method, *rivals)]
    by = {(r["method"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if r["method"] == method})
    per_seed = {}
    for seed in seeds:
        run = by[(method, seed)]
        rel, t = run.get("relative_time"), run.get("time_to_target")
        ok = rel is not None and rel <= max_relative
        ahead = {}
        for rival in rivals:
            other = by.get((rival, seed))
            theirs = value_at(other["curve"], t) if other is not None and t is not None else None
            ours = value_at(run["curve"], t) if t is not None else None
            ahead[rival] = ours is not None and (theirs is None or ours > theirs)
        per_seed[seed] = {"relative_time": rel, "within": ok, "ahead": ahead,
                          "pass": ok and all(ahead.values())}
    return {"pass": bool(per_seed) and all(s["pass"] for s in per_seed.values()),
            "seeds": per_seed, "method": method, "rivals": list(rivals),
            "max_relative": max_relative}


def verdict_lines(results: Mapping[str, Any]) -> list[str]:
    """`verdict(results)` as lines a person reads: the rule's outcome, then one line a seed.
    Runs without targets get them first (the record's margin, else the suite's)."""
    if any("target" not in r for r in results.get("runs", [])):
        margin = float(results["margin"] if results.get("margin") is not None else 0.2)
        results = fill_targets(dict(results, runs=[dict(r) for r in results["runs"]]),
                               margins={r["task"]: margin for r in results["runs"]})
    v = verdict(results)
    lines = [f"verdict: {'PASS' if v['pass'] else 'FAIL'}: {v['method']} reaches the target "
             f"within {v['max_relative']:g}x the baseline's time and is ahead of "
             f"{' and '.join(v['rivals'])} at that moment, on every seed"]
    for seed, s in sorted(v["seeds"].items()):
        rel = s["relative_time"]
        when = "never reaches the target" if rel is None else f"relative time {rel:.2f}"
        ahead = ", ".join(f"{'ahead of' if ok else 'not ahead of'} {rival}"
                          for rival, ok in s["ahead"].items())
        lines.append(f"  seed {seed}: {when}; {ahead}: {'pass' if s['pass'] else 'miss'}")
    return lines
