"""Index samplers the trainer draws batches from, and batch gathering without a DataLoader.

A sampler here is any object with `sample(n, progress) -> list[int]` (this rank's next `n`
indices), `state_dict()` and `load_state_dict()`. Its position is part of every checkpoint,
so a resumed run continues with the very next batch: nothing is replayed or skipped.
Data methods (curricula, pruned subsets) plug in by providing their own sampler.

For in-memory tensors, batches are gathered by indexing (no workers, no disk I/O in the loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, TensorDataset, default_collate

from hasten.core.checks import check_place, check_size
from hasten.core.errors import DataError


class Sampler(Protocol):
    def sample(self, n: int, progress: float) -> list[int]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ShuffledSampler:
    """Endless epochs of shuffled indices, each epoch a fresh permutation of `size` examples.

    Under DDP every rank builds the same permutation and takes its own slice of each global
    micro-batch (`n * world_size` indices), so N ranks with micro-batch n see exactly the
    examples one process with micro-batch `n * N` would. Batches run across epoch ends
    without dropping or repeating examples.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        check_size("ShuffledSampler", "size", size)
        check_place("ShuffledSampler", seed, rank, world_size)
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.offset = 0, 0
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.size, generator=g)
        return self._perm

    def _take(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            perm = self._permutation()
            chunk = perm[self.offset : self.offset + count - len(out)].tolist()
            out.extend(chunk)
            self.offset += len(chunk)
            if self.offset >= self.size:
                self.epoch, self.offset, self._perm = self.epoch + 1, 0, None
        return out

    def sample(self, n: int, progress: float = 0.0) -> list[int]:
        global_batch = self._take(n * self.world_size)
        return global_batch[self.rank * n : (self.rank + 1) * n]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, offset, seed = state["epoch"], state["offset"], state["seed"]
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0
               for v in (epoch, offset, seed)):
            raise ValueError(f"sampler state {str(state)[:80]} is not three counts")
        self.epoch, self.offset, self.seed = epoch, offset, seed
        self._perm = None


CollateFn = Callable[[list[Any]], Any]


def fetch(dataset: Dataset, indices: list[int]) -> list[Any]:
    """The items of `dataset` at `indices`, in order, with one indexing call where the
    dataset supports it (torch's `__getitems__` protocol, which HF `datasets.Dataset`
    implements), else item by item."""
    many = getattr(dataset, "__getitems__", None)
    if many is not None:
        items = many(list(indices))
        if len(items) != len(indices):
            raise DataError(f"{type(dataset).__name__}.__getitems__ returned {len(items)} "
                            f"items for {len(indices)} indices")
        return list(items)
    return [dataset[i] for i in indices]


def gather(dataset: Dataset, indices: list[int], collate_fn: CollateFn | None = None) -> Any:
    """The batch of `dataset` at `indices`. Without `collate_fn`, a TensorDataset is indexed
    directly (one gather per tensor); anything else is fetched (`fetch`) and collated with
    `collate_fn`, default torch's `default_collate` (which needs equal-length items: pass a
    padding `collate_fn` for variable-length tokenized text)."""
    if collate_fn is None and isinstance(dataset, TensorDataset):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in dataset.tensors)
    return (collate_fn or default_collate)(fetch(dataset, indices))


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a batch to `device` (4-d ones to NHWC if `channels_last`)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


def batch_size(batch: Any) -> int:
    """Number of examples in a batch (the first dimension of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return batch_size(batch[0])
    if isinstance(batch, dict):
        return batch_size(next(iter(batch.values())))
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")
