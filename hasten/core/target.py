"""Time to target: when did a run's metric first reach a quality target?

Every run records a curve of (train seconds, work counters, metric value) at each evaluation.
The first point at or past the target gives the time and the work it took. Comparing methods
by this, rather than by final quality alone, is what the seed's "relative time" rows show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TargetHit:
    """The first evaluation at which a curve reached its target."""

    seconds: float
    work: Mapping[str, float]
    value: float
    index: int


def time_to_target(
    curve: Sequence[Sequence[Any]], target: float, higher_is_better: bool = True
) -> TargetHit | None:
    """Return the first point of `curve` whose value reaches `target`, or None if none does.

    `curve` is a list of `[seconds, work, value]` (work a dict of counters), in the order the
    evaluations happened. "Reaches" means `value >= target` (or `<=` when lower is better).
    """
    for i, (seconds, work, value) in enumerate(curve):
        if value is None:
            continue
        if (value >= target) if higher_is_better else (value <= target):
            return TargetHit(float(seconds), dict(work), float(value), i)
    return None
