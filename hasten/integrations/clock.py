"""One clock for all processes: what the framework callbacks do at each step end under
torch.distributed, as hasten's trainer does in its own loop.

With a wall-clock budget every process measures its own training seconds, which differ by
a little; if each process followed its own, the LR (and so the replicas) would drift apart
and one process could stop a step before the others and hang them. `share_budget` takes
the largest clock over the processes, so all see one progress and stop at the same step.
Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

import math

import torch

from hasten.core.budget import Budget
from hasten.core.errors import ConfigError


def share_budget(budget: Budget, device: torch.device | str = "cpu") -> bool:
    """Set every process's clock to the largest one (wall-clock budgets), and return whether
    the budget is spent on any process. One all_reduce per call under torch.distributed
    (`device` must suit its backend: CUDA for NCCL); nothing to do in one process."""
    spent = budget.exhausted()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1):
        return spent
    shared = torch.tensor([budget.used() if budget.is_wall_clock else 0.0, float(spent)],
                          dtype=torch.float64, device=device)
    torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
    if budget.is_wall_clock:
        budget.ledger.seconds["train"] += float(shared[0]) - budget.used()
    return bool(shared[1]) or budget.exhausted()


class Every:
    """Events at every `fraction` of a budget: `due(progress)` is true once each time the
    progress crosses the next multiple (0.1: at 0.1, 0.2, ..., 1.0, exactly ten times over a
    run, however the steps fall). Its position rides in the callbacks' checkpoints."""

    def __init__(self, fraction: float | None):
        if fraction is not None and not 0 < fraction <= 1:
            raise ConfigError(f"a budget fraction for evaluations or checkpoints must be in "
                              f"(0, 1], got {fraction}")
        self.fraction = fraction
        self.done = 0  # multiples passed so far

    def due(self, progress: float) -> bool:
        if self.fraction is None:
            return False
        passed = min(round(1 / self.fraction), math.floor(progress / self.fraction + 1e-9))
        if passed > self.done:
            self.done = passed
            return True
        return False
