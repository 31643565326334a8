"""Exact and near-duplicate removal for a list of text documents.

Exact: documents equal after lowercasing and whitespace normalisation (hashed, so memory is
one digest per distinct document). Near: MinHash (Broder 1997) signatures of word or
character shingles, indexed with locality-sensitive hashing (MinHashLSH from the `datasketch`
package); a document whose estimated Jaccard similarity to an earlier kept document is at
least `threshold` is dropped. This is the MinHash dedup used for GPT-3/The Pile-style corpora,
suggested as the light-weight replacement for Cramming's Rust suffix-array dedup
(deduplicate-text-datasets, Lee et al. 2022). The first document of each group is kept.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np

from hasten.core.errors import ConfigError, DataError

_SPACE = re.compile(r"\s+")


def normalize_text(doc: str) -> str:
    """Lowercase, collapse every run of whitespace to one space, strip the ends."""
    return _SPACE.sub(" ", doc).strip().lower()


def first_copy(docs: Sequence[str], normalize: bool = True) -> np.ndarray:
    """`first[i]` = index of the first document equal to document i (i itself if none before).

    Equality is after `normalize_text` when `normalize` is true, byte-exact otherwise.
    """
    _check(docs)
    seen: dict[bytes, int] = {}
    first = np.empty(len(docs), dtype=np.int64)
    for i, d in enumerate(docs):
        key = hashlib.blake2b((normalize_text(d) if normalize else d).encode("utf-8"),
                              digest_size=16).digest()
        first[i] = seen.setdefault(key, i)
    return first


def exact_duplicates(docs: Sequence[str], normalize: bool = True) -> np.ndarray:
    """Sorted indices of documents that repeat an earlier document (the copies to drop)."""
    first = first_copy(docs, normalize)
    return np.flatnonzero(first != np.arange(len(docs)))


def shingles(doc: str, size: int = 5, unit: Literal["words", "chars"] = "words") -> set[bytes]:
    """The set of `size`-grams of lowercased words (or characters) of `doc`, as UTF-8 bytes.

    A document shorter than `size` units gives one shingle (all of it); an empty one, none.
    """
    if unit == "words":
        items = normalize_text(doc).split()
        sep = " "
    elif unit == "chars":
        items = list(normalize_text(doc))
        sep = ""
    else:
        raise ConfigError(f"unknown shingle unit {unit!r}; known: words, chars")
    if not items:
        return set()
    if len(items) <= size:
        return {sep.join(items).encode("utf-8")}
    return {sep.join(items[i:i + size]).encode("utf-8") for i in range(len(items) - size + 1)}


def near_duplicates(docs: Sequence[str], threshold: float = 0.8, num_perm: int = 128,
                    shingle: int = 5, seed: int = 1,
                    unit: Literal["words", "chars"] = "words",
                    lsh_weights: tuple[float, float] = (0.1, 0.9),
                    ) -> tuple[np.ndarray, list[list[int]]]:
    """Near duplicates by MinHash LSH: (sorted indices to drop, groups).

    Documents are visited in order; each is compared (LSH candidates, then the MinHash
    estimate of Jaccard similarity >= `threshold`) with the documents kept so far. A match is
    dropped and joins the group of the earliest matching kept document. Each group is
    `[kept, dropped, ...]`; only groups with a drop are returned. Documents without shingles
    (empty) are never dropped here (exact dedup handles them).

    `lsh_weights` (false-positive, false-negative) tune the LSH bands; the default favours
    recall, since every candidate is checked against the threshold anyway (with 128
    permutations a pair at Jaccard 0.85 is missed about 2% of the time at threshold 0.8,
    instead of 30% with datasketch's balanced default). The Jaccard estimate itself has a
    standard error of about sqrt(J(1-J)/num_perm), 0.03 at J = 0.85.
    """
    from datasketch import MinHash, MinHashLSH

    _check(docs)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    if num_perm < 2 or shingle < 1:
        raise ConfigError(f"num_perm must be >= 2 and shingle >= 1, got {num_perm}, {shingle}")
    sets = [shingles(d, shingle, unit) for d in docs]
    sigs = MinHash.bulk(sets, num_perm=num_perm, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=lsh_weights)
    groups: dict[int, list[int]] = {}
    drop: list[int] = []
    for i, (s, m) in enumerate(zip(sets, sigs, strict=True)):
        if not s:
            continue
        hits = [int(j) for j in lsh.query(m) if sigs[int(j)].jaccard(m) >= threshold]
        if hits:
            head = min(hits)
            groups.setdefault(head, [head]).append(i)
            drop.append(i)
        else:
            lsh.insert(i, m)
    return np.asarray(drop, dtype=np.int64), [groups[k] for k in sorted(groups)]


def dedup(docs: Sequence[str], *, exact: bool = True, near: bool = True,
          normalize: bool = True, threshold: float = 0.8, num_perm: int = 128,
          shingle: int = 5, seed: int = 1, unit: Literal["words", "chars"] = "words",
          ) -> tuple[np.ndarray, dict]:
    """Exact then near deduplication: (keep mask, summary with the count each rule removed).

    Near dedup runs on the documents that survive exact dedup.
    """
    _check(docs)
    t0 = time.perf_counter()
    keep = np.ones(len(docs), dtype=bool)
    summary: dict[str, object] = {"documents": len(docs), "exact_removed": 0,
                                  "near_removed": 0, "near_groups": 0}
    if exact:
        d = exact_duplicates(docs, normalize)
        keep[d] = False
        summary["exact_removed"] = int(len(d))
    if near:
        alive = np.flatnonzero(keep)
        d, groups = near_duplicates([docs[i] for i in alive], threshold=threshold,
                                    num_perm=num_perm, shingle=shingle, seed=seed, unit=unit)
        keep[alive[d]] = False
        summary["near_removed"] = int(len(d))
        summary["near_groups"] = len(groups)
    summary.update(kept=int(keep.sum()), seconds=time.perf_counter() - t0,
                   settings={"exact": exact, "near": near, "normalize": normalize,
                             "threshold": threshold, "num_perm": num_perm,
                             "shingle": shingle, "unit": unit, "seed": seed})
    return keep, summary


def _check(docs: Sequence[str]) -> None:
    if isinstance(docs, str):
        raise ConfigError("docs must be a list of documents, not one string")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i} is a {type(d).__name__}, not a str")
