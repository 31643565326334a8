"""Learning-rate and batch-size schedules as functions of budget progress.

Each LR schedule maps progress p in [0, 1] to a multiplier of the peak learning rate. Because
p comes from the `Budget` (steps, examples, tokens, FLOPs or wall-clock seconds), one recipe
holds from a seconds-long smoke test to a day-long run: the 24h-BERT and Cramming recipes tie
their schedules to the time budget the same way.

Shapes: constant, linear warmup + linear decay, cosine (with warmup), one-cycle, and the
Cramming "triangle" (start at 25% of peak, peak at 75% of the budget, zero at the end).
`batch_multiple` ramps the batch size, in multiples of the micro-batch (gradient
accumulation), as a function of progress too.

Each function is plain: use it in any loop, e.g. `lr = peak * cosine(step / total)`.
`budget_lr(optimizer, budget, "cosine")` wraps one as a `torch.optim.lr_scheduler.LambdaLR`
whose factor follows a `Budget`, for loops that step a torch scheduler (the HF `Trainer`,
Lightning's `configure_optimizers`, a hand-written loop).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from hasten.core.budget import Budget
from hasten.core.checks import check_bool, check_number, fail
from hasten.core.errors import ConfigError

Schedule = Callable[[float], float]


def _clip(p: float) -> float:
    return min(1.0, max(0.0, float(p)))


def constant(p: float, warmup: float = 0.0) -> float:
    """1 after an optional linear warmup over the first `warmup` fraction."""
    p = _clip(p)
    return p / warmup if warmup > 0 and p < warmup else 1.0


def linear(p: float, warmup: float = 0.0, final: float = 0.0) -> float:
    """Linear warmup from 0 to 1 over `warmup`, then linear decay to `final` at p = 1."""
    p = _clip(p)
    if warmup > 0 and p < warmup:
        return p / warmup
    span = 1.0 - warmup
    return 1.0 - (1.0 - final) * ((p - warmup) / span if span > 0 else 1.0)


def cosine(p: float, warmup: float = 0.0, final: float = 0.0) -> float:
    """Linear warmup over `warmup`, then half a cosine from 1 down to `final` at p = 1."""
    p = _clip(p)
    if warmup > 0 and p < warmup:
        return p / warmup
    span = 1.0 - warmup
    t = (p - warmup) / span if span > 0 else 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def one_cycle(p: float, peak_at: float = 0.3, start: float = 0.04, final: float = 1e-4) -> float:
    """Smith's one-cycle: cosine up from `start` to 1 at `peak_at`, cosine down to `final`.

    Defaults follow PyTorch's OneCycleLR (div_factor 25 -> start 0.04, pct_start 0.3).
    """
    p = _clip(p)
    if p < peak_at:
        t = p / peak_at
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * t))
    t = (p - peak_at) / (1.0 - peak_at) if peak_at < 1 else 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def triangle(p: float, start: float = 0.25, peak_at: float = 0.75, final: float = 0.0) -> float:
    """Cramming's one-cycle "triangle": linear from `start` x peak up to peak at `peak_at`
    of the budget, then linear down to `final` at the end."""
    p = _clip(p)
    if p < peak_at:
        return start + (1.0 - start) * p / peak_at
    span = 1.0 - peak_at
    return 1.0 - (1.0 - final) * ((p - peak_at) / span if span > 0 else 1.0)


def step(p: float, at: float = 0.5, factor: float = 0.1) -> float:
    """A single step decay: 1 until `at` of the budget, then `factor` (the dataset-distillation
    papers' evaluation schedule: lr x 0.1 at half)."""
    return 1.0 if _clip(p) < at else factor


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "one-cycle": one_cycle,
    "triangle": triangle,
    "step": step,
}


def make_schedule(name: str, **params: float) -> Schedule:
    """The schedule called `name` with its parameters bound, e.g. ("cosine", warmup=0.05)."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    fn = SCHEDULES[name]
    try:
        fn(0.5, **params)
    except TypeError as err:
        raise ConfigError(f"bad parameters for schedule {name!r}: {err}") from None
    return partial(fn, **params)


def batch_multiple(p: float, start: int = 1, end: int = 1, until: float = 0.0) -> int:
    """How many micro-batches make one optimizer step at progress p.

    Ramps linearly from `start` to `end` over the first `until` fraction of the budget (the
    24h-BERT/Cramming batch-size ramp), rounding down, then stays at `end`.
    """
    if start < 1 or end < 1:
        raise ConfigError(f"batch multiples must be >= 1, got start={start}, end={end}")
    p = _clip(p)
    if until <= 0 or p >= until:
        return int(end)
    return int(math.floor(start + (end - start) * p / until))


def next_step_progress(budget: Budget, steps_done: int = 0) -> float:
    """Where `budget` will be when the next optimizer step ends: for a steps budget, the
    steps done plus one; for any other unit, the amount used plus the mean cost of one step
    so far (steps counted in `budget.work.steps`, else `steps_done`; none yet: no cost).
    The mean comes from the budget's own counters, so it survives a resume."""
    if budget.unit == "steps":
        return budget.projected_progress(1.0)
    done = budget.work.steps or steps_done
    return budget.projected_progress(budget.used() / done if done > 0 else 0.0)


class BudgetLR(torch.optim.lr_scheduler.LambdaLR):
    """A `LambdaLR` whose factor is a schedule at a `Budget`'s progress (see `budget_lr`).

    `budget` is read at each `step()`; it is not part of `state_dict()`, which holds only
    numbers (the budget saves its own state), so checkpoints load with `weights_only=True`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, budget: Budget, shape: Schedule,
                 projected: bool = True):
        self.budget, self.shape, self.projected = budget, shape, projected
        self.floor = 0.0  # the highest progress used so far: the schedule never runs back

        def factor(epoch: int) -> float:
            return self.factor(epoch)

        super().__init__(optimizer, factor)

    def factor(self, calls: int) -> float:
        p = next_step_progress(self.budget, calls) if self.projected else self.budget.progress()
        self.floor = max(self.floor, p)
        return self.shape(self.floor)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in ("budget", "shape"):
            state.pop(key, None)
        return state


def budget_lr(optimizer: torch.optim.Optimizer, budget: Budget, schedule: str = "cosine",
              projected: bool = True, **params: float) -> BudgetLR:
    """A torch LR scheduler whose factor (of each group's initial LR) is `schedule` at the
    progress of `budget`, so the LR ends its schedule when the budget is spent, whatever the
    unit: steps, examples, tokens, FLOPs or wall-clock seconds.

    Call `scheduler.step()` after each optimizer step, once the step is counted in the
    budget (`budget.work.steps += 1`; hasten's callbacks for the HF Trainer and Lightning do
    it). The factor set then is for the step to come, at the progress that step will have
    reached when it ends (as hasten's trainer does): for a steps budget, (steps + 1) /
    total; for other units, the amount used plus the mean cost of one step so far. That
    mean comes from the budget's own counters, so a resumed run projects correctly.
    `projected=False` uses the progress now instead. The factor never decreases its
    progress, so a fast step after a slow one does not move the schedule back.

        sched = budget_lr(opt, Budget("20m"), "cosine", warmup=0.05)
    """
    where = "budget_lr"
    if not isinstance(optimizer, torch.optim.Optimizer):
        fail(where, "optimizer", optimizer, "a torch optimizer (e.g. torch.optim.AdamW(...))")
    if not isinstance(budget, Budget):
        accepts = "a Budget, the one the loop counts its steps in"
        if isinstance(budget, str):
            accepts += f" (Budget({budget!r}), shared with the loop)"
        fail(where, "budget", budget, accepts)
    if not isinstance(schedule, str):
        fail(where, "schedule", schedule, f"a schedule name ({', '.join(SCHEDULES)})")
    check_bool(where, "projected", projected)
    for name, value in params.items():
        check_number(where, name, value)
    return BudgetLR(optimizer, budget, make_schedule(schedule, **params), projected)
