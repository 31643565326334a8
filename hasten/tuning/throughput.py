"""A throughput-only autotune, the rival `hasten tune` must match or beat: micro-batch and
precision chosen by training speed alone, as DeepSpeed's autotuner and Lightning's batch-size
finder choose (they never look at quality).

Each candidate (the task's micro-batch, half and twice it; fp32 and bf16) is timed in
alternation with the task's own setting (`ALTERNATIONS` pairs of `STEPS`-step runs), and the
one with the most examples per second wins when its every pair is faster. It measures within
the same share of the budget as `hasten tune` (candidates it has no time for are not
chosen), and its measuring time is charged the same way (`train_budget` is what is left).
Where it is shown: docs/tune.md (the evaluation's throughput-only arm).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hasten.core.budget import Budget, seconds_spec
from hasten.core.errors import ConfigError
from hasten.levers import save_choices
from hasten.tuning.decide import quartiles
from hasten.tuning.runner import RecipeRunner, recipe_maker

ALTERNATIONS, STEPS = 3, 6


def throughput_autotune(target: Any, budget: str | Budget, *, out: str | Path | None = None,
                        quick: bool = False, seed: int = 0, runner: Any = None,
                        share: float = 0.1, clock: Callable[[], float] = time.monotonic
                        ) -> dict[str, Any]:
    """The fastest micro-batch and precision by examples per second; see the module
    docstring."""
    budget = budget if isinstance(budget, Budget) else Budget(budget)
    if not budget.is_wall_clock:
        raise ConfigError(f"the throughput-only autotune charges its measuring to a wall-clock "
                          f"budget: give seconds, minutes or hours, not {budget.spec}")
    started = clock()
    make = recipe_maker(target, quick)
    base_batch = make(seed).config.micro_batch
    runner = runner or RecipeRunner(make, seed)
    options = [[f"micro-batch:size={b}", *p] for b in (base_batch // 2, base_batch,
                                                     2 * base_batch) if b >= 1
               for p in ([], ["bf16"])]
    speed: dict[str, float] = {}
    pair = 0.0  # seconds one timed pair took
    for levers in options:
        key = "+".join(levers)
        ratios = []
        for _ in range(ALTERNATIONS):
            if clock() - started + pair > share * budget.amount:
                break
            t0 = clock()
            mine = runner.step_cost(levers, STEPS)["per_step"]
            theirs = runner.step_cost([], STEPS)["per_step"]
            pair = clock() - t0
            batch = int(levers[0].split("=")[1])
            ratios.append((batch / mine) / (base_batch / theirs))  # examples per second
        low, median, _ = quartiles(ratios) if ratios else (0.0, 1.0, 0.0)
        speed[key] = median if low > 1.0 else 1.0
    best = max(speed, key=lambda k: (speed[k], -len(k)))
    levers = [] if speed[best] <= 1.0 else [x for x in best.split("+")
                                             if x != f"micro-batch:size={base_batch}"]
    spent = clock() - started
    choices = {"levers": levers, "budget": budget.spec, "tune_seconds": round(spent, 3),
               "train_budget": seconds_spec(max(1.0, budget.amount - spent)),
               "speedups": speed, "kind": "throughput-only"}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        save_choices(choices, Path(out) / "choices.json")
    return choices
