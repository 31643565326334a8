"""hasten's lever list in PyTorch Lightning: one callback.

    cb = HastenLightningCallback(Budget("20m"), levers=["curriculum", "infobatch", "sb-topk"],
                                 loss_fn=per_example_loss, difficulty=lengths, eval_every=0.1)
    trainer = pl.Trainer(max_epochs=-1, callbacks=[cb], check_val_every_n_epoch=None)
    trainer.fit(module, cb.train_dataloader(train_set, collate_fn=pad), val_loader)

How it reaches the batches and the per-example losses (one mechanism, documented here):
Lightning reduces the loss inside `training_step`, where no callback can reach the rows, so
with levers the callback stands in for `training_step` during fit: each step it draws its
batch through the levers (`hasten.levers.loop.LeverLoop.next_batch`: the levers' sampler, the
collate function given to `train_dataloader`, selective backprop's choice) and returns the
weighted mean of `loss_fn(module, batch)`, one loss per example. The loader Lightning iterates
only paces the steps (`train_dataloader` gives it an endless stream of placeholder batches,
so nothing it prefetches can run ahead of the levers). Without levers, `training_step` is
yours as usual.

Besides the budget and the LR schedule (`hasten.integrations.lightning.BudgetCallback`, which
this extends): validation, checkpoints and log rows at fractions of the budget (`eval_every`:
off the budget's clock; `save_every` writes `step-N.ckpt` under `checkpoint_dir`;
`log_every` logs the budget's progress and work counters), true work counters
(rows scored and backpropagated, FLOPs measured on a probe batch), and the levers' state in
Lightning's checkpoints, restored by `trainer.fit(..., ckpt_path=...)`. Passed to the HF
Trainer it refuses in one line. Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from hasten.core.budget import Budget
from hasten.core.checks import check_callable, check_int, fail
from hasten.core.errors import ConfigError
from hasten.core.sampling import CollateFn
from hasten.integrations.clock import Every
from hasten.integrations.lightning import BudgetCallback
from hasten.levers import Lever, parse_levers
from hasten.levers.base import check_lever_inputs
from hasten.levers.loop import LeverLoop


class _Placeholders(IterableDataset):
    """An endless stream of the first row of `data`: what Lightning's loader fetches."""

    def __init__(self, data: Dataset):
        self.row = data[0]

    def __iter__(self) -> Iterator[Any]:
        while True:
            yield self.row


class HastenLightningCallback(BudgetCallback):
    """A budget, its LR schedule and a lever list in Lightning; see the module docstring.

    budget, schedule, **schedule_params   as `BudgetCallback` (schedule=None: LR left alone).
    levers      spec strings or Lever objects (`hasten list levers`).
    loss_fn     (module, batch) -> losses [B]; needed with levers.
    batch_size  examples per backward batch (the levers' draws).
    eval_every, save_every, log_every   fractions of the budget; checkpoints go to
                `checkpoint_dir`; a log row holds the budget's progress and work counters.
    difficulty, proxy_model  what the curriculum and sb-proxy need.
    """

    def __init__(self, budget: Budget | str, levers: str | Sequence[str | Lever] = (), *,
                 loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
                 batch_size: int = 32, schedule: str | None = "cosine",
                 eval_every: float | None = None, save_every: float | None = None,
                 log_every: float | None = None, checkpoint_dir: str | Path = "checkpoints",
                 difficulty: Any = None,
                 proxy_model: Callable[[], nn.Module] | None = None, seed: int = 0,
                 tokens_fn: Callable[[Any], int] | None = None, **schedule_params: float):
        super().__init__(budget, schedule, tokens_fn=tokens_fn, **schedule_params)
        where = type(self).__name__
        self.levers = parse_levers(levers)
        check_callable(where, "loss_fn", loss_fn, "a function (module, batch) -> one loss "
                       "per example", none=True)
        if self.levers and loss_fn is None:
            raise ConfigError(f"{where}: levers choose and weight examples by their losses: "
                              "give loss_fn=(module, batch) -> one loss per example")
        check_int(where, "batch_size", batch_size, low=1)
        if not isinstance(checkpoint_dir, (str, Path)):
            fail(where, "checkpoint_dir", checkpoint_dir, "a folder path")
        check_lever_inputs(where, difficulty=difficulty, proxy_model=proxy_model, seed=seed,
                           fractions={"eval_every": eval_every, "save_every": save_every,
                                      "log_every": log_every})
        self.loss_fn, self.batch_size, self.seed = loss_fn, batch_size, seed
        self.difficulty, self.proxy_model = difficulty, proxy_model
        self.evals, self.saves, self.logs = Every(eval_every), Every(save_every), Every(log_every)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.data: Dataset | None = None
        self.collate_fn: CollateFn | None = None
        self.loop: LeverLoop | None = None
        self._pending: dict[str, Any] | None = None  # lever state read before the loop exists

    def train_dataloader(self, dataset: Dataset, collate_fn: CollateFn | None = None
                         ) -> DataLoader:
        """What to give `trainer.fit` as the training loader: the levers draw from
        `dataset`, collated by `collate_fn` (None: torch's default)."""
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__") \
                or len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError("train_dataloader needs a non-empty map-style dataset "
                              f"(indexable, with a length), got {type(dataset).__name__}")
        self.data, self.collate_fn = dataset, collate_fn
        return DataLoader(_Placeholders(dataset), batch_size=1, collate_fn=lambda rows: rows)

    def on_init_end(self, *args: Any, **kwargs: Any) -> None:
        """The HF Trainer calls `on_init_end` on its callbacks first: refuse there."""
        raise ConfigError("HastenLightningCallback is for Lightning; in the HF Trainer use "
                          "hasten.integrations.hf_levers.HastenHFCallback")

    # -- events -----------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not self.levers or self.loop is not None:
            return
        if self.data is None:
            raise ConfigError("levers draw the training batches: pass "
                              "callback.train_dataloader(your_dataset) to trainer.fit")
        precision = "bf16" if "bf16" in str(trainer.precision) else "fp32"
        self.loop = LeverLoop(self.levers, self.data, self.loss_fn, pl_module, self.budget,
                              self.batch_size, seed=self.seed, collate_fn=self.collate_fn,
                              difficulty=self.difficulty, proxy_model=self.proxy_model,
                              precision=precision, tokens_fn=self.tokens_fn,
                              device=pl_module.device, loop="Lightning")
        if self._pending is not None:
            self.loop.load_state_dict(self._pending)
        loop = self.loop
        pl_module.training_step = lambda *a, **k: loop.loss(pl_module, loop.next_batch())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self.evals.fraction is not None:
            trainer.val_check_batch = float("inf")  # validation only where the budget says
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.loop is None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        else:
            t0 = time.perf_counter()
            self.loop.step()  # counts the step, its rows and FLOPs
            self.budget.stop()
            self._stop_if_spent(trainer, pl_module)
            self.overhead_seconds += time.perf_counter() - t0
        progress = self.budget.progress()
        if self.evals.due(progress):
            loop = trainer.fit_loop.epoch_loop
            index = loop.total_batch_idx if trainer.check_val_every_n_epoch is None \
                else loop.batch_idx
            trainer.val_check_batch = index + 1  # Lightning validates after this batch
        if self.logs.due(progress):
            work = {f"work_{k}": float(v) for k, v in self.budget.work.as_dict().items()}
            pl_module.log_dict({"budget_progress": progress, **work}, on_step=True)
        if self.saves.due(progress):
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.checkpoint_dir / f"step-{trainer.global_step}.ckpt")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["evals"], state["saves"], state["logs"] = (self.evals.done, self.saves.done,
                                                         self.logs.done)
        if self.loop is not None:
            state["levers"] = self.loop.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.evals.done = int(state_dict.get("evals", 0))
        self.saves.done = int(state_dict.get("saves", 0))
        self.logs.done = int(state_dict.get("logs", 0))
        levers = state_dict.get("levers")
        if levers is not None:
            if self.loop is not None:
                self.loop.load_state_dict(levers)
            else:
                self._pending = levers
