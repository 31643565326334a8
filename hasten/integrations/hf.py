"""hasten's budget, schedules, selective backprop and samplers in the HF `transformers`
Trainer (the `hf` extra).

    budget = Budget("20m")
    opt, sched = budget_optimizers(model, budget, lr=5e-4, schedule="cosine", warmup=0.06)
    trainer = Trainer(model, TrainingArguments(..., max_steps=10**6), train_dataset=ds,
                      data_collator=pad_collate(pad_id), optimizers=(opt, sched),
                      callbacks=[BudgetCallback(budget)])
    trainer.train()  # stops when the budget is spent, with the LR at its schedule's end

- `BudgetCallback` runs the budget's clock from `on_step_begin` to `on_step_end` only, so
  evaluation, checkpointing and logging are off the clock; it counts steps, examples (the
  nominal global batch) and tokens (from HF's `include_num_input_tokens_seen`), and stops
  the run once the budget is spent (on every process at the same step: under several
  processes they share the largest clock, `hasten.integrations.clock`). Its state rides
  in HF checkpoints (`ExportableState`, in `trainer_state.json`) and comes back with
  `trainer.train(resume_from_checkpoint=...)`.
- `budget_lr` (hasten.core.schedules) or `budget_optimizers` give the LR scheduler to pass in
  `optimizers=`; HF's own schedulers are sized by `max_steps`, which a budget does not know.
- Levers (selective backprop, InfoBatch, curricula, ...): `hasten.integrations.hf_levers.
  HastenHFCallback`, a `BudgetCallback` that also runs a lever list; the two Trainer
  subclasses below are kept as deprecated shims.
- `SelectiveBackpropTrainer` trains each batch on the examples hasten's selector keeps
  (Jiang et al. 2019, "Accelerating Deep Learning by Focusing on the Biggest Losers"; see
  hasten.steps.selective_backprop). Departure on purpose: inside the HF loop a batch cannot
  wait for more examples, so the kept rows of each batch make a smaller backward batch (as
  Composer does) instead of queueing until a full one.
- `BudgetSamplerTrainer` draws training batches from any hasten sampler (a curriculum, a
  pruned subset) at the budget's progress.

HF data loading (the batches of a step are fetched before `on_step_begin`) is off the clock.
Where it is shown: docs/your-loop.md; the measurement is `hasten.integrations.hf_bench`.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from hasten.core.budget import Budget
from hasten.core.checks import (
    check_callable,
    check_choice,
    check_int,
    check_number,
    check_sampler,
    fail,
)
from hasten.core.errors import ConfigError
from hasten.core.sampling import Sampler
from hasten.core.schedules import BudgetLR, budget_lr
from hasten.core.trainer import param_groups
from hasten.data.batch_sampler import CompetenceIndexSampler
from hasten.integrations.clock import check_budget, share_budget
from hasten.select.infobatch import InfoBatch
from hasten.steps.selective_backprop import LossHistory, select_biggest_losers, top_k_mask


class BudgetCallback(TrainerCallback, ExportableState):
    """Counts a `Budget` in the HF Trainer and stops the run when it is spent.

    budget   a `Budget` or its spec ("20m", "2000steps", "1e6ex", "3e9tok"); share the
             object with `budget_lr` so the LR follows the same clock. FLOP budgets are not
             supported here (HF counts FLOPs only when it logs).
    `overhead_seconds` is the time spent inside this callback's own hooks.
    """

    def __init__(self, budget: Budget | str):
        check_budget(type(self).__name__, budget)
        self.budget = budget if isinstance(budget, Budget) else Budget(budget)
        if self.budget.unit == "flops":
            raise ConfigError("BudgetCallback counts seconds, steps, examples and tokens; "
                              "use one of those units with the HF Trainer")
        self.overhead_seconds = 0.0
        self._tokens_seen = 0

    # -- checkpoints (HF's ExportableState: JSON in trainer_state.json) -------------------

    @property
    def budget_state(self) -> dict[str, Any]:
        return self.budget.state_dict()

    @budget_state.setter
    def budget_state(self, state: dict[str, Any]) -> None:
        self.budget.load_state_dict(state)

    def state(self) -> dict[str, Any]:
        return {"args": {"budget": self.budget.spec},
                "attributes": {"budget_state": self.budget_state}}

    # -- events ---------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        self._check_tokens(args)
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        saved = saved[0] if isinstance(saved, list) else saved
        if saved and "budget_state" in saved.get("attributes", {}):
            self.budget_state = saved["attributes"]["budget_state"]  # resume (or no change)
        self._share_clock_with(kwargs.get("lr_scheduler"))
        self._tokens_seen = int(state.num_input_tokens_seen or 0)
        self.overhead_seconds += time.perf_counter() - t0

    def _check_tokens(self, args: Any) -> None:
        if self.budget.unit == "tokens" and args.include_num_input_tokens_seen == "no":
            raise ConfigError("a tokens budget needs TrainingArguments("
                              "include_num_input_tokens_seen='non_padding')")

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Lightning calls `setup` on its callbacks first: refuse there, in one line."""
        raise ConfigError("this BudgetCallback is for the HF Trainer; in Lightning use "
                          "hasten.integrations.lightning.BudgetCallback")

    def _share_clock_with(self, scheduler: Any) -> None:
        """A budget LR scheduler must read the budget this callback counts. HF rebuilds
        callbacks from checkpoints when `restore_callback_states_from_checkpoint` is set, and
        the rebuilt one holds a new Budget: hand it over to the scheduler's."""
        if not isinstance(scheduler, BudgetLR) or scheduler.budget is self.budget:
            return
        if scheduler.budget.spec != self.budget.spec:
            raise ConfigError(f"the LR scheduler follows {scheduler.budget!r} but the callback "
                              f"counts {self.budget!r}: give both the same Budget")
        scheduler.budget.load_state_dict(self.budget.state_dict())
        self.budget = scheduler.budget

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        self.budget.start()
        self.overhead_seconds += time.perf_counter() - t0

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # counted before HF steps the LR scheduler, which then sets the next step's LR
        t0 = time.perf_counter()
        work = self.budget.work
        work.steps += 1
        batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        work.examples_forwarded += batch
        work.examples_backpropagated += batch
        seen = int(state.num_input_tokens_seen or 0)
        work.tokens += seen - self._tokens_seen
        self._tokens_seen = seen
        self.overhead_seconds += time.perf_counter() - t0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        self.budget.stop()
        if share_budget(self.budget, args.device):
            control.should_training_stop = True
        self.overhead_seconds += time.perf_counter() - t0

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.budget.stop()

    def microseconds_per_step(self) -> float:
        """This callback's own cost per optimizer step (microseconds)."""
        return 1e6 * self.overhead_seconds / max(1, self.budget.work.steps)


def budget_optimizers(model: nn.Module, budget: Budget, lr: float, schedule: str = "cosine",
                      weight_decay: float = 0.0, **params: float
                      ) -> tuple[torch.optim.AdamW, BudgetLR]:
    """AdamW (no weight decay on norms and biases, as hasten's trainer) and a `budget_lr`
    scheduler, for `Trainer(optimizers=...)`."""
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    return opt, budget_lr(opt, budget, schedule, **params)


def per_example_cross_entropy(model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy of each example for models returning `logits` [B, C] (sequence
    classification) with `labels` [B] in the inputs (`label`, as a collator of your own may
    name it, works too)."""
    key = next((k for k in ("labels", "label") if k in inputs), None)
    if key is None:
        raise ConfigError(f"per_example_cross_entropy needs the labels in the batch as "
                          f"'labels' (or 'label'); it has {', '.join(map(repr, inputs))}: name "
                          "them so in the collator, or pass per_example_loss=(model, inputs) "
                          "-> [B]")
    labels = inputs[key]
    logits = model(**{k: v for k, v in inputs.items() if k != key}).logits
    if logits.dim() != 2:
        raise ConfigError(f"per_example_cross_entropy needs logits [batch, classes], got shape "
                          f"{list(logits.shape)}: pass per_example_loss=(model, inputs) -> [B]")
    return F.cross_entropy(logits.float(), labels, reduction="none")


def _rows(inputs: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    return {k: v[keep.to(v.device)] if isinstance(v, torch.Tensor) and v.dim() > 0 else v
            for k, v in inputs.items()}


class SelectiveBackpropTrainer(Trainer):
    """An HF Trainer whose training loss is the mean over the examples hasten's selector
    keeps from each batch (evaluation is unchanged).

    selector   "sb" (keep each example with probability percentile ** beta, the paper's
               rule, percentiles among the last `history` losses) or "topk" (keep the
               `keep` fraction with the highest losses).
    per_example_loss   (model, inputs) -> losses [B]; default cross-entropy of `logits`.
    Each batch first gets a no-grad, eval-mode scoring forward; at least one example is kept.
    `scored` and `kept` count examples. Combine it with the other trainers by subclassing
    both (`class MyTrainer(SelectiveBackpropTrainer, BudgetSamplerTrainer)`).
    """

    def __init__(self, *args: Any, selector: str = "sb", keep: float = 0.5, beta: float = 3.0,
                 p_min: float = 0.0, history: int = 1024, per_example_loss: Any = None,
                 selection_seed: int = 0, **kwargs: Any):
        warnings.warn("SelectiveBackpropTrainer is deprecated: use a plain Trainer with "
                      "hasten.integrations.hf_levers.HastenHFCallback(budget, levers=['sb'] or "
                      "['sb-topk'])", DeprecationWarning, stacklevel=2)
        where = "SelectiveBackpropTrainer"
        check_choice(where, "selector", selector, ("sb", "topk"))
        check_number(where, "keep", keep, 0, 1, low_open=True)
        check_number(where, "beta", beta, 0, low_open=True)
        check_number(where, "p_min", p_min, 0, 1)
        check_int(where, "history", history, low=1)
        check_callable(where, "per_example_loss", per_example_loss, "a function (model, "
                       "inputs) -> one loss per example", none=True)
        check_int(where, "selection_seed", selection_seed)
        super().__init__(*args, **kwargs)
        self.selector, self.keep, self.beta, self.p_min = selector, keep, beta, p_min
        self.history = LossHistory(history)
        self.per_example_loss = per_example_loss or per_example_cross_entropy
        self.generator = torch.Generator().manual_seed(selection_seed)
        self.scored = self.kept = 0
        self.loss_is_scaled_for_ga = False  # a per-batch mean: HF divides by accumulation

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any],
                     return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        if not model.training or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        model.eval()
        with torch.no_grad():
            losses = self.per_example_loss(model, inputs).detach().float().cpu()
        model.train()
        if self.selector == "topk":
            mask = top_k_mask(losses, self.keep)
        else:
            mask = select_biggest_losers(losses, self.history, self.beta, self.p_min,
                                         self.generator)
        if not mask.any():
            mask[int(losses.argmax())] = True
        keep = torch.nonzero(mask).flatten()
        self.scored += len(losses)
        self.kept += len(keep)
        return self.per_example_loss(model, _rows(inputs, keep)).mean()


class BudgetSamplerTrainer(Trainer):
    """An HF Trainer whose training batches are drawn by a hasten sampler (anything with
    `sample(n, progress)`: a `CompetenceSampler`, a pruned subset...) at `budget`'s progress.

    The sampler must give the global stream (rank 0 of 1): under several processes,
    accelerate splits or deals out the DataLoader's batches itself (docs/your-loop.md).
    Each pass is `len(train_dataset)` indices; batches are `args.train_batch_size`.
    """

    def __init__(self, *args: Any, sampler: Sampler, budget: Budget, **kwargs: Any):
        warnings.warn("BudgetSamplerTrainer is deprecated: use a plain Trainer with "
                      "hasten.integrations.hf_levers.HastenHFCallback(budget, levers=[...])",
                      DeprecationWarning, stacklevel=2)
        check_sampler("BudgetSamplerTrainer", "sampler", sampler)
        if isinstance(sampler, InfoBatch):
            raise ConfigError("BudgetSamplerTrainer cannot record InfoBatch's losses, so it "
                              "would prune nothing: use HastenHFCallback(budget, "
                              "levers=['infobatch'])")
        if not isinstance(budget, Budget):
            fail("BudgetSamplerTrainer", "budget", budget, "a Budget (the one BudgetCallback "
                 "counts)")
        if getattr(sampler, "world_size", 1) != 1:
            raise ConfigError("under the HF Trainer build the sampler with rank=0, "
                              "world_size=1: accelerate shards its batches across processes")
        super().__init__(*args, **kwargs)
        self.hasten_sampler, self.budget = sampler, budget

    def _get_train_sampler(self, train_dataset: Any = None) -> CompetenceIndexSampler:
        data = train_dataset if train_dataset is not None else self.train_dataset
        return CompetenceIndexSampler(self.hasten_sampler, self._train_batch_size, self.budget,
                                      length=len(data))
