"""Dynamic data pruning with unbiased rescaling (InfoBatch), and its two controls.

Paper: Qin, Wang, Zheng et al. 2024 (ICLR), "InfoBatch: Lossless Training Speed Up by
Unbiased Dynamic Data Pruning". Each example's score is its last training loss, taken from
the forward pass training does anyway (no scoring pass). At the start of every epoch, each
example whose score is below the mean of all scores is pruned with probability r (default
0.5); the low-loss examples that stay get their loss multiplied by 1/(1 - r), so the
epoch's expected gradient equals the full data's. The last part of training (from 87.5% of
it, delta = 0.875) runs on the full data, unweighted.

Rules (`rule=`), all with the same machinery, scores and annealing:
  infobatch     the paper: below-mean examples pruned by independent coin flips with
                probability r, the survivors rescaled by 1/(1 - r)
  random-drop   the control: as many examples as InfoBatch would prune in expectation
                (round(r x #below-mean)), chosen uniformly from all, no rescaling
  drop-easiest  the same number, the lowest scores, no rescaling (plain loss pruning)

An *epoch* is one pass over the examples kept for it, in a fresh seeded shuffle; batches run
across epoch ends without dropping or repeating examples (as `ShuffledSampler`). Pruned
examples are never gathered, forwarded or backpropagated, so the trainer's work counters
count only what trains.

Use it in hasten's trainer as a sampler plus its hook (which reweights and records losses):

    pruner = InfoBatch(len(data), ratio=0.5, anneal=0.875, seed=0)
    train(model, data, loss_fn, config, sampler=pruner, hooks=[InfoBatchHook(pruner)])

in a plain loop (DDP: pass `record` the output of `gather_records`):

    for step in range(steps):
        ids = pruner.sample(128, progress=step / steps)
        losses = per_example_loss(model, batch_of(ids))
        pruner.record(ids, losses)
        (losses * pruner.weights(ids)).mean().backward(); ...

or with a DataLoader, one epoch per `iter()`: `DataLoader(with_indices(data), batch_size=B,
sampler=EpochSampler(pruner, progress_fn))` yields `(ids, batch)` pairs.

DDP: every rank builds the same global batch and takes its slice (as `ShuffledSampler`);
each rank records the losses of its own rows, and `InfoBatchHook` all-gathers the (id, loss)
pairs at the end of every step, so every rank holds the same scores and draws the same
pruned permutation. Progress is all-reduced (max) at each draw until annealing starts, so a
wall-clock budget anneals on the same draw on every rank. Every rank must draw the same
number of batches (true unless a hook skips batches on some ranks only).

Departures from the paper, on purpose:
- Annealing starts at a fraction of the *budget's* progress (hasten runs are budget-bound,
  not epoch-bound): the first draw at progress >= `anneal` cuts the pruned epoch it is in
  short and starts full, unweighted epochs, so nothing is pruned or reweighted after that
  point. The paper counts epochs (the last 12.5% of them).
- The threshold is the mean over the examples that have a recorded loss; examples never
  trained on are never pruned. The paper starts every score at a constant, which gives the
  same first epoch (nothing pruned) and the same rule once every example has been seen.
- In a budget-bound run the examples pruning saves buy more epochs within the budget;
  InfoBatch's saving shows as a shorter budget (`infobatch@F` in the harness) reaching the
  same quality, not as a shorter run at the same budget.

Where its result is shown: docs/benchmarks.md, "Dynamic data pruning: drop-easiest pays
at 0.7 of the examples; InfoBatch beats training less, its loss undecided".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as tdist
from torch.utils.data import Dataset

from hasten.core.checks import check_int, check_number, check_size, fail
from hasten.core.distributed import Dist, rank_from_env, world_size_from_env
from hasten.core.errors import CheckpointError, ConfigError
from hasten.core.trainer import Hook, TrainState

RULES = ("infobatch", "random-drop", "drop-easiest")
IdsLike = Sequence[int] | torch.Tensor


# -----------------------------------------------------------------------------
# the rule, as pure functions of the recorded scores


def well_learned(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Examples with a recorded loss below the mean of the recorded losses (InfoBatch's
    "well-learned" set, the only candidates for pruning)."""
    if not bool(seen.any()):
        return torch.zeros_like(seen)
    threshold = scores[seen].mean()
    return seen & (scores < threshold)


def keep_probabilities(scores: torch.Tensor, seen: torch.Tensor, ratio: float) -> torch.Tensor:
    """InfoBatch's probability of keeping each example this epoch: 1 - ratio for the
    well-learned, 1 for the rest."""
    return _where(well_learned(scores, seen), 1.0 - ratio, 1.0)


def loss_weights(scores: torch.Tensor, seen: torch.Tensor, ratio: float) -> torch.Tensor:
    """InfoBatch's loss multiplier of each example if kept: 1 / (1 - ratio) for the
    well-learned, 1 for the rest, so keep probability x weight = 1 for every example."""
    return _where(well_learned(scores, seen), 1.0 / (1.0 - ratio), 1.0)


def _where(mask: torch.Tensor, yes: float, no: float) -> torch.Tensor:
    """`yes` where `mask`, else `no`, in float64 (exactly the Python floats)."""
    out = torch.full(mask.shape, no, dtype=torch.float64)
    out[mask] = yes
    return out


def pruned_count(scores: torch.Tensor, seen: torch.Tensor, ratio: float) -> int:
    """How many examples InfoBatch prunes in expectation, rounded: the controls prune this
    many."""
    return int(round(ratio * int(well_learned(scores, seen).sum())))


def plan_epoch(scores: torch.Tensor, seen: torch.Tensor, ratio: float, rule: str,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of `rule`: (the kept example ids in a fresh shuffle, the loss weight of
    every example for this epoch). Deterministic given the generator's state."""
    n = len(scores)
    perm = torch.randperm(n, generator=generator)
    weights = torch.ones(n, dtype=torch.float64)
    if rule == "infobatch":
        low = well_learned(scores, seen)
        coins = torch.rand(n, generator=generator, dtype=torch.float64)
        keep = ~low | (coins >= ratio)
        weights = _where(low, 1.0 / (1.0 - ratio), 1.0)
        return perm[keep[perm]], weights
    k = pruned_count(scores, seen, ratio)
    keep = torch.ones(n, dtype=torch.bool)
    if rule == "random-drop":
        keep[torch.randperm(n, generator=generator)[:k]] = False
    elif rule == "drop-easiest":
        # lowest recorded losses first; ties (and the unseen, never candidates) by id
        candidates = torch.nonzero(seen).flatten()
        order = torch.argsort(scores[candidates], stable=True)
        keep[candidates[order[:k]]] = False
    else:
        raise ConfigError(f"unknown pruning rule {rule!r}; known: {', '.join(RULES)}")
    return perm[keep[perm]], weights


# -----------------------------------------------------------------------------
# the sampler


def _world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size

    return rank_from_env(), world_size_from_env()


class InfoBatch:
    """A sampler (`sample(n, progress)`, `state_dict`, `load_state_dict`) that prunes each
    epoch by the recorded losses.

    size        examples in the dataset (ids 0..size-1).
    ratio       r: probability of pruning a below-mean example (0 <= r < 1; paper 0.5).
    anneal      budget progress from which every epoch is full and unweighted (paper 0.875;
                1.0 never anneals).
    rule        "infobatch", "random-drop" or "drop-easiest" (see the module docstring).
    seed        epochs are shuffled by (seed, epoch): rank-independent and resumable.
    rank, world_size   default to the torch.distributed group, else torchrun's RANK and
                WORLD_SIZE (the sampler is usually built before `train` joins the group).
    """

    def __init__(self, size: int, ratio: float = 0.5, anneal: float = 0.875,
                 rule: str = "infobatch", seed: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        where = "InfoBatch"
        check_size(where, "size", size)
        check_number(where, "ratio", ratio)
        check_number(where, "anneal", anneal)
        if not isinstance(rule, str):
            fail(where, "rule", rule, f"a rule name ({', '.join(RULES)})")
        if not 0.0 <= ratio < 1.0:
            raise ConfigError(f"prune ratio must be in [0, 1), got {ratio}")
        if not 0.0 <= anneal <= 1.0:
            raise ConfigError(f"anneal must be a budget fraction in [0, 1], got {anneal}")
        if rule not in RULES:
            raise ConfigError(f"unknown pruning rule {rule!r}; known: {', '.join(RULES)}")
        check_int(where, "seed", seed)
        check_int(where, "rank", rank, low=0, none=True)
        check_int(where, "world_size", world_size, low=1, none=True)
        if rank is not None and world_size is not None and rank >= world_size:
            fail(where, "rank", rank, f"an integer in [0, {world_size - 1}] (below world_size)")
        self.size, self.ratio, self.anneal, self.rule, self.seed = size, ratio, anneal, rule, seed
        self.rank, self.world_size = _world(rank, world_size)
        self.scores = torch.zeros(size, dtype=torch.float64)
        self.seen = torch.zeros(size, dtype=torch.bool)
        self.weight_of = torch.ones(size, dtype=torch.float64)  # as of each id's last draw
        self.epoch_weights = torch.ones(size, dtype=torch.float64)
        self.order = torch.arange(0)  # the current epoch's kept ids; built on first draw
        self.epoch, self.offset = -1, 0
        self.annealed = False
        self.last_ids: list[int] | None = None  # this rank's last draw, its tensor, weights
        self.last_tensor, self.last_weights = torch.arange(0), torch.ones(0)
        self.pruned = 0  # examples skipped over all epochs so far
        self.trained = 0  # examples drawn over all epochs so far (this and every rank)

    # -- epochs ---------------------------------------------------------------------------

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.offset = 0
        g = self._generator(self.epoch)
        if self.annealed or self.ratio == 0.0:
            self.order = torch.randperm(self.size, generator=g)
            self.epoch_weights = torch.ones(self.size, dtype=torch.float64)
        else:
            self.order, self.epoch_weights = plan_epoch(self.scores, self.seen, self.ratio,
                                                        self.rule, g)
        self.pruned += self.size - len(self.order)

    def _is_pruned_epoch(self) -> bool:
        return len(self.order) < self.size or bool((self.epoch_weights != 1.0).any())

    def _synced(self, progress: float) -> float:
        if self.world_size > 1 and tdist.is_available() and tdist.is_initialized():
            t = torch.tensor([float(progress)], dtype=torch.float64)
            tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
            return float(t[0])
        return float(progress)

    def _check_anneal(self, progress: float) -> None:
        if self.annealed or self.anneal >= 1.0:
            return
        if self._synced(progress) >= self.anneal:
            self.annealed = True
            if self.epoch >= 0 and self._is_pruned_epoch():
                # the rest of this pruned epoch is dropped: full epochs from here on
                self.pruned += len(self.order) - self.offset
                self.order = self.order[:self.offset]

    def _take(self, count: int) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        need = count
        while need > 0:
            if self.epoch < 0 or self.offset >= len(self.order):
                self._new_epoch()
                if len(self.order) == 0:
                    continue  # everything pruned this epoch (only possible with tiny sets)
            chunk = self.order[self.offset:self.offset + need]
            self.weight_of[chunk] = self.epoch_weights[chunk]
            parts.append(chunk)
            self.offset += len(chunk)
            need -= len(chunk)
        self.trained += count
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # -- the sampler protocol -------------------------------------------------------------

    def sample(self, n: int, progress: float = 0.0) -> list[int]:
        """This rank's next `n` ids: its slice of the next global batch of n x world_size."""
        if n < 1:
            raise ValueError(f"batch size must be >= 1, got {n}")
        self._check_anneal(progress)
        batch = self._take(n * self.world_size)
        mine = batch[self.rank * n:(self.rank + 1) * n]
        # kept so the hook can skip converting and looking up the list it is handed back
        self.last_ids, self.last_tensor = mine.tolist(), mine
        self.last_weights = self.weight_of[mine]
        return self.last_ids

    def next_epoch(self, progress: float = 0.0) -> list[int]:
        """A whole new epoch (any rest of the current one dropped), as this rank's share:
        ids rank, rank + W, ... of the epoch, the shares evened out by wrapping around (as
        torch's DistributedSampler pads). For `EpochSampler` and DataLoader loops."""
        self._check_anneal(progress)
        self._new_epoch()
        order = self.order
        if len(order) == 0:
            return []
        per_rank = -(-len(order) // self.world_size)
        padded = order.repeat(-(-per_rank * self.world_size // len(order)))
        padded = padded[:per_rank * self.world_size]
        self.offset = len(order)
        self.weight_of[order] = self.epoch_weights[order]
        self.trained += len(order)
        return padded[self.rank::self.world_size].tolist()

    # -- losses in, weights out -----------------------------------------------------------

    def weights(self, ids: IdsLike) -> torch.Tensor:
        """The loss multiplier of each id, as drawn (float64, CPU)."""
        return self.weight_of[torch.as_tensor(ids, dtype=torch.long)]

    def record(self, ids: IdsLike, losses: torch.Tensor) -> None:
        """Store each id's (unweighted) loss as its score; a repeated id keeps its last."""
        idx = torch.as_tensor(ids, dtype=torch.long).flatten()
        values = losses.detach().flatten().to("cpu", torch.float64)
        if len(idx) != len(values):
            raise ValueError(f"{len(idx)} ids for {len(values)} losses")
        self.scores[idx] = values
        self.seen[idx] = True

    def stats(self) -> dict[str, Any]:
        """Epochs begun, examples pruned and drawn so far, and the kept fraction of the
        current epoch."""
        return {"rule": self.rule, "ratio": self.ratio, "anneal": self.anneal,
                "epochs": self.epoch + 1, "pruned": self.pruned, "drawn": self.trained,
                "kept_fraction": len(self.order) / self.size if self.epoch >= 0 else 1.0,
                "annealed": self.annealed}

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "ratio": self.ratio, "anneal": self.anneal,
                "rule": self.rule, "seed": self.seed, "scores": self.scores.clone(),
                "seen": self.seen.clone(), "weight_of": self.weight_of.clone(),
                "epoch_weights": self.epoch_weights.clone(), "order": self.order.clone(),
                "epoch": self.epoch, "offset": self.offset, "annealed": self.annealed,
                "pruned": self.pruned, "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("size", "ratio", "anneal", "rule", "seed"):
            if state[key] != getattr(self, key):
                raise CheckpointError(f"pruning state was saved with {key}={state[key]!r}, "
                                      f"this sampler has {getattr(self, key)!r}")
        self.scores = state["scores"].clone().to(torch.float64)
        self.seen = state["seen"].clone().to(torch.bool)
        self.weight_of = state["weight_of"].clone().to(torch.float64)
        self.epoch_weights = state["epoch_weights"].clone().to(torch.float64)
        self.order = state["order"].clone().to(torch.long)
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self.annealed = bool(state["annealed"])
        self.pruned, self.trained = int(state["pruned"]), int(state["trained"])


# -----------------------------------------------------------------------------
# DDP: every rank's (id, loss) pairs, in rank order


def gather_records(ids: IdsLike, losses: torch.Tensor, d: Dist) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Every rank's ids and losses, concatenated in rank order, on every rank (all_gather of
    one padded float64 tensor: ids are exact in float64 below 2**53). One process: as is."""
    idx = torch.as_tensor(ids, dtype=torch.long).flatten()
    values = losses.detach().flatten().to("cpu", torch.float64)
    if not d.enabled:
        return idx, values
    rows = torch.stack([idx.to(torch.float64), values], 1).to(d.device)
    count = torch.tensor([float(len(rows))], dtype=torch.float64, device=d.device)
    counts = [torch.zeros_like(count) for _ in range(d.world_size)]
    tdist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = torch.zeros((max(sizes), 2), dtype=torch.float64, device=d.device)
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(d.world_size)]
    tdist.all_gather(parts, padded)
    joined = torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)]).cpu()
    return joined[:, 0].round().long(), joined[:, 1]


# -----------------------------------------------------------------------------
# the trainer hook


class InfoBatchHook(Hook):
    """Reweights each batch's losses by the pruner's weights (`on_loss`), buffers the
    unweighted losses by `state.batch_indices`, and records them (all ranks' at once under
    DDP) when the step ends. `notes`, if given, receives the pruner's `stats()` at every
    evaluation (e.g. a benchmark run's notes). Its state lives in the pruner (the sampler),
    which the trainer checkpoints."""

    def __init__(self, pruner: InfoBatch, notes: dict[str, Any] | None = None):
        self.pruner = pruner
        self.notes = notes
        self._ids: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []

    def on_loss(self, state: TrainState, batch: Any, losses: torch.Tensor) -> torch.Tensor:
        p = self.pruner
        if state.batch_indices is p.last_ids:  # the rows the sampler just drew
            ids, w = p.last_tensor, p.last_weights
        else:  # rows another hook chose (e.g. a selective-backprop queue)
            ids = torch.as_tensor(state.batch_indices, dtype=torch.long)
            w = p.weights(ids)
        if len(ids) != len(losses):
            raise ConfigError(f"infobatch: the batch has {len(losses)} rows but "
                              f"state.batch_indices names {len(ids)}; a hook that changes "
                              "a batch's rows must set state.batch_indices")
        self._ids.append(ids)
        self._losses.append(losses.detach())
        return losses * w.to(losses.device, losses.dtype)

    def on_step_end(self, state: TrainState) -> None:
        if not self._ids:
            ids, losses = torch.zeros(0, dtype=torch.long), torch.zeros(0)
        elif len(self._ids) == 1:
            ids, losses = self._ids[0], self._losses[0]
        else:
            ids, losses = torch.cat(self._ids), torch.cat(self._losses)
        self._ids, self._losses = [], []
        if state.dist.enabled:
            ids, losses = gather_records(ids, losses, state.dist)
        self.pruner.record(ids, losses)

    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.notes is not None:
            self.notes["pruning"] = self.pruner.stats()


# -----------------------------------------------------------------------------
# torch DataLoader adapters


class EpochSampler(torch.utils.data.Sampler[int]):
    """A torch sampler: each `iter()` is one new pruned epoch (this rank's share) at the
    progress `progress_fn()` returns (e.g. epoch / epochs)."""

    def __init__(self, pruner: InfoBatch, progress_fn: Callable[[], float] = lambda: 0.0):
        self.pruner, self.progress_fn = pruner, progress_fn
        self._last = pruner.size // pruner.world_size

    def __iter__(self) -> Iterator[int]:
        ids = self.pruner.next_epoch(self.progress_fn())
        self._last = len(ids)
        return iter(ids)

    def __len__(self) -> int:
        return self._last


class _WithIndices(Dataset):
    def __init__(self, data: Dataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.data[i]


def with_indices(data: Dataset) -> Dataset:
    """`data` whose item i is `(i, data[i])`, so DataLoader batches carry their ids."""
    return _WithIndices(data)
