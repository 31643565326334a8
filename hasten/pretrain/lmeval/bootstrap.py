"""Percentile bootstrap intervals (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap") for a score that is a mean over groups of per-item results, such as BLiMP's
overall accuracy (the mean over paradigms of each paradigm's accuracy).

`results` maps a group (a paradigm) to its per-item values: a vector [items] for one model,
or a matrix [seeds, items] for several models trained with different seeds that saw the same
items. One bootstrap replicate resamples, with replacement, the items within each group (each
group keeps its size, so the mean over groups keeps its weights) and, for a matrix, the seeds
(the same seed draw for every group, because a seed is one whole model). The statistic of a
replicate is the mean over groups of the mean over its drawn seeds and items; the interval is
the percentile interval of the replicates.

`bootstrap_difference` compares two recipes: the items are drawn once and shared by both (a
paired comparison, tighter than two separate intervals), the seeds of each recipe separately.
Departures: none (no bias correction). The results are shown in docs/benchmarks.md,
"Pretraining ladder: the Cramming ablation by held-out loss".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hasten.core.errors import ConfigError, DataError

Results = Mapping[str, Any]


def _matrix(values: Any, group: str) -> np.ndarray:
    m = np.asarray(values, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise DataError(f"group {group!r}: expected a non-empty [items] or [seeds, items] "
                        f"array, got shape {list(np.shape(values))}")
    if not np.all(np.isfinite(m)):
        raise DataError(f"group {group!r}: non-finite values")
    return m


def _matrices(results: Results) -> dict[str, np.ndarray]:
    if not results:
        raise DataError("no groups to bootstrap")
    mats = {g: _matrix(results[g], g) for g in sorted(results)}
    seeds = {m.shape[0] for m in mats.values()}
    if len(seeds) != 1:
        raise DataError(f"every group needs the same number of seeds, got {sorted(seeds)}")
    return mats


def group_mean(results: Results) -> float:
    """The statistic itself: mean over groups of the mean over seeds and items."""
    return float(np.mean([m.mean() for m in _matrices(results).values()]))


def _replicates(mats: dict[str, np.ndarray], n_boot: int, rng: np.random.Generator,
                items: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """[n_boot] replicate statistics; `items` fixes the item draws (shared by two recipes)."""
    n_seeds = next(iter(mats.values())).shape[0]
    seed_draw = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    total = np.zeros(n_boot)
    rows = np.arange(n_boot)[:, None]
    for g, m in mats.items():
        draw = items[g] if items is not None else rng.integers(0, m.shape[1],
                                                                size=(n_boot, m.shape[1]))
        per_seed = m[:, draw].mean(axis=-1).T  # [n_boot, seeds]
        total += per_seed[rows, seed_draw].mean(axis=1)
    return total / len(mats)


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")


def _summary(point: float, reps: np.ndarray, level: float, n_boot: int) -> dict[str, Any]:
    low, high = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": point, "low": float(low), "high": float(high), "level": level,
            "n_boot": n_boot}


def bootstrap_interval(results: Results, *, n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0) -> dict[str, Any]:
    """{"mean", "low", "high", "level", "n_boot"}: the statistic and its percentile
    interval, resampling items within groups (and seeds, for [seeds, items] arrays).
    Deterministic for a given `seed`."""
    _check(n_boot, level)
    mats = _matrices(results)
    reps = _replicates(mats, n_boot, np.random.default_rng(seed))
    return _summary(group_mean(mats), reps, level, n_boot)


def bootstrap_difference(a: Results, b: Results, *, n_boot: int = 1000, level: float = 0.95,
                         seed: int = 0) -> dict[str, Any]:
    """The statistic of `a` minus that of `b` and its percentile interval: both recipes score
    the same items per group (equal item counts), the item draws are shared, the seeds of
    each recipe are drawn separately."""
    _check(n_boot, level)
    ma, mb = _matrices(a), _matrices(b)
    if ma.keys() != mb.keys():
        raise DataError(f"the two results cover different groups: "
                        f"{sorted(set(ma) ^ set(mb))[:3]}")
    for g in ma:
        if ma[g].shape[1] != mb[g].shape[1]:
            raise DataError(f"group {g!r}: {ma[g].shape[1]} items against {mb[g].shape[1]}")
    rng = np.random.default_rng(seed)
    items = {g: rng.integers(0, m.shape[1], size=(n_boot, m.shape[1])) for g, m in ma.items()}
    reps = _replicates(ma, n_boot, rng, items) - _replicates(mb, n_boot, rng, items)
    return _summary(group_mean(ma) - group_mean(mb), reps, level, n_boot)
