"""hasten's lever list in the HF `transformers` Trainer: one callback, no Trainer subclass.

    cb = HastenHFCallback(Budget("20m"), levers=["curriculum", "infobatch", "sb-topk"],
                          difficulty=lengths, eval_every=0.1)
    trainer = Trainer(model, TrainingArguments(..., max_steps=10**9, eval_strategy="no"),
                      train_dataset=cb.train_dataset(ds), eval_dataset=dev,
                      data_collator=collate, optimizers=(opt, budget_lr(opt, cb.budget)),
                      callbacks=[cb])
    trainer.train()

How it reaches the batches and the per-example losses (one mechanism, documented here): at
the start of training the callback wraps the model's own `forward` (on the instance, so a
Trainer subclass that overrides `compute_loss` and calls `model(**inputs)` keeps the levers).
In a training forward, the wrapped model draws its batch through the levers
(`hasten.levers.loop.LeverLoop.next_batch`: the levers' sampler, the collator of the Trainer's
data loader, selective backprop's choice) and returns `{"loss": weighted mean of the
per-example losses}`; evaluation forwards run unwrapped. The Trainer's data loader only paces
the steps: `train_dataset(ds)` gives it an endless stream of one placeholder row, so nothing
it fetches ahead of a step can run ahead of the levers. `per_example_loss(model, inputs)`
defaults to cross-entropy of `logits` against `labels` (or `label`): [B, C] logits per row,
[B, T, V] logits averaged over the row's labelled tokens (-100 ignored).

Besides the budget (`hasten.integrations.hf.BudgetCallback`, which this extends):
evaluation, checkpoints and log rows at fractions of the budget (`eval_every`, `save_every`,
`log_every`: off the budget's clock; set that strategy of the Trainer's to "no"), true work
counters (rows scored and backpropagated, FLOPs measured on a probe batch), and the levers'
state in every checkpoint (`hasten-levers.json` + `.safetensors` beside HF's files), restored
by `trainer.train(resume_from_checkpoint=...)`. Passed to Lightning it refuses in one line.
Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from hasten.core.budget import Budget
from hasten.core.checks import check_callable, check_int
from hasten.core.errors import ConfigError
from hasten.core.state_file import load_state, save_state
from hasten.integrations.clock import Every
from hasten.integrations.hf import BudgetCallback
from hasten.levers import Lever, parse_levers
from hasten.levers.base import check_lever_inputs
from hasten.levers.loop import LeverLoop

STATE_NAME = "hasten-levers"


def token_or_row_cross_entropy(model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy of each row: `logits` [B, C] against `labels` (or `label`) [B], or
    [B, T, V] against [B, T] averaged over each row's labelled tokens (-100 ignored)."""
    key = "labels" if "labels" in inputs else "label" if "label" in inputs else None
    if key is None:
        raise ConfigError("the default per-example loss needs `labels` (or `label`) in the "
                          "batch: pass per_example_loss=(model, inputs) -> losses [B]")
    labels = inputs[key]
    logits = model(**{k: v for k, v in inputs.items() if k != key}).logits.float()
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels, reduction="none")
    if logits.dim() == 3 and labels.dim() == 2:
        per_token = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none",
                                    ignore_index=-100)
        counted = (labels != -100).sum(1).clamp(min=1)
        return per_token.sum(1) / counted
    raise ConfigError(f"the default per-example loss takes logits [B, C] or [B, T, V], got "
                      f"{list(logits.shape)}: pass per_example_loss=(model, inputs) -> [B]")


class _Placeholders(IterableDataset):
    """An endless stream of one row of `data`: what the Trainer's loader fetches, ignored."""

    def __init__(self, data: Dataset):
        self.row = data[0]

    def __iter__(self) -> Any:
        while True:
            yield self.row


class HastenHFCallback(BudgetCallback):
    """A budget and a lever list in the HF Trainer; see the module docstring.

    budget      a `Budget` or its spec; share it with `budget_lr` for the LR.
    levers      spec strings or Lever objects (`hasten list levers`).
    per_example_loss   (model, inputs) -> losses [B]; default `token_or_row_cross_entropy`.
    batch_size  examples per backward batch; None: `per_device_train_batch_size`.
    eval_every, save_every, log_every   fractions of the budget (None: the Trainer's own
                strategies); a log row carries the budget's progress and work counters.
    difficulty, proxy_model  what the curriculum and sb-proxy need.
    seed        the levers' draws (None: TrainingArguments.seed).
    """

    def __init__(self, budget: Budget | str, levers: str | Sequence[str | Lever] = (), *,
                 per_example_loss: Callable[[nn.Module, Any], torch.Tensor] | None = None,
                 batch_size: int | None = None, eval_every: float | None = None,
                 save_every: float | None = None, log_every: float | None = None,
                 difficulty: Any = None,
                 proxy_model: Callable[[], nn.Module] | None = None, seed: int | None = None,
                 tokens_fn: Callable[[Any], int] | None = None):
        super().__init__(budget)
        where = type(self).__name__
        self.levers = parse_levers(levers)
        check_callable(where, "per_example_loss", per_example_loss, "a function (model, "
                       "inputs) -> one loss per example", none=True)
        check_int(where, "batch_size", batch_size, low=1, none=True)
        check_callable(where, "tokens_fn", tokens_fn, "a function (batch) -> tokens in it",
                       none=True)
        check_lever_inputs(where, difficulty=difficulty, proxy_model=proxy_model, seed=seed,
                           fractions={"eval_every": eval_every, "save_every": save_every,
                                      "log_every": log_every})
        self.per_example_loss = per_example_loss or token_or_row_cross_entropy
        self.batch_size, self.seed, self.tokens_fn = batch_size, seed, tokens_fn
        self.difficulty, self.proxy_model = difficulty, proxy_model
        self.evals, self.saves = Every(eval_every), Every(save_every)
        self.logs = Every(log_every)
        self.data: Dataset | None = None
        self.loop: LeverLoop | None = None
        self.evaluations = 0
        self._inside = False

    def train_dataset(self, dataset: Dataset) -> IterableDataset:
        """What to give the Trainer as `train_dataset`: the levers draw from `dataset`."""
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__") \
                or len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError("train_dataset needs a non-empty map-style dataset (indexable, "
                              f"with a length), got {type(dataset).__name__}")
        self.data = dataset
        return _Placeholders(dataset)

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Lightning calls `setup` on its callbacks first: refuse there, in one line."""
        raise ConfigError("HastenHFCallback is for the HF Trainer; in Lightning use "
                          "hasten.integrations.lightning.HastenLightningCallback")

    def _check_tokens(self, args: Any) -> None:
        if self.budget.unit == "tokens" and self.tokens_fn is None:
            raise ConfigError("a tokens budget needs tokens_fn(batch) -> tokens in the batch")

    # -- events -----------------------------------------------------------------------------

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.data is None:
            raise ConfigError("HastenHFCallback draws the training batches: pass "
                              "train_dataset=callback.train_dataset(your_dataset)")
        if args.max_steps is None or args.max_steps <= 0:
            raise ConfigError("give TrainingArguments(max_steps=...) a large number (e.g. "
                              "10**9): the budget ends the run")
        for name, every, strategy in (("eval_every", self.evals, args.eval_strategy),
                                      ("save_every", self.saves, args.save_strategy),
                                      ("log_every", self.logs, args.logging_strategy)):
            if every.fraction is not None and str(getattr(strategy, "value", strategy)) != "no":
                raise ConfigError(f"{name} schedules by the budget: set TrainingArguments("
                                  f"{name.replace('_every', '')}_strategy='no')")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        t0 = time.perf_counter()
        model, loader = kwargs["model"], kwargs.get("train_dataloader")
        if self.loop is None:
            assert self.data is not None
            self.loop = LeverLoop(
                self.levers, self.data, self.per_example_loss, model, self.budget,
                self.batch_size or args.per_device_train_batch_size,
                seed=args.seed if self.seed is None else self.seed,
                collate_fn=getattr(loader, "collate_fn", None), difficulty=self.difficulty,
                proxy_model=self.proxy_model, precision="bf16" if args.bf16 else "fp32",
                tokens_fn=self.tokens_fn, device=args.device, loop="the HF Trainer")
            self._wrap(model, args.gradient_accumulation_steps)
        if state.global_step > 0:  # resuming: the levers' state from that checkpoint
            self._restore(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        self.overhead_seconds += time.perf_counter() - t0

    def _wrap(self, model: nn.Module, accumulation: int) -> None:
        original = model.forward
        loop = self.loop
        assert loop is not None

        @functools.wraps(original)
        def forward(*args: Any, **inputs: Any) -> Any:
            if self._inside or not (model.training and torch.is_grad_enabled()):
                return original(*args, **inputs)
            batch = loop.next_batch()
            self._inside = True
            try:
                loss = loop.loss(model, batch)
            finally:
                self._inside = False
            if inputs.get("num_items_in_batch") is not None:
                loss = loss / accumulation  # the Trainer then takes it as scaled for that
            return {"loss": loss}

        model.forward = forward  # on the instance: the class and its save_pretrained stay

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The loop counts steps, rows and FLOPs itself when the step ends."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        assert self.loop is not None
        self.loop.step()
        self.overhead_seconds += time.perf_counter() - t0
        super().on_step_end(args, state, control, **kwargs)  # stops the clock, maybe the run
        progress = self.budget.progress()
        if self.evals.due(progress):
            control.should_evaluate = True
            self.evaluations += 1
        if self.saves.due(progress):
            control.should_save = True
        if self.logs.due(progress):
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        """Every log row the Trainer writes gets the budget's progress and work counters
        (in the row reporters see, and in the row kept in `state.log_history`)."""
        extra = {"budget_progress": round(self.budget.progress(), 6),
                 **{f"work_{k}": v for k, v in self.budget.work.as_dict().items()}}
        for row in (logs, state.log_history[-1] if state.log_history else None):
            if row is not None:
                row.update(extra)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.loop is not None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            save_state({"loop": self.loop.state_dict(), "evals": self.evals.done,
                        "saves": self.saves.done, "logs": self.logs.done}, folder, STATE_NAME)

    def _restore(self, folder: Path) -> None:
        saved = load_state(folder, STATE_NAME)
        if saved is None:
            raise ConfigError(f"{folder} holds no lever state ({STATE_NAME}.json): it was not "
                              "saved by HastenHFCallback")
        assert self.loop is not None
        self.loop.load_state_dict(saved["loop"])
        self.evals.done, self.saves.done = int(saved["evals"]), int(saved["saves"])
        self.logs.done = int(saved.get("logs", 0))
