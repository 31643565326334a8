"""Budget-aware torch samplers: hasten's samplers inside a `torch.utils.data.DataLoader`.

hasten's samplers (`ShuffledSampler`, the curriculum's `CompetenceSampler`, a pruned subset,
a dynamic selection: anything with `sample(n, progress)`) draw each batch at the run's
progress. A DataLoader asks its batch sampler for index lists in the main process, workers or
not, so wrapping one of them is all a plain loop, the HF Trainer or Lightning needs:

    budget = Budget("20m")
    batches = CompetenceBatchSampler(CompetenceSampler(lengths, T_fraction=0.5), 32, budget)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=pad, num_workers=2)

Progress is read when a batch's indices are drawn. A DataLoader with workers draws up to
`num_workers x prefetch_factor` batches ahead of the loop, so those batches see the progress
of a few steps earlier: harmless for a curriculum that moves over hundreds of steps.

Sharding: hasten's samplers already give each rank its own slice of one global batch, so the
framework must not add a `DistributedSampler` on top (Lightning: `use_distributed_sampler=
False`); docs/your-loop.md says what to set for accelerate and the HF Trainer.

Where it is shown: docs/your-loop.md (no measured result; a building block).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import Sampler as TorchSampler

from hasten.core.budget import Budget
from hasten.core.checks import check_bool, check_int, fail
from hasten.core.errors import ConfigError, DataError
from hasten.core.sampling import Sampler

Progress = Budget | Callable[[], float]


def check_progress(where: str, progress: Any) -> None:
    """A `Budget`, or a function of no arguments returning the progress."""
    if not isinstance(progress, Budget) and (not callable(progress) or
                                              isinstance(progress, type)):
        fail(where, "progress", progress, "a Budget or a function returning the progress in "
             "[0, 1]")


def progress_reader(progress: Progress) -> Callable[[], float]:
    """A function returning the progress in [0, 1] now: `budget.progress` for a Budget, the
    callable itself otherwise (clipped to [0, 1])."""
    if isinstance(progress, Budget):
        return progress.progress
    if not callable(progress):
        raise ConfigError("progress must be a Budget or a function returning the progress "
                          f"in [0, 1], got {type(progress).__name__}")
    return lambda: min(1.0, max(0.0, float(progress())))


class CompetenceBatchSampler(TorchSampler[list[int]]):
    """A `batch_sampler` for `torch.utils.data.DataLoader` that draws every batch from a
    hasten sampler at the budget's progress.

    sampler      anything with `sample(n, progress) -> list[int]` (this rank's indices).
    batch_size   examples per batch (per rank), passed to `sample` as `n`; token-budget
                 samplers may return fewer.
    progress     a `Budget` or a function returning progress in [0, 1].
    batches      batches per pass over the sampler (`len()`); None: endless, ending only
                 when the progress reaches 1 (then `len()` raises TypeError, which torch
                 and Lightning read as "no length").
    stop_when_spent  end a pass as soon as the progress is 1 (default True).

    `state_dict()` / `load_state_dict()` are the wrapped sampler's, so its position can go
    into any checkpoint.
    """

    def __init__(self, sampler: Sampler, batch_size: int, progress: Progress,
                 batches: int | None = None, stop_when_spent: bool = True):
        where = "CompetenceBatchSampler"
        if not callable(getattr(sampler, "sample", None)):
            fail(where, "sampler", sampler, "a hasten sampler, with sample(n, progress) -> "
                 "indices (e.g. CompetenceSampler)")
        check_int(where, "batch_size", batch_size, low=1)
        check_progress(where, progress)
        check_int(where, "batches", batches, low=1, none=True)
        check_bool(where, "stop_when_spent", stop_when_spent)
        self.sampler, self.batch_size, self.batches = sampler, int(batch_size), batches
        self.progress = progress_reader(progress)
        self.stop_when_spent = stop_when_spent
        self.drop_last = False  # what torch's BatchSampler exposes; every draw is whole

    def __iter__(self) -> Iterator[list[int]]:
        drawn = 0
        while self.batches is None or drawn < self.batches:
            p = self.progress()
            if self.stop_when_spent and p >= 1.0:
                return
            yield [int(i) for i in self.sampler.sample(self.batch_size, p)]
            drawn += 1

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless CompetenceBatchSampler has no length; give batches=N "
                            "for passes of N batches")
        return self.batches

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


class CompetenceIndexSampler(TorchSampler[int]):
    """The same, as a plain `sampler` yielding single indices, for code that takes a sampler
    and batches it itself (the HF Trainer's `_get_train_sampler`, `DataLoader(sampler=...)`
    with `batch_size`). Each draw is one batch of `batch_size` indices, yielded in order, so
    the DataLoader's batches are the draws when its `batch_size` is the same.

    length   indices per pass (`len()`), e.g. the dataset size for epoch-shaped loops;
             a pass of `length` indices is ceil(length / batch_size) draws, the last one cut.
    The wrapped sampler must return exactly `batch_size` indices per draw (token-budget
    batches vary in size: use `CompetenceBatchSampler` for those).
    """

    def __init__(self, sampler: Sampler, batch_size: int, progress: Progress, length: int,
                 stop_when_spent: bool = False):
        check_int("CompetenceIndexSampler", "length", length, low=1)
        self.batches = CompetenceBatchSampler(sampler, batch_size, progress,
                                              stop_when_spent=stop_when_spent)
        self.length = int(length)

    def __iter__(self) -> Iterator[int]:
        left = self.length
        draws = iter(self.batches)
        while left > 0:
            batch = next(draws, None)
            if batch is None:
                return
            if len(batch) != self.batches.batch_size:
                raise DataError(f"the sampler returned {len(batch)} indices for a batch of "
                                f"{self.batches.batch_size}; use CompetenceBatchSampler for "
                                "batches of varying size")
            yield from batch[:left]
            left -= len(batch)

    def __len__(self) -> int:
        return self.length

    def state_dict(self) -> dict[str, Any]:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state)
