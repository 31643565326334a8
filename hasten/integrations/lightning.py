"""hasten's budget, schedules and samplers in PyTorch Lightning (the `lightning` extra).

    budget = Budget("20m")
    loader = budget_dataloader(train_set, CompetenceSampler(lengths, T_fraction=0.5),
                               batch_size=32, budget=budget, collate_fn=pad_collate(0))
    trainer = pl.Trainer(max_epochs=-1, use_distributed_sampler=False,
                         callbacks=[BudgetCallback(budget, "cosine", warmup=0.06)])
    trainer.fit(module, loader)  # stops when the budget is spent, the LR at its end

`BudgetCallback` runs the budget's clock from `on_train_batch_start` to
`on_train_batch_end` only (validation and checkpointing are off it), counts steps (the
trainer's optimizer steps), examples and, with `tokens_fn`, tokens, and sets `trainer.
should_stop` once the budget is spent; under several processes they share the largest clock
and stop together (`hasten.integrations.clock`). With a schedule it sets each optimizer
group's LR to its initial LR x schedule(progress at the end of the coming step) before every
batch, as hasten's trainer does; with `schedule=None` it leaves the LR alone (use
`hasten.budget_lr` in `configure_optimizers` with `"interval": "step"` instead). Its state
(the budget's clock and counters, the initial LRs) goes into Lightning checkpoints.

Lightning's `Timer` stops on the clock but moves no schedule; this callback does both.
Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from hasten.core.budget import Budget
from hasten.core.checks import check_callable, check_number, fail
from hasten.core.errors import ConfigError
from hasten.core.sampling import Sampler, batch_size
from hasten.core.schedules import make_schedule, next_step_progress
from hasten.data.batch_sampler import CompetenceBatchSampler
from hasten.integrations.clock import check_budget, share_budget


class BudgetCallback(pl.Callback):
    """Counts a `Budget` in Lightning, moves the LR with its progress, stops when spent.

    budget     a `Budget` or its spec ("20m", "2000steps", "1e6ex", "3e9tok").
    schedule   a hasten schedule name ("cosine", "linear", "triangle", ...) and its
               parameters (`warmup=0.06`), or None to leave the LR to the module.
    tokens_fn  counts a batch's tokens (needed for a tokens budget).
    `overhead_seconds` is the time spent inside this callback's own hooks.
    """

    def __init__(self, budget: Budget | str, schedule: str | None = "cosine",
                 tokens_fn: Callable[[Any], int] | None = None, **schedule_params: float):
        where = type(self).__name__
        check_budget(where, budget)
        if schedule is not None and not isinstance(schedule, str):
            fail(where, "schedule", schedule, "a schedule name (cosine, linear, ...) or None")
        check_callable(where, "tokens_fn", tokens_fn, "a function (batch) -> tokens in it",
                       none=True)
        for name, value in schedule_params.items():
            check_number(where, name, value)
        self.budget = budget if isinstance(budget, Budget) else Budget(budget)
        if self.budget.unit == "flops":
            raise ConfigError("BudgetCallback counts seconds, steps, examples and tokens; "
                              "use one of those units with Lightning")
        if self.budget.unit == "tokens" and tokens_fn is None:
            raise ConfigError("a tokens budget needs tokens_fn(batch) -> tokens in the batch")
        self.shape = make_schedule(schedule, **schedule_params) if schedule else None
        self.tokens_fn = tokens_fn
        self.base_lrs: list[list[float]] | None = None  # per optimizer, per group
        self.floor = 0.0  # the highest progress the LR was set for
        self.overhead_seconds = 0.0
        self._step_before = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.base_lrs is None:  # a resumed run has them from its checkpoint
            self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in trainer.optimizers]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        t0 = time.perf_counter()
        self.budget.start()
        self._step_before = trainer.global_step
        if self.shape is not None and self.base_lrs is not None:
            self.floor = max(self.floor, next_step_progress(self.budget))
            factor = self.shape(self.floor)
            for opt, bases in zip(trainer.optimizers, self.base_lrs, strict=True):
                for group, base in zip(opt.param_groups, bases, strict=True):
                    group["lr"] = base * factor
        self.overhead_seconds += time.perf_counter() - t0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        t0 = time.perf_counter()
        work = self.budget.work
        work.steps += trainer.global_step - self._step_before
        examples = self._examples(batch) * trainer.world_size
        work.examples_forwarded += examples
        work.examples_backpropagated += examples
        if self.tokens_fn is not None:
            work.tokens += int(self.tokens_fn(batch)) * trainer.world_size
        self.budget.stop()
        self._stop_if_spent(trainer, pl_module)
        self.overhead_seconds += time.perf_counter() - t0

    def _stop_if_spent(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop every process at the same step once the budget is spent."""
        if share_budget(self.budget, pl_module.device):
            trainer.should_stop = True

    def _examples(self, batch: Any) -> int:
        """The examples in a batch, counted for the record; a batch whose size cannot be
        told counts 0, which only an examples budget cannot take."""
        n = examples_in(batch)
        if n is None and self.budget.unit == "examples":
            raise ConfigError(f"an examples budget counts the examples of each batch, but a "
                              f"batch of {type(batch).__name__} has no size to count "
                              "(its first field is not a tensor); use a steps or seconds "
                              "budget")
        return n or 0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.budget.stop()

    def on_init_end(self, *args: Any, **kwargs: Any) -> None:
        """The HF Trainer calls `on_init_end` on its callbacks first: refuse there."""
        raise ConfigError("this BudgetCallback is for Lightning; in the HF Trainer use "
                          "hasten.integrations.hf.BudgetCallback")

    def microseconds_per_step(self) -> float:
        """This callback's own cost per optimizer step (microseconds)."""
        return 1e6 * self.overhead_seconds / max(1, self.budget.work.steps)

    def state_dict(self) -> dict[str, Any]:
        return {"budget": self.budget.state_dict(), "base_lrs": self.base_lrs,
                "floor": self.floor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["budget"]["spec"] != self.budget.spec:
            raise ConfigError(f"the checkpoint's budget is {state_dict['budget']['spec']!r}, "
                              f"this callback's is {self.budget.spec!r}")
        self.budget.load_state_dict(state_dict["budget"])
        self.base_lrs = state_dict["base_lrs"]
        self.floor = float(state_dict["floor"])


def examples_in(batch: Any) -> int | None:
    """The examples in `batch` (the first dimension of its first tensor), or None when it
    cannot be told (a first field that is a list of strings)."""
    try:
        return batch_size(batch)
    except (TypeError, IndexError, StopIteration, AttributeError):
        return None


def budget_dataloader(dataset: Dataset, sampler: Sampler, batch_size: int, budget: Budget,
                      **loader_kwargs: Any) -> DataLoader:
    """A DataLoader whose batches a hasten sampler draws at `budget`'s progress (a
    `CompetenceBatchSampler`); the pass ends when the budget is spent. The sampler shards by
    rank itself: give Lightning `use_distributed_sampler=False`."""
    batches = CompetenceBatchSampler(sampler, batch_size, budget)
    return DataLoader(dataset, batch_sampler=batches, **loader_kwargs)
