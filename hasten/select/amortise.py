"""Amortised static pruning: when scoring pays for itself, and EL2N at no extra pass.

Static pruning pays its scoring once and saves on every training run on the kept subset.
`break_even` says after how many such runs the scoring is repaid; `amortisation` gathers
the scoring's cost (seconds, FLOPs) and that count for a summary (`hasten prune --set
full_time=SECONDS`).

`FirstEpochEL2N` records EL2N, ||softmax(f(x)) - onehot(y)||_2 (Paul, Ganguli, Dziugaite
2021, "Deep Learning on a Data Diet: Finding Important Examples Early in Training"), from the
forward passes of the first epoch of the real run: a hook plus a loss function that keeps
the logits it computes anyway, so no proxy is trained and no scoring pass runs. Its cost is
the time spent computing and storing the norms, measured with `time.perf_counter`.

Departures from the paper, on purpose: the paper scores every example with the same
checkpoint (early in training, averaged over 10 runs); here each example is scored by the
model as it was when the example was presented in the first `epochs` epochs (the mean over
those presentations), so early examples are scored by a less trained model. It is the
cheapest EL2N there is, not the paper's; `hasten.select.scorers.el2n` is the paper's.
`first_epoch_el2n` is the same recording as a scorer (`hasten prune --scorer
el2n-first-epoch`): it trains the model for `spec.epochs` epochs and records EL2N over the
first. Used alone it pays for that training; inside a full-data run it costs only the
recording (`meta["recording_seconds"]`).

Where its result is shown: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but
scoring costs more than it saves".
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.errors import ConfigError, DataError
from hasten.core.trainer import Hook, TrainState
from hasten.select.infobatch import gather_records
from hasten.select.per_example import Scores
from hasten.select.proxy import ScoringSpec, el2n_values, train_proxy


def break_even(scoring_seconds: float, full_time_to_target: float,
               subset_time_to_target: float) -> float:
    """How many trainings on the kept subset repay the scoring: the k solving
    scoring + k x subset = k x full, i.e. scoring / (full - subset). 0 when scoring is
    free; infinity when the subset is not faster than the full data."""
    for name, value in (("scoring_seconds", scoring_seconds),
                        ("full_time_to_target", full_time_to_target),
                        ("subset_time_to_target", subset_time_to_target)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    saving = full_time_to_target - subset_time_to_target
    if saving <= 0:
        return math.inf
    return scoring_seconds / saving


def check_times(full_time: float | None, subset_time: float | None) -> None:
    """ConfigErrors for training times that cannot be used (checked before any scoring)."""
    if full_time is not None and not (math.isfinite(full_time) and full_time > 0):
        raise ConfigError(f"full_time must be a number of seconds > 0, got {full_time}")
    if subset_time is not None and not (math.isfinite(subset_time) and subset_time >= 0):
        raise ConfigError(f"subset_time must be a number of seconds >= 0, got {subset_time}")
    if subset_time is not None and full_time is None:
        raise ConfigError("subset_time needs full_time (the full-data training time to "
                          "compare it with)")


def amortisation(scores: Scores, before: int, after: int, full_time: float | None = None,
                 subset_time: float | None = None) -> dict[str, Any]:
    """What scoring cost and, given the full-data training time to target `full_time`, after
    how many trainings on the kept `after` of `before` examples it is repaid (`break_even`;
    None when never). Without `subset_time` a training on the subset is estimated to take
    `after / before` of `full_time` (the same epochs over fewer examples). A scorer that
    can record inside a full-data run (`meta["recording_seconds"]`) also gets the count for
    that case (`break_even_in_run`)."""
    check_times(full_time, subset_time)
    out: dict[str, Any] = {"scoring_seconds": scores.seconds,
                           "scoring_flops": scores.work.get("flops")}
    in_run = scores.meta.get("recording_seconds")
    if in_run is not None:
        out["recording_seconds"] = float(in_run)  # type: ignore[arg-type]
    if full_time is None:
        return out
    estimated = subset_time is None
    subset = full_time * after / before if estimated else float(subset_time)  # type: ignore
    out.update(full_time=full_time, subset_time=subset, subset_time_estimated=estimated)
    for key, cost in (("break_even", scores.seconds), ("break_even_in_run", in_run)):
        if cost is not None:
            value = break_even(float(cost), full_time, subset)  # type: ignore[arg-type]
            out[key] = value if math.isfinite(value) else None
    return out


class FirstEpochEL2N(Hook):
    """Records each example's EL2N from the training forward of its first `epochs`
    presentations per example (counted over the run: while fewer than `epochs` x size
    examples have been drawn in all).

    Use `loss_fn` as the run's loss (cross-entropy, which also records) and this object as
    a hook; `scores(d)` returns the mean EL2N of each example as `Scores` (higher = harder),
    with the recording time as its cost and no extra work. It maps rows to
    `state.batch_indices`, so no hook before it may change a batch's rows.
    """

    def __init__(self, size: int, epochs: float = 1.0):
        if size < 1:
            raise ConfigError(f"need at least one example, got size {size}")
        if epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {epochs}")
        self.size, self.epochs = size, epochs
        self.total = torch.zeros(size, dtype=torch.float64)
        self.count = torch.zeros(size, dtype=torch.long)
        self.drawn = 0  # examples drawn in all, every rank (the epoch clock)
        self.seconds = 0.0
        self._ids: list[int] | None = None
        self._pending: list[torch.Tensor] = []

    @property
    def recording(self) -> bool:
        return self.drawn < self.epochs * self.size

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        self._ids = list(state.batch_indices) if self.recording else None
        return batch

    def record(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Log a micro-batch's EL2N (ignored outside training, e.g. the FLOP probe, and once
        the first epochs are over)."""
        if self._ids is None:
            return
        start = time.perf_counter()
        values = el2n_values(logits.detach().float(), labels).to(torch.float64).cpu()
        ids = torch.as_tensor(self._ids, dtype=torch.long)
        self._ids = None
        if len(ids) != len(values):
            raise ConfigError(f"el2n: the batch has {len(values)} rows but "
                              f"state.batch_indices names {len(ids)}")
        self._pending.append(torch.stack([ids.to(torch.float64), values], 1))
        self.seconds += time.perf_counter() - start

    def loss_fn(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy per example, recording the batch's EL2N on the way."""
        x, y = batch
        logits = model(x)
        self.record(logits, y)
        return F.cross_entropy(logits, y, reduction="none")

    def on_step_end(self, state: TrainState) -> None:
        if not self.recording:  # the same on every rank: `drawn` counts all ranks' rows
            return
        start = time.perf_counter()
        rows = torch.cat(self._pending) if self._pending else torch.zeros((0, 2),
                                                                          dtype=torch.float64)
        self._pending = []
        ids, values = gather_records(rows[:, 0].long(), rows[:, 1], state.dist)
        self.total.index_add_(0, ids, values)
        self.count.index_add_(0, ids, torch.ones_like(ids))
        self.drawn += len(ids)  # every rank's rows: all ranks keep the same clock
        self.seconds += time.perf_counter() - start

    def scores(self) -> Scores:
        """Mean recorded EL2N per example; DataError if some example was never recorded."""
        missing = int((self.count == 0).sum())
        if missing:
            raise DataError(f"{missing} of {self.size} examples were not trained on while "
                            "EL2N was recorded; record for at least one whole epoch")
        return Scores((self.total / self.count).numpy(), "el2n-first-epoch", "harder",
                      seconds=self.seconds,
                      work={"examples_forwarded": 0.0, "examples_backpropagated": 0.0},
                      meta={"epochs": self.epochs, "source": "training forward passes"})

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total.clone(), "count": self.count.clone(),
                "drawn": self.drawn, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = state["total"].clone().to(torch.float64)
        self.count = state["count"].clone().to(torch.long)
        self.drawn, self.seconds = int(state["drawn"]), float(state["seconds"])


def first_epoch_el2n(data: Any, spec: ScoringSpec) -> Scores:
    """EL2N recorded over the first epoch of training the model for `spec.epochs` (>= 1)
    epochs, averaged over `spec.runs` runs; no scoring pass. `seconds` and `work` are the
    whole training (what scoring costs when the run serves only to score);
    `meta["recording_seconds"]` is the recording alone (what it costs inside a full-data run
    trained anyway)."""
    spec.validate()
    if spec.epochs < 1:
        raise ConfigError(f"el2n-first-epoch records over the first epoch: epochs must be "
                          f">= 1, got {spec.epochs}")
    start, total = time.perf_counter(), np.zeros(len(data))
    work: dict[str, float] = {}
    recording = 0.0
    for r in range(spec.runs):
        rec = FirstEpochEL2N(len(data), epochs=1.0)

        def loss_fn(model: nn.Module, batch: Any, rec: FirstEpochEL2N = rec) -> torch.Tensor:
            logits, labels = spec.logits()(model, batch)
            rec.record(logits, labels)
            return F.cross_entropy(logits.float(), labels, reduction="none")

        _, trained = train_proxy(data, spec, spec.seed + r, hooks=[rec], loss_fn=loss_fn)
        total += rec.scores().values
        recording += rec.seconds
        for key, value in trained.items():
            work[key] = work.get(key, 0.0) + value
    return Scores(total / spec.runs, "el2n-first-epoch", "harder",
                  seconds=time.perf_counter() - start, work=work,
                  meta={**spec.meta(), "recording_seconds": recording,
                        "source": "training forward passes of the first epoch"})
