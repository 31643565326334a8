"""Selective backprop: spend backward passes only on the examples with the biggest losses.

Paper: Jiang et al. 2019, "Accelerating Deep Learning by Focusing on the Biggest Losers"
(arXiv 1910.00762). Each example gets a cheap scoring forward (no grad, eval mode); its loss
is ranked as a percentile p within the last 1024 losses seen; it is kept for backward with
probability max(p_min, p ** beta) (beta = 3), by an independent coin flip. Kept examples
queue until a full backward batch is collected, so backward batches keep their size. The
first part of training (an epoch in the paper) uses every example. Stale-SB reuses each
example's last scored loss for `staleness` epochs and skips its scoring forward.

Two cheaper selectors share the machinery: in-batch top-k (keep the k highest losses of
each batch, as airbench's CIFAR-10 records do) and a proxy scorer (a small, separately
trained model's losses choose the examples; its training time counts as overhead).

Composer's version differs: percentiles within the batch only, a shrunken backward batch,
exponent tied to the keep fraction. It reports 6-8% savings; the paper up to 3.5x.

Any batch shape: with the run's `collate_fn` (e.g. padding tokenized text), the queue keeps
the selected examples' dataset indices and re-collates them when a backward batch is full,
so rows padded to different lengths never need joining; without one, it keeps tensor rows.
A backward batch is fetched from the dataset again, so a hook placed before this one that
changes batch contents (augmentation) does not reach it; put such hooks after it.

Use it in a plain loop with `select_biggest_losers` + `BackpropQueue`, in the trainer as the
`SelectiveBackprop` hook, or in the HF Trainer with
`hasten.integrations.hf.SelectiveBackpropTrainer`.

Results: docs/benchmarks.md, "Selective backprop: at half the FLOPs a trained proxy gains what a
smaller batch gains; the paper's scoring forward does not pay".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hasten.core.checks import (
    check_choice,
    check_int,
    check_module,
    check_number,
    check_per_example,
    fail,
)
from hasten.core.errors import ConfigError
from hasten.core.sampling import batch_size, gather, to_device
from hasten.core.trainer import Hook, TrainState, autocast_for, measure_flops, probe_batch
from hasten.select.infobatch import gather_records


class LossHistory:
    """The last `size` losses seen (a ring buffer), to rank new losses as percentiles."""

    def __init__(self, size: int = 1024):
        check_int("LossHistory", "size", size, low=1)
        self.size = size
        self.values = torch.empty(0)

    def add(self, losses: torch.Tensor) -> None:
        self.values = torch.cat([self.values, losses.detach().float().cpu()])[-self.size:]

    def percentiles(self, losses: torch.Tensor) -> torch.Tensor:
        """For each loss, the fraction of the history that is <= it (in [0, 1])."""
        if len(self.values) == 0:
            return torch.ones(len(losses))
        losses = losses.detach().float().cpu()
        return (self.values[None, :] <= losses[:, None]).float().mean(1)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "values": self.values.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.values = int(state["size"]), state["values"].clone()


def selection_probability(percentiles: torch.Tensor, beta: float = 3.0,
                          p_min: float = 0.0) -> torch.Tensor:
    """The paper's keep probability: max(p_min, percentile ** beta)."""
    return torch.clamp(percentiles ** beta, min=p_min)


def select_biggest_losers(losses: torch.Tensor, history: LossHistory, beta: float = 3.0,
                          p_min: float = 0.0, generator: torch.Generator | None = None
                          ) -> torch.Tensor:
    """Add `losses` to the history, then keep each example independently with probability
    max(p_min, percentile ** beta). Returns a boolean mask over the batch."""
    where = "select_biggest_losers"
    check_per_example(where, "losses", losses)
    if not isinstance(history, LossHistory):
        fail(where, "history", history, "a LossHistory (e.g. LossHistory(1024))")
    check_number(where, "beta", beta, 0, low_open=True)
    check_number(where, "p_min", p_min, 0, 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        fail(where, "generator", generator, "a torch.Generator or None")
    history.add(losses)
    prob = selection_probability(history.percentiles(losses), beta, p_min)
    return torch.rand(len(prob), generator=generator) < prob


def top_k_mask(losses: torch.Tensor, keep: float) -> torch.Tensor:
    """Keep the round(keep * n) highest losses of the batch (at least one)."""
    check_per_example("top_k_mask", "losses", losses)
    check_number("top_k_mask", "keep", keep, 0, 1, low_open=True)
    k = max(1, round(keep * len(losses)))
    mask = torch.zeros(len(losses), dtype=torch.bool)
    mask[torch.topk(losses.detach().float().cpu(), k).indices] = True
    return mask


def _index(batch: Any, idx: torch.Tensor) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[idx.to(batch.device)]
    if isinstance(batch, (list, tuple)):
        return type(batch)(_index(b, idx) for b in batch)
    if isinstance(batch, dict):
        return {k: _index(v, idx) for k, v in batch.items()}
    raise TypeError(f"cannot select from a batch of type {type(batch).__name__}")


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    raise TypeError(f"cannot concatenate batches of type {type(first).__name__}")


class BackpropQueue:
    """Selected examples wait here until `size` of them make one full backward batch.

    It holds them one of two ways:
    - rows: `push(batch, indices)` keeps the rows of a tensor batch (joined with torch.cat,
      so every tensor needs one shape past the first dimension, as equal-size images do);
    - indices: `push(indices=...)` keeps only the examples' dataset indices; the caller
      fetches and collates what `take()` returns, so batches of padded text, whose lengths
      differ from batch to batch, are re-padded to their own longest row.
    `take()` returns (rows or None, dataset indices) of exactly `size` examples, oldest
    first; `pop()` returns only the rows. One queue holds one kind.
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"backward batch size must be >= 1, got {size}")
        self.size = size
        self.pending: Any = None
        self.indices: list[int] = []  # dataset index of each queued example (-1: unknown)
        self.count = 0

    def push(self, batch: Any = None, indices: Sequence[int] | None = None) -> None:
        """Queue the rows of `batch` (with their dataset `indices`, if known), or, with no
        batch, the examples at `indices`."""
        if batch is None:
            if indices is None:
                raise ValueError("push needs a batch, indices, or both")
            if self.pending is not None:
                raise ValueError("this queue holds batch rows; push rows, not indices alone")
            n = len(indices)
        else:
            n = batch_size(batch)
            if self.count and self.pending is None:
                raise ValueError("this queue holds indices; push indices alone, not rows")
            if indices is not None and len(indices) != n:
                raise ValueError(f"{len(indices)} indices for a batch of {n} rows")
        if n == 0:
            return
        if batch is not None:
            self.pending = batch if self.pending is None else _concat([self.pending, batch])
        self.indices += [int(i) for i in indices] if indices is not None else [-1] * n
        self.count += n

    def ready(self) -> bool:
        return self.count >= self.size

    def take(self) -> tuple[Any, list[int]]:
        """(rows or None, dataset indices) of exactly `size` examples, oldest first; the
        rest stay queued."""
        if not self.ready():
            raise RuntimeError(f"queue holds {self.count} of {self.size} examples")
        rows = None
        if self.pending is not None:
            rows = _index(self.pending, torch.arange(self.size))
            rest = torch.arange(self.size, self.count)
            self.pending = _index(self.pending, rest) if len(rest) else None
        out, self.indices = self.indices[:self.size], self.indices[self.size:]
        self.count -= self.size
        return rows, out

    def pop(self) -> Any:
        """Exactly `size` rows, oldest first; the rest stay queued."""
        if self.pending is None and self.count:
            raise RuntimeError("this queue holds indices, not rows: use take()")
        return self.take()[0]

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "count": self.count, "pending": self.pending,
                "indices": list(self.indices)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.count = int(state["size"]), int(state["count"])
        pending = state["pending"]
        self.pending = tuple(pending) if isinstance(pending, list) else pending
        self.indices = [int(i) for i in state.get("indices", [-1] * self.count)]


class SelectiveBackprop(Hook):
    """The trainer hook: score each drawn micro-batch, queue the selected examples, hand the
    trainer full backward batches.

    selector    "sb" (the paper's percentile ** beta coin flips) or "topk" (keep `keep` of
                each batch's highest losses).
    prime       fraction of the budget that trains on every example first (the paper: one
                epoch).
    staleness   Stale-SB: reuse an example's scored loss while it has been drawn fewer than
                `staleness` times since it was scored (draws = epochs for shuffled epochs);
                0 scores every time.
    scorer      a proxy model whose losses choose the examples (default: the model itself).
    backward_batch  examples per backward batch (default: the trainer's micro-batch); draw
                bigger micro-batches than this to select from more (top-k keeps 1/2 of 2x).
    """

    def __init__(self, selector: str = "sb", beta: float = 3.0, p_min: float = 0.0,
                 history: int = 1024, keep: float = 0.5, prime: float = 0.0,
                 staleness: int = 0, scorer: nn.Module | None = None,
                 backward_batch: int | None = None, seed: int = 0):
        where = "SelectiveBackprop"
        check_choice(where, "selector", selector, ("sb", "topk"))
        check_number(where, "beta", beta, 0, low_open=True)
        check_number(where, "p_min", p_min, 0, 1)
        check_int(where, "history", history, low=1)
        check_number(where, "keep", keep, 0, 1, low_open=True)
        check_number(where, "prime", prime, 0, 1)
        check_int(where, "staleness", staleness, low=0)
        check_module(where, "scorer", scorer, none=True)
        check_int(where, "backward_batch", backward_batch, low=1, none=True)
        check_int(where, "seed", seed)
        self.selector, self.beta, self.p_min, self.keep = selector, beta, p_min, keep
        self.prime, self.staleness, self.scorer = prime, staleness, scorer
        self.backward_batch = backward_batch
        self.scorer_flops: float | None = None
        self.history = LossHistory(history)
        self.queue: BackpropQueue | None = None
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        # Stale-SB: per example, its last scored loss, draws so far, draws when scored
        self.cached = torch.empty(0)
        self.draws = torch.empty(0, dtype=torch.long)
        self.scored_at = torch.empty(0, dtype=torch.long)
        self.scoring_forwards = 0  # examples that got a scoring forward

    def on_start(self, state: TrainState) -> None:
        d = state.dist
        if d.enabled and self.staleness > 0:
            raise ConfigError("stale-sb keeps each example's score on one process; under DDP "
                              "use sb or sb-topk")
        if self.queue is None:  # a fresh run (a resumed one has its queue and generator back)
            # under DDP every rank selects from the whole global batch with one generator
            self.generator.manual_seed(self.seed)
            backward = self.backward_batch or state.config.micro_batch
            self.queue = BackpropQueue(backward * d.world_size)
        if self.scorer is not None:
            self.scorer.to(state.dist.device)
            if self.scorer_flops is None:  # its forward FLOPs, for honest work counters
                probe = probe_batch(state.train_data, 8, state.dist.device, state.collate_fn)
                self.scorer_flops = measure_flops(self.scorer, state.loss_fn, probe)[0]

    def _grow(self, top: int) -> None:
        if top < len(self.draws):
            return
        n = max(top + 1, 2 * len(self.draws))
        pad = n - len(self.draws)
        self.cached = torch.cat([self.cached, torch.full((pad,), float("nan"))])
        self.draws = torch.cat([self.draws, torch.zeros(pad, dtype=torch.long)])
        self.scored_at = torch.cat([self.scored_at, torch.zeros(pad, dtype=torch.long)])

    def score(self, state: TrainState, batch: Any, indices: list[int]) -> torch.Tensor:
        """Per-example losses for `batch`: fresh from a no-grad eval-mode forward, or cached
        (Stale-SB) for examples scored fewer than `staleness` draws ago."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        n = len(idx)
        need = torch.ones(n, dtype=torch.bool)
        if self.staleness > 0 and n:
            self._grow(int(idx.max()))
            self.draws[idx] += 1
            age = self.draws[idx] - self.scored_at[idx]
            need = torch.isnan(self.cached[idx]) | (age >= self.staleness)
        losses = self.cached[idx].clone() if self.staleness > 0 else torch.empty(n)
        if need.any():
            fresh_idx = torch.nonzero(need).flatten()
            sub = batch if bool(need.all()) else _index(batch, fresh_idx)
            losses[fresh_idx] = self._forward(state, sub)
            state.count_forward(len(fresh_idx), flops=self.scorer_flops)
            self.scoring_forwards += len(fresh_idx)
            if self.staleness > 0:
                self.cached[idx[fresh_idx]] = losses[fresh_idx]
                self.scored_at[idx[fresh_idx]] = self.draws[idx[fresh_idx]]
        return losses

    def _forward(self, state: TrainState, batch: Any) -> torch.Tensor:
        model = self.scorer if self.scorer is not None else state.raw_model
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast_for(state.config, state.dist.device):
            losses = state.loss_fn(model, batch).float().cpu()
        model.train(was_training)
        return losses

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        if state.budget.progress() < self.prime:
            return batch
        ids = state.batch_indices
        losses = self.score(state, batch, ids)
        d = state.dist
        if d.enabled:  # select from every rank's rows at once, as one process would
            gathered, losses = gather_records(ids, losses, d)
            ids = gathered.tolist()
        if self.selector == "topk":
            mask = top_k_mask(losses, self.keep)
        else:
            mask = select_biggest_losers(losses, self.history, self.beta, self.p_min,
                                         self.generator)
        assert self.queue is not None
        keep = torch.nonzero(mask).flatten()
        kept = [ids[i] for i in keep.tolist()]
        if state.collate_fn is None and not d.enabled:  # tensors: keep the rows themselves
            self.queue.push(_index(batch, keep), kept)
        else:  # any batch shape, or every rank's rows: keep indices, fetch what is taken
            self.queue.push(indices=kept)
        if not self.queue.ready():
            return None
        rows, taken = self.queue.take()
        share = len(taken) // d.world_size
        state.batch_indices = taken[d.rank * share:(d.rank + 1) * share]
        if rows is None:
            rows = to_device(gather(state.train_data, state.batch_indices, state.collate_fn),
                             state.dist.device, state.config.channels_last)
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history.state_dict(),
                "queue": self.queue.state_dict() if self.queue else None,
                "generator": self.generator.get_state(), "cached": self.cached,
                "draws": self.draws, "scored_at": self.scored_at,
                "scoring_forwards": self.scoring_forwards}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.load_state_dict(state["history"])
        if state["queue"] is not None:
            self.queue = BackpropQueue(1)
            self.queue.load_state_dict(state["queue"])
        self.generator.set_state(state["generator"])
        self.cached, self.draws = state["cached"], state["draws"]
        self.scored_at, self.scoring_forwards = state["scored_at"], state["scoring_forwards"]
