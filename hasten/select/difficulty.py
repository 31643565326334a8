"""Difficulty scores for curriculum learning on text pairs.

The two heuristics of Platanios et al., "Competence-based Curriculum Learning for Neural
Machine Translation" (NAACL 2019), computed on the *source* side only as in the paper:
- `sentence_length`: number of words;
- `sentence_rarity`: -sum_k log p_hat(w_k), p_hat the corpus unigram frequency
  (case-insensitive), eps = 1e-3 for words the counts have never seen.
Plus `mean_unigram_loglik`, the length-normalised variant (the mean of log p_hat(w_k), the
token-prevalence key Cramming, Geiping & Goldstein 2022, sorts its data by), `model_loss`
(a trained model's per-example loss) and `from_array` (any user array).

Each returns a `hasten.select.per_example.Scores` whose direction is explicit: all are
higher_is="harder" except `mean_unigram_loglik` (a log-likelihood: higher_is="easier").
`CompetenceSampler` and `cdf_ranks` read the direction, so any of them plugs in as is.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hasten.core.errors import DataError
from hasten.core.sampling import gather, to_device
from hasten.select.per_example import Direction, Scores

Tokenize = Callable[[str], Sequence[str]]


def _words(text: str) -> list[str]:
    return text.split()


def _check(texts: Sequence[str]) -> None:
    if len(texts) == 0:
        raise DataError("no sentences to score")


def sentence_length(texts: Sequence[str], tokenize: Tokenize | None = None) -> Scores:
    """Words per sentence (whitespace split unless `tokenize` is given); higher = harder."""
    _check(texts)
    t0 = time.perf_counter()
    split = tokenize or _words
    values = np.array([len(split(s)) for s in texts], dtype=np.float64)
    return Scores(values, "sentence_length", "harder", seconds=time.perf_counter() - t0,
                  meta={"tokenize": "whitespace" if tokenize is None else "custom"})


def unigram_counts(texts: Iterable[str], lowercase: bool = True,
                   tokenize: Tokenize | None = None) -> Counter[str]:
    """Word counts over a corpus, for rarity scores computed against another corpus."""
    split = tokenize or _words
    counts: Counter[str] = Counter()
    for s in texts:
        counts.update(split(s.lower() if lowercase else s))
    return counts


def _log_probs(texts: Sequence[str], eps: float, lowercase: bool,
               counts: Counter[str] | None, tokenize: Tokenize | None) -> list[list[float]]:
    split = tokenize or _words
    if counts is None:
        counts = unigram_counts(texts, lowercase, tokenize)
    total = sum(counts.values())
    if total == 0:
        raise DataError("the unigram counts are empty: every sentence has no words")
    log_eps = math.log(eps)
    log_total = math.log(total)
    out = []
    for s in texts:
        words = split(s.lower() if lowercase else s)
        out.append([math.log(counts[w]) - log_total if counts.get(w) else log_eps
                    for w in words])
    return out


def sentence_rarity(texts: Sequence[str], eps: float = 1e-3, lowercase: bool = True,
                    counts: Counter[str] | None = None, tokenize: Tokenize | None = None
                    ) -> Scores:
    """-sum_k log p_hat(w_k) (Platanios et al. 2019), p_hat from `counts` (default: the
    texts themselves), eps for unseen words; an empty sentence scores 0. Higher = harder."""
    _check(texts)
    t0 = time.perf_counter()
    logs = _log_probs(texts, eps, lowercase, counts, tokenize)
    values = np.array([-sum(lp) for lp in logs], dtype=np.float64)
    return Scores(values, "sentence_rarity", "harder", seconds=time.perf_counter() - t0,
                  meta={"eps": eps, "lowercase": lowercase, "external_counts": counts is not None})


def mean_unigram_loglik(texts: Sequence[str], eps: float = 1e-3, lowercase: bool = True,
                        counts: Counter[str] | None = None, tokenize: Tokenize | None = None
                        ) -> Scores:
    """The mean of log p_hat(w_k) over a sentence's words: rarity without its length bias.
    An empty sentence scores 0 (the most likely). Higher = *easier*."""
    _check(texts)
    t0 = time.perf_counter()
    logs = _log_probs(texts, eps, lowercase, counts, tokenize)
    values = np.array([sum(lp) / len(lp) if lp else 0.0 for lp in logs], dtype=np.float64)
    return Scores(values, "mean_unigram_loglik", "easier", seconds=time.perf_counter() - t0,
                  meta={"eps": eps, "lowercase": lowercase, "external_counts": counts is not None})


@torch.no_grad()
def model_loss(model: nn.Module, data: Dataset, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
               batch_size: int = 256, device: torch.device | str | None = None) -> Scores:
    """Each example's loss under `model` (eval mode, no gradients), with the trainer's
    per-example `loss_fn(model, batch) -> [B]`; higher = harder. Work counts the forwards."""
    n = len(data)
    if n == 0:
        raise DataError("no examples to score")
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    values = np.empty(n, dtype=np.float64)
    try:
        for i in range(0, n, batch_size):
            idx = list(range(i, min(n, i + batch_size)))
            losses = loss_fn(model, to_device(gather(data, idx), dev))
            if losses.shape != (len(idx),):
                raise DataError(f"loss_fn returned shape {list(losses.shape)} for a batch of "
                                f"{len(idx)}: it must return one loss per example")
            values[i:i + len(idx)] = losses.float().cpu().numpy()
    finally:
        model.train(was_training)
    return Scores(values, "model_loss", "harder", seconds=time.perf_counter() - t0,
                  work={"examples_forwarded": float(n)})


def from_array(values: Sequence[float] | np.ndarray, name: str = "difficulty",
               higher_is: Direction = "harder") -> Scores:
    """Any user array as difficulty scores (state the direction)."""
    return Scores(np.asarray(values, dtype=np.float64), name, higher_is)
