"""Selectors: which examples of a scored dataset to keep. Each returns sorted indices.

The direction is always in the name or an argument, never implied by a score's sign: every
selector reads `Scores.hardness()` (higher = harder), so a score with higher_is="easier"
(margin, AUM) is flipped before "hardest" or "easiest" is decided.

`keep` is the fraction kept, in (0, 1]; the number kept is round(keep * n), at least 1.
Ties are broken by dataset index (lower index first), so results are deterministic.

    keep_hardest / keep_easiest   the extremes (Paul et al. 2021 keep the hardest)
    keep_random                   the uniform baseline
    class_balanced                hardest/easiest within each class, classes kept in proportion
    ccs                           Coverage-centric Coreset Selection (Zheng et al., ICLR 2023)
    offset                        drop the very hardest (likely noise), keep the next hardest
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hasten.core.errors import ConfigError, DataError, check_options
from hasten.select.per_example import Scores


def kept_count(n: int, keep: float) -> int:
    """round(keep * n), at least 1; ConfigError unless keep is in (0, 1]."""
    if not 0 < keep <= 1:
        raise ConfigError(f"keep must be a fraction in (0, 1], got {keep}")
    if n < 1:
        raise DataError("cannot select from an empty dataset")
    return max(1, round(keep * n))


def _fraction(name: str, value: float) -> float:
    if not 0 <= value < 1:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")
    return value


def _hardest_first(hardness: np.ndarray) -> np.ndarray:
    """Indices from hardest to easiest; ties by lower index."""
    return np.argsort(-hardness, kind="stable")


def keep_hardest(scores: Scores, keep: float) -> np.ndarray:
    """The round(keep * n) hardest examples."""
    m = kept_count(len(scores), keep)
    return np.sort(_hardest_first(scores.hardness())[:m])


def keep_easiest(scores: Scores, keep: float) -> np.ndarray:
    """The round(keep * n) easiest examples."""
    m = kept_count(len(scores), keep)
    return np.sort(np.argsort(scores.hardness(), kind="stable")[:m])


def keep_random(n: int, keep: float, seed: int = 0) -> np.ndarray:
    """round(keep * n) examples drawn uniformly without replacement."""
    m = kept_count(n, keep)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def _class_quotas(sizes: np.ndarray, m: int) -> np.ndarray:
    """Split m over classes in proportion to their sizes (largest remainder; ties to the
    larger class, then the lower label), so the total is exactly m."""
    share = sizes * (m / sizes.sum())
    quota = np.floor(share).astype(np.int64)
    order = np.lexsort((np.arange(len(sizes)), -sizes, -(share - quota)))
    quota[order[: m - int(quota.sum())]] += 1
    return quota


def class_balanced(scores: Scores, labels: np.ndarray | Any, keep: float,
                   which: str = "hardest") -> np.ndarray:
    """The hardest (or easiest) examples of each class, each class keeping its share of the
    round(keep * n) total (so class proportions are preserved, up to rounding)."""
    labels = np.asarray(labels).reshape(-1)
    scores.check_length(len(labels))
    if which not in ("hardest", "easiest"):
        raise ConfigError(f"which must be 'hardest' or 'easiest', got {which!r}")
    m = kept_count(len(labels), keep)
    classes, inverse = np.unique(labels, return_inverse=True)
    quotas = _class_quotas(np.bincount(inverse), m)
    hard = scores.hardness() if which == "hardest" else -scores.hardness()
    out = []
    for c, q in enumerate(quotas):
        members = np.flatnonzero(inverse == c)
        out.append(members[_hardest_first(hard[members])[:q]])
    return np.sort(np.concatenate(out))


def ccs_allocation(sizes: np.ndarray | list[int], budget: int) -> np.ndarray:
    """CCS budget split: visit strata from the least populated up; each takes
    min(its size, remaining budget // remaining strata). Empty strata take nothing."""
    sizes = np.asarray(sizes, dtype=np.int64)
    take = np.zeros_like(sizes)
    order = [s for s in np.argsort(sizes, kind="stable") if sizes[s] > 0]
    left = budget
    for i, s in enumerate(order):
        take[s] = min(int(sizes[s]), left // (len(order) - i))
        left -= int(take[s])
    return take


def strata_of(values: np.ndarray, strata: int) -> np.ndarray:
    """Equal-width stratum (0..strata-1) of each value over [min, max]; max goes to the last."""
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.zeros(len(values), dtype=np.int64)
    pos = np.floor((values - lo) / (hi - lo) * strata).astype(np.int64)
    return np.minimum(pos, strata - 1)


def ccs(scores: Scores, keep: float, beta: float = 0.0, strata: int = 50, seed: int = 0,
        cutoff_scores: Scores | None = None) -> np.ndarray:
    """Coverage-centric Coreset Selection (Zheng et al. 2023): drop the round(beta * n)
    hardest by `cutoff_scores` (e.g. AUM; default `scores`), split the rest's score range into
    `strata` equal-width strata, allocate the round(keep * n) budget with `ccs_allocation`
    and sample uniformly (seeded) within each stratum."""
    n = len(scores)
    m = kept_count(n, keep)
    _fraction("beta", beta)
    if strata < 1:
        raise ConfigError(f"strata must be >= 1, got {strata}")
    cut = cutoff_scores if cutoff_scores is not None else scores
    cut.check_length(n)
    n_drop = round(beta * n)
    remaining = np.sort(_hardest_first(cut.hardness())[n_drop:])
    if m > len(remaining):
        raise ConfigError(f"ccs: keep={keep} asks for {m} examples but only {len(remaining)} "
                          f"remain after dropping the beta={beta} hardest")
    stratum = strata_of(scores.hardness()[remaining], strata)
    take = ccs_allocation(np.bincount(stratum, minlength=strata), m)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(remaining[stratum == s], size=int(t), replace=False)
              for s, t in enumerate(take) if t > 0]
    return np.sort(np.concatenate(chosen))


def offset(scores: Scores, keep: float, offset: float = 0.0) -> np.ndarray:
    """Drop the round(offset * n) hardest (likely noise), then keep the round(keep * n) hardest
    of the rest (Paul et al.'s offset for aggressive pruning)."""
    n = len(scores)
    m = kept_count(n, keep)
    skip = round(_fraction("offset", offset) * n)
    if skip + m > n:
        raise ConfigError(f"offset={offset} drops {skip} and keep={keep} asks for {m}, "
                          f"more than the {n} examples")
    return np.sort(_hardest_first(scores.hardness())[skip: skip + m])


def _random(scores: Scores, keep: float, seed: int = 0) -> np.ndarray:
    return keep_random(len(scores), keep, seed)


def _balanced(scores: Scores, keep: float, labels: Any = None,
              which: str = "hardest") -> np.ndarray:
    if labels is None:
        raise ConfigError("class_balanced needs labels= (one class label per example)")
    return class_balanced(scores, labels, keep, which)


SELECTORS: dict[str, Callable[..., np.ndarray]] = {
    "hardest": keep_hardest, "easiest": keep_easiest, "random": _random,
    "class_balanced": _balanced, "ccs": ccs, "offset": offset,
}


def select(method: str, scores: Scores, keep: float, n: int | None = None,
           **kw: Any) -> np.ndarray:
    """Select with `method` (one of SELECTORS); `n`, if given, is the dataset size the scores
    must match. Extra options (labels, which, beta, strata, seed, offset...) go in `kw`."""
    if method not in SELECTORS:
        raise ConfigError(f"unknown selector {method!r}; known: {', '.join(sorted(SELECTORS))}")
    if n is not None:
        scores.check_length(n)
    fn = SELECTORS[method]
    check_options("selector", method, fn, kw, fixed=2)
    return fn(scores, keep, **kw)
