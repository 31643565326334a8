"""The tuner's decisions, as pure functions of what it measured.

A step lever (bf16, a kernel, compile) changes what a training step costs: it is kept when
every alternation of the interleaved timing found it cheaper (its interquartile range of
cost ratios lies below 1), and, for compile, when the time it saves over the training left
exceeds its compile time. A data lever (pruning, selection, a curriculum, a micro-batch) changes
how much a step is worth: it is judged by validation loss at equal training time against the
baseline, at two pilot lengths L and 2L. Short pilots favour levers that help early, so the
gain is extrapolated along its trend: one step of trend per doubling of length, over at most
`HORIZON` more doublings (the gain at 2L plus twice its change from L to 2L). A lever is kept
only when that extrapolated gain, and its gain at 2L, both exceed the noise: the spread of the
baseline's validation loss between seeds at 2L. Known failure mode: a lever whose benefit
appears only late (after 2L x 2^HORIZON) is never kept; and the seed spread of two pilots is
a small sample, so the noise floor is itself noisy.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

HORIZON = 2  # doublings of length the trend is carried over
MIN_NOISE = 1e-3  # a floor for the noise (relative to the baseline's loss)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile), by linear interpolation."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def step_verdict(ratios: Sequence[float], compile_seconds: float = 0.0,
                 train_seconds: float = 0.0) -> dict[str, Any]:
    """Keep a step lever iff its cost ratios' upper quartile is below 1 and what it saves over
    `train_seconds` of training exceeds its one-off `compile_seconds`."""
    low, median, high = quartiles(ratios)
    saved = (1.0 - median) * train_seconds
    keep = high < 1.0 and saved > compile_seconds
    if high >= 1.0:
        why = f"cost ratio {median:.3f} (IQR {low:.3f}-{high:.3f}) is not clearly below 1"
    elif saved <= compile_seconds:
        why = (f"saves {saved:.0f} s of {train_seconds:.0f} s but compiling costs "
               f"{compile_seconds:.0f} s")
    else:
        why = f"cost ratio {median:.3f} (IQR {low:.3f}-{high:.3f}) below 1"
    return {"keep": keep, "ratio": median, "iqr": [low, high], "why": why,
            "time_ratio": median if keep else 1.0}


def noise(baseline_losses: Sequence[float]) -> float:
    """The spread of the baseline's validation loss between seeds (max - min), floored."""
    spread = max(baseline_losses) - min(baseline_losses)
    return max(spread, MIN_NOISE * abs(statistics.mean(baseline_losses)))


def data_verdict(base_short: Sequence[float], base_long: Sequence[float], short: float,
                 long: float) -> dict[str, Any]:
    """Keep a data lever iff its extrapolated gain and its gain at 2L both exceed the noise.
    Gains are reductions of validation loss at equal training time, relative to the
    baseline's loss at that length (a lever that takes a constant share off a falling curve
    has a steady gain); the noise is the baseline's seed spread, relative likewise."""
    mean_short, mean_long = statistics.mean(base_short), statistics.mean(base_long)
    floor = noise(base_long) / mean_long
    gain_short = (mean_short - short) / mean_short
    gain_long = (mean_long - long) / mean_long
    extrapolated = gain_long + HORIZON * (gain_long - gain_short)
    keep = gain_long > floor and extrapolated > floor
    if gain_long <= floor:
        why = f"gain {gain_long:+.2%} at 2L is within the noise {floor:.2%}"
    elif extrapolated <= floor:
        why = (f"gain {gain_short:+.2%} at L shrinks to {gain_long:+.2%} at 2L: extrapolated "
               f"{extrapolated:+.2%}, within the noise {floor:.2%}")
    else:
        why = (f"gain {gain_long:+.2%} at 2L (extrapolated {extrapolated:+.2%}) above the "
               f"noise {floor:.2%}")
    return {"keep": keep, "gain_short": gain_short, "gain_long": gain_long,
            "extrapolated": extrapolated, "noise": floor, "why": why,
            "time_ratio": time_ratio(base_short, base_long, long) if keep else 1.0}


def time_ratio(base_short: Sequence[float], base_long: Sequence[float], long: float) -> float:
    """When the baseline would reach the lever's loss at 2L, as a fraction of 2L: the
    baseline's loss taken as linear in log(time) through its means at L and 2L."""
    a, b = statistics.mean(base_short), statistics.mean(base_long)
    if not a > b:  # the baseline did not improve: no trend to read
        return 1.0
    doublings = (b - long) / (a - b)  # beyond 2L, in doublings of time (log-linear)
    return 1.0 / (2.0 ** doublings)
