"""Scores from training dynamics: forgetting events and the area under the margin.

    forgetting  forgetting events during training; never-learned examples rank hardest
                (Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural
                Network Learning", ICLR 2019)                                  higher = harder
    aum         area under the margin: mean over training of the assigned logit minus the
                largest other logit (Pleiss et al., "Identifying Mislabeled Data using the
                Area Under the Margin Ranking", NeurIPS 2020)                  higher = easier

Both record every training presentation of a proxy from the training forward itself (no
extra passes): `DynamicsRecorder` is a trainer hook plus the loss that records. The logits
and labels come from `spec.logits_fn(model, batch)` (default: `(model(x), y)`), and the proxy
trains on their cross-entropy, so any classification task scores. Departure on purpose:
examples never classified correctly get the largest presentation count (see
`forgetting_counts`) rather than an infinite count, so the values stay finite.

Where it is shown: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring
costs more than it saves". Registered in `hasten.select.scorers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from hasten.core import distributed
from hasten.core.errors import ConfigError, DataError
from hasten.core.trainer import Hook, TrainState
from hasten.select.per_example import Direction, Scores
from hasten.select.proxy import (
    LogitsFn,
    ScoringSpec,
    Work,
    add_work,
    label_margins,
    train_proxy,
    xy_logits,
)
from hasten.select.shard import gather_rows


def forgetting_counts(index: np.ndarray, correct: np.ndarray, n: int) -> np.ndarray:
    """Forgetting events per example from presentations listed in time order: an event is a
    presentation classified correctly followed by the next one classified wrongly. Examples
    never classified correctly get the largest presentation count of any example, which is
    above any possible event count (events <= presentations / 2), so they rank hardest, as
    Toneva et al.'s "never learned" examples. Raises DataError if an example was never seen."""
    index, correct = np.asarray(index, dtype=np.int64), np.asarray(correct, dtype=bool)
    order = np.argsort(index, kind="stable")  # per example, still in time order
    idx, ok = index[order], correct[order]
    presented = np.bincount(idx, minlength=n)
    if (presented == 0).any():
        raise DataError(f"{int((presented == 0).sum())} of {n} examples were never presented "
                        "during training; train for at least one epoch")
    forgot = (idx[1:] == idx[:-1]) & ok[:-1] & ~ok[1:]
    counts = np.bincount(idx[1:][forgot], minlength=n).astype(np.float64)
    learned = np.bincount(idx[ok], minlength=n) > 0
    counts[~learned] = float(presented.max())
    return counts


def aum_values(index: np.ndarray, margins: np.ndarray, n: int) -> np.ndarray:
    """Area under the margin: each example's mean margin over its presentations."""
    index = np.asarray(index, dtype=np.int64)
    presented = np.bincount(index, minlength=n)
    if (presented == 0).any():
        raise DataError(f"{int((presented == 0).sum())} of {n} examples were never presented "
                        "during training; train for at least one epoch")
    return np.bincount(index, weights=np.asarray(margins, np.float64), minlength=n) / presented


class DynamicsRecorder(Hook):
    """Records, for every training presentation, whether the example was classified correctly
    and its margin (from the training forward itself: no extra passes). Use `loss_fn` as the
    run's loss and the recorder as a hook; `events(dist)` gathers them from all ranks.
    It maps outcomes to `state.batch_indices`, so no hook may change the batch's examples.
    `logits_fn(model, batch)` returns (logits, labels); default `(model(x), y)`."""

    def __init__(self, logits_fn: LogitsFn | None = None) -> None:
        self.logits_fn = logits_fn or xy_logits
        self._rows: list[torch.Tensor] = []
        self._pending: tuple[int, int, list[int]] | None = None
        self._seq = 0

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        self._pending = (self._seq, state.dist.rank, list(state.batch_indices))
        self._seq += 1
        return batch

    def record(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Log one micro-batch (ignored outside training, e.g. the trainer's FLOP probe)."""
        if self._pending is None:
            return
        seq, rank, indices = self._pending
        self._pending = None
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        n = len(indices)
        self._rows.append(torch.stack([
            torch.tensor(indices, dtype=torch.float64), torch.full((n,), float(seq)),
            torch.full((n,), float(rank)), torch.arange(n, dtype=torch.float64),
            (logits.argmax(1) == labels).double(), label_margins(logits, labels).double()], 1))

    def loss_fn(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy per example that also records the batch's outcomes."""
        logits, labels = self.logits_fn(model, batch)
        self.record(logits, labels)
        return F.cross_entropy(logits, labels, reduction="none")

    def events(self, d: distributed.Dist | None = None) -> np.ndarray:
        """[index, seq, rank, position, correct, margin] rows of all ranks, in time order."""
        rows = torch.cat(self._rows) if self._rows else torch.zeros((0, 6), dtype=torch.float64)
        rows = gather_rows(rows, d) if d is not None else rows
        ev = rows.numpy()
        return ev[np.lexsort((ev[:, 3], ev[:, 2], ev[:, 1]))]


def _dynamics(name: str, higher_is: Direction, data: Dataset, spec: ScoringSpec,
              reduce: Callable[[np.ndarray, int], np.ndarray]) -> Scores:
    """Train `spec.runs` proxies with a DynamicsRecorder and reduce its events per example."""
    spec.validate()
    if spec.epochs < 1:
        raise ConfigError(f"{name} needs every example seen during training: epochs must be "
                          f">= 1, got {spec.epochs}")
    start, total = time.perf_counter(), np.zeros(len(data))
    work: Work = {"examples_forwarded": 0.0, "examples_backpropagated": 0.0}
    for r in range(spec.runs):
        rec = DynamicsRecorder(spec.logits_fn)
        _, train_work = train_proxy(data, spec, spec.seed + r, hooks=[rec], loss_fn=rec.loss_fn)
        total += reduce(rec.events(distributed.init(spec.device)), len(data))
        add_work(work, train_work)
    return Scores(total / spec.runs, name, higher_is, seconds=time.perf_counter() - start,
                  work=work, meta=spec.meta())


def forgetting(data: Dataset, spec: ScoringSpec) -> Scores:
    """Forgetting events over `spec.epochs` of training (high = hard)."""
    return _dynamics("forgetting", "harder", data, spec,
                     lambda ev, n: forgetting_counts(ev[:, 0], ev[:, 4] > 0.5, n))


def aum(data: Dataset, spec: ScoringSpec) -> Scores:
    """Area under the margin over `spec.epochs` of training (low = hard or mislabelled)."""
    return _dynamics("aum", "easier", data, spec, lambda ev, n: aum_values(ev[:, 0], ev[:, 5], n))
