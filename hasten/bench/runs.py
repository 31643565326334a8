"""Reading the runs of a results dict: the small helpers that the tables (`hasten.bench.
report`) and the curves (`hasten.bench.curves`) share."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

PERCENT_METRICS = frozenset({"accuracy", "acc", "top1", "top5", "top1_accuracy",
                             "top5_accuracy", "error_rate"})


def is_number(x: Any) -> bool:
    """True for a finite real number (not a bool, None or NaN)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def runs_of(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(results.get("runs") or [])


def group(runs: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """Group runs by a field, keeping first-appearance order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(str(run.get(key)), []).append(run)
    return groups


def first_number(values: Iterable[Any]) -> float | None:
    return next((float(v) for v in values if is_number(v)), None)


def metric_label(metric: Any) -> str:
    name = str(metric) if metric else "metric"
    return f"{name} (%)" if name.lower() in PERCENT_METRICS else name
