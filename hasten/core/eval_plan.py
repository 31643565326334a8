"""Evaluation that fits the budget, and evaluation split across DDP ranks.

`EvalPlan` decides which of a run's evaluations (every `eval_every` of the budget, and always
the final one) run. With a step, example, token or FLOP budget all of them run. With a
seconds budget the user waits for evaluations too, so they get at most `share` of it: the
first evaluation is timed, the remaining ones that fit are spread evenly over the rest of the
run (with one evaluation's time kept for the final), and the others are skipped. The first
is cut short (single process) once it has taken the whole allowance, so a test set that
takes longer to score than the whole budget costs the allowance and one (the final)
evaluation, not ten evaluations, nor two.

With a seconds budget the final evaluation also ends by a deadline: when the wall limit
(1.25 x budget + 15 s) comes, less a small reserve for writing results. In a command the
limit counts from the process start, or from the end of the previous run in the same process
(`count_wall_from`); elsewhere from the run's start. An evaluate function that takes
`deadline` (as `sharded_eval`'s do) scores its set in `EVAL_PARTS` contiguous parts and
stops before a part that would end past it, reporting the fraction scored as
`eval_fraction`; one that does not runs whole.

`sharded_eval(partial, finish)` builds an `evaluate(model, shard=(rank, world_size))`:
each rank scores its contiguous slice (`shard_bounds`), the partial sums are all-reduced
(float64), and `finish` turns the totals into metrics, so every rank reports the same
numbers and N ranks evaluate N times faster. The trainer passes `shard` to any evaluate
function that takes it; called plainly it scores everything on one process.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hasten.core import distributed

EVAL_PARTS = 10  # a final evaluation cut by its deadline still scores whole tenths of the set
WRITE_RESERVE = 4.0  # seconds kept after the final evaluation: results, a report, a plot, exit


def process_start() -> float:
    """`time.monotonic()` at this process's start (Linux: from /proc; elsewhere, the
    moment hasten was imported)."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


_WALL: dict[str, float | None] = {"since": None}


def count_wall_from(moment: float | None) -> None:
    """Count the next run's wall limit from `moment` (`time.monotonic()`; a command passes
    `process_start()`, so imports and data loading count), and each later run's from the end
    of the one before (a suite runs many). None: each run counts from its own start (the
    default for `train()` called from a user's program)."""
    _WALL["since"] = moment


def wall_since() -> float | None:
    """Where the next run's wall limit counts from (None: the run's own start)."""
    return _WALL["since"]


def mark_run_end() -> None:
    """A run ended: in a command, the next run's wall limit counts from now."""
    if _WALL["since"] is not None:
        _WALL["since"] = time.monotonic()


PartialFn = Callable[[nn.Module, int, int], dict[str, float]]
FinishFn = Callable[[dict[str, float]], dict[str, float]]


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of `n` items for `rank` of `world_size`: contiguous, sizes differing by at
    most one, together covering all `n`."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def sharded_eval(partial: PartialFn, finish: FinishFn) -> Callable[..., dict[str, float]]:
    """An evaluate function over `partial(model, rank, world_size)` (additive sums over this
    rank's share of the evaluation set, e.g. {"correct": 812, "count": 1000}) and
    `finish(totals) -> metrics`. Under DDP the trainer calls it with `shard=(rank,
    world_size)` and the sums are all-reduced; `evaluate(model)` scores the whole set.
    The parts stay reachable as `evaluate.partial` and `evaluate.finish`."""

    def evaluate(model: nn.Module, shard: tuple[int, int] = (0, 1),
                 deadline: float | None = None) -> dict[str, float]:
        rank, world = shard
        if deadline is not None and world == 1:
            return _by_deadline(model, partial, finish, deadline)
        sums = partial(model, rank, world)
        if world > 1:
            keys = sorted(sums)
            device = next(iter(model.parameters())).device
            t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
            d = distributed.Dist(rank=rank, world_size=world, device=device)
            distributed.all_reduce(d, t, "sum", doing="an evaluation")
            sums = dict(zip(keys, t.tolist(), strict=True))
        return finish(sums)

    evaluate.__doc__ = partial.__doc__
    evaluate.partial, evaluate.finish = partial, finish  # type: ignore[attr-defined]
    return evaluate


def _by_deadline(model: nn.Module, partial: PartialFn, finish: FinishFn,
                 deadline: float) -> dict[str, float]:
    """Score `EVAL_PARTS` contiguous parts in turn (at least one), stopping before a part
    that, at the mean pace so far, would end past `deadline` (`time.monotonic()`);
    `eval_fraction` says how much was scored when not all."""
    sums: dict[str, float] = {}
    done, started = 0, time.monotonic()
    for part in range(EVAL_PARTS):
        for k, v in partial(model, part, EVAL_PARTS).items():
            sums[k] = sums.get(k, 0) + v
        done += 1
        now = time.monotonic()
        if now + (now - started) / done > deadline:
            break
    metrics = finish(sums)
    if done < EVAL_PARTS:
        metrics = {**metrics, "eval_fraction": done / EVAL_PARTS}
    return metrics


def takes_deadline(evaluate: Callable[..., Any]) -> bool:
    """Whether an evaluate function accepts the `deadline` keyword."""
    try:
        return "deadline" in inspect.signature(evaluate).parameters
    except (TypeError, ValueError):
        return False


def takes_keyword(evaluate: Callable[..., Any], name: str) -> bool:
    """Whether an evaluate function accepts the keyword `name`."""
    try:
        return name in inspect.signature(evaluate).parameters
    except (TypeError, ValueError):
        return False


def takes_shard(evaluate: Callable[..., Any]) -> bool:
    """Whether an evaluate function accepts the `shard` keyword."""
    try:
        return "shard" in inspect.signature(evaluate).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class EvalPlan:
    """Which evaluations run. `allowance`: seconds all evaluations may take (None: no limit,
    every one runs). Ranks feed it the same (all-reduced) durations, so they agree."""

    every: float
    allowance: float | None = None
    done: int = 0  # evaluations run so far (the final one included)
    seconds: float = 0.0  # ... and their seconds
    planned: list[float] | None = None  # points still to run, once the first was timed
    skipped: int = 0
    total_points: int = 0  # intermediate points of the whole run

    def __post_init__(self) -> None:
        self.total_points = len(self.points_after(0.0))

    def points_after(self, progress: float) -> list[float]:
        """The intermediate evaluation points (multiples of `every` below 1) after
        `progress`."""
        k = math.floor(progress / self.every + 1e-9) + 1
        out = []
        while k * self.every < 1.0 - 1e-9:
            out.append(round(k * self.every, 12))
            k += 1
        return out

    @property
    def cost(self) -> float | None:
        """Mean seconds of one evaluation, once one ran (a lower bound, the seconds of the
        one cut short, if none finished yet)."""
        return self.seconds / self.done if self.done else (self.seconds or None)

    def limit(self, final: bool) -> float | None:
        """Seconds the evaluation about to run may take before it is cut short (None: not
        cut). With a seconds budget the first intermediate one may take the whole allowance
        of all evaluations, no more. The final one (the run's result) and the planned ones
        (they fit) are never cut."""
        if self.allowance is None or final or self.done or self.planned is not None:
            return None
        return self.allowance

    def cut(self, seconds: float) -> str:
        """Book an evaluation cut short at its `limit` after `seconds`: no intermediate
        evaluation runs after it, only the final one. Returns the line that says so."""
        self.seconds += seconds
        self.skipped += 1
        self.planned = []
        return (f"evaluation takes over {seconds:.1f}s, more than the {self.allowance:.1f}s "
                "allowed for all evaluations: it was cut short and only the final one runs")

    def should_run(self, point: float) -> bool:
        """Whether the intermediate evaluation due at `point` runs."""
        if self.allowance is None:
            return True
        if self.planned is not None and not any(abs(point - p) < 1e-9 for p in self.planned):
            return False
        if self.done == 0:
            return True
        cost = self.cost or 0.0
        return self.seconds + 2 * cost <= self.allowance + 1e-9  # this one and the final

    def record(self, seconds: float, progress: float) -> str | None:
        """Book an evaluation that took `seconds`. After the first, plans the rest and
        returns the one line that says so (None when there is nothing to plan)."""
        first = self.done == 0
        self.done += 1
        self.seconds += seconds
        if not first or self.allowance is None or progress >= 1.0:
            return None
        self.planned = self._spread(progress)
        left = len(self.points_after(progress))
        return (f"evaluation takes {seconds:.1f}s: {len(self.planned)} of the {left} remaining "
                f"evaluations fit in {self.allowance:.1f}s, plus the final one")

    def _spread(self, progress: float) -> list[float]:
        points = self.points_after(progress)
        cost = max(self.cost or 0.0, 1e-9)
        fit = math.floor((self.allowance - self.seconds - cost) / cost + 1e-9)
        if fit >= len(points):
            return points
        chosen: list[float] = []
        for m in range(max(0, fit)):
            target = progress + (m + 1) * (1.0 - progress) / (fit + 1)
            free = [p for p in points if not chosen or p > chosen[-1]]
            if free:
                chosen.append(min(free, key=lambda p: abs(p - target)))
        return chosen

    def skip(self) -> None:
        self.skipped += 1

    def seconds_left(self, progress: float) -> float:
        """Expected seconds of the evaluations still to come (the final one included); 0
        until one has been timed."""
        cost = self.cost
        if cost is None:
            return 0.0
        later = [p for p in self.points_after(progress)
                 if self.planned is None or any(abs(p - q) < 1e-9 for q in self.planned)]
        return cost * (len(later) + 1)

    def summary(self) -> dict[str, Any]:
        """Planned and actual evaluation figures for the run's record."""
        return {"allowance_seconds": self.allowance, "points": self.total_points + 1,
                "done": self.done, "skipped": self.skipped, "seconds": self.seconds}

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "seconds": self.seconds, "planned": self.planned,
                "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done, self.seconds = int(state["done"]), float(state["seconds"])
        self.planned = list(state["planned"]) if state["planned"] is not None else None
        self.skipped = int(state["skipped"])

