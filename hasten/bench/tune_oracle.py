"""The oracle of `hasten tune`'s evaluation: the fastest configuration the lever stack's test
phase measured, run on a tune task at the evaluation's budget.

The stack's test phase (plan benchmarks/plans/stack-work.md) priced its configurations by
work and step cost on `fashion-10k-w32` and `sst2-small`; the tune evaluation times its arms
by the clock on `fashion-mnist` and `sst2-small` at B. So the oracle is an arm of its own (the
tune plan's addendum "the oracle as an arm"): the configuration with the lowest median
modelled time to target in the stack's verdict record, its levers and settings read from the
stack's quality record as that run applied them, put on the tune task's recipe by
`hasten.bench.stack.apply_stack` (the plain fp32 recipe, the levers on, compilation charged,
the record's fraction of the budget). Nothing is charged for choosing it: an oracle is known
in advance. Where it is shown: docs/tune.md, "How well it chooses".
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from hasten.bench.harness import Recipe
from hasten.bench.records import load_record
from hasten.bench.stack import StackOptions, apply_stack
from hasten.core.errors import ConfigError

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
# the stack's test-phase verdicts each tune task reads its oracle from (same dataset; the
# Fashion phase ran a cheaper 10,000-image twin of the task)
STACK_VERDICTS = {"fashion-mnist": "stack-verdict-fashion-10k-w32-test-20261207.json",
                  "sst2-small": "stack-verdict-sst2-small-test-20261207.json"}


def _median_time(run: dict[str, Any]) -> float:
    times = [math.inf if v is None else float(v) for v in run["notes"]["by_seed"].values()]
    return statistics.median(times)


def oracle_configuration(task: str, results: Path = RESULTS) -> dict[str, Any]:
    """{"method", "median", "stack", "verdict", "quality"}: the stack test phase's
    configuration with the lowest median modelled time to target (the first of equals), and
    its levers as its run's notes recorded them (`stack`: levers, fraction, choices)."""
    if task not in STACK_VERDICTS:
        raise ConfigError(f"the oracle is defined for {', '.join(STACK_VERDICTS)}, not {task!r}")
    verdict_name = STACK_VERDICTS[task]
    verdict = load_record(results / verdict_name)
    runs = [r for r in verdict["runs"] if r["method"] != verdict["baseline"]]
    best = min(runs, key=_median_time)
    median = _median_time(best)
    if math.isinf(median):
        raise ConfigError(f"{verdict_name}: no configuration reaches its target on the "
                          "median seed, so there is no oracle")
    quality_name = verdict["inputs"]["quality"]
    quality = load_record(results / quality_name)
    stacks = [r["notes"]["stack"] for r in quality["runs"] if r["method"] == best["method"]]
    if not stacks or any(s != stacks[0] for s in stacks):
        raise ConfigError(f"{quality_name}: {best['method']} has no single recorded "
                          "configuration")
    return {"method": best["method"], "median": median, "stack": stacks[0],
            "verdict": verdict_name, "quality": quality_name}


def apply_oracle(recipe: Recipe, task: str, results: Path = RESULTS) -> Recipe:
    """`recipe` with the oracle configuration of `task` on it (see the module's docstring);
    what was applied and where it came from in `recipe.notes["oracle"]`."""
    found = oracle_configuration(task, results)
    stack = found["stack"]
    levers = list(stack["levers"])
    recipe.options = StackOptions(levers=levers, fraction=stack["fraction"],
                                  choices={"levers": dict(stack["choices"]), "plain": None})
    apply_stack(recipe, levers)
    if recipe.notes["stack"]["levers"] != stack["levers"]:
        raise ConfigError(f"the oracle's levers came out as {recipe.notes['stack']['levers']}, "
                          f"not as {found['quality']} recorded them: {stack['levers']}")
    recipe.notes["oracle"] = {k: v for k, v in found.items() if k != "stack"}
    return recipe

