"""One tiny problem run through the four loops with the same lever list: hasten's trainer, the
HF Trainer (a subclass that overrides `compute_loss`), Lightning, and a plain loop. Each run
records, per training micro-batch, the rows drawn (before selection), the rows kept and their
loss weights, and the per-example losses, through hooks added beside the levers'."""

from __future__ import annotations

import time
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate

from hasten.core.budget import Budget
from hasten.core.recipe import Recipe
from hasten.core.schedules import budget_lr
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import Hook
from hasten.core.trainer import train as core_train
from hasten.levers import apply_levers
from hasten.levers.loop import LeverLoop

LEVERS = ["curriculum:T=0.3", "infobatch:prune=0.5,anneal=0.9", "sb-topk"]
STEPS, BATCH, LR = 50, 16, 0.05

torch.manual_seed(0)
X = torch.randn(400, 10)
Y = (X[:, 0] + 0.3 * X[:, 2] > 0).long()
DIFFICULTY = X[:, 1].abs().numpy()


class Rows(Dataset):
    """Dict rows, as an HF collator expects them."""

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": X[i], "labels": Y[i]}


class Net(nn.Module):
    """A small MLP with the HF calling convention (keyword inputs, an output with logits)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, pixel_values=None, labels=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.body(pixel_values)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def per_example_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(pixel_values=batch["pixel_values"]).logits, batch["labels"],
                           reduction="none")


class Drawn(Hook):
    """First hook: the rows drawn for a micro-batch (before selection)."""

    def __init__(self):
        self.rows: list[list[int]] = []

    def on_batch(self, state: Any, batch: Any) -> Any:
        self.rows.append(list(state.batch_indices))
        return batch


class Kept(Hook):
    """Last hook: the rows trained on, their weighted losses, InfoBatch's weights."""

    def __init__(self, pruner_of):
        self.pruner_of, self.rows, self.losses, self.weights = pruner_of, [], [], []

    def on_loss(self, state: Any, batch: Any, losses: torch.Tensor) -> torch.Tensor:
        self.rows.append(list(state.batch_indices))
        self.losses.append(losses.detach().clone())
        self.weights.append(self.pruner_of().weights(state.batch_indices).tolist())
        return losses


def _pruner(hooks: list[Hook]) -> Any:
    for h in hooks:
        inner = getattr(h, "hook", h)
        if hasattr(inner, "pruner"):
            return inner.pruner
    raise AssertionError("no InfoBatch hook")


def _record(hooks: list[Hook]) -> tuple[Drawn, Kept]:
    drawn, kept = Drawn(), Kept(lambda: _pruner(hooks))
    hooks.insert(0, drawn)
    hooks.append(kept)
    return drawn, kept


def result(drawn: Drawn, kept: Kept, work: dict[str, float], **more: Any) -> dict[str, Any]:
    return {"drawn": drawn.rows, "kept": kept.rows, "losses": kept.losses,
            "weights": kept.weights, "work": work, **more}


def run_trainer(levers: list[str] = LEVERS) -> dict[str, Any]:
    cfg = TrainConfig(budget=f"{STEPS}steps", lr=LR, optimizer="sgd", momentum=0.0,
                      schedule="constant", micro_batch=BATCH, quiet=True, tensorboard=False)
    recipe = Recipe(Net(), Rows(), per_example_loss, None, cfg, difficulty=DIFFICULTY,
                    collate_fn=default_collate)
    apply_levers(recipe, levers)
    drawn, kept = _record(recipe.hooks)
    res = core_train(recipe.model, recipe.train_data, recipe.loss_fn, recipe.config,
                     hooks=recipe.hooks, sampler=recipe.sampler, collate_fn=recipe.collate_fn)
    return result(drawn, kept, res.work, model=recipe.model)


def run_plain(levers: list[str] = LEVERS) -> dict[str, Any]:
    model, budget = Net(), Budget(f"{STEPS}steps")
    loop = LeverLoop(levers, Rows(), per_example_loss, model, budget, BATCH,
                     difficulty=DIFFICULTY, collate_fn=default_collate)
    drawn, kept = _record(loop.hooks)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for batch in loop:
        loss = loop.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loop.step()
    return result(drawn, kept, loop.work(), model=model)


def _with_recorders(callback: Any, event: str) -> dict[str, Any]:
    """Add the recorders to `callback`'s lever loop as soon as it exists (at `event`)."""
    found: dict[str, Any] = {}
    original = getattr(callback, event)

    def hooked(self: Any, *args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        if "drawn" not in found and self.loop is not None:
            found["drawn"], found["kept"] = _record(self.loop.hooks)

    setattr(callback, event, types.MethodType(hooked, callback))
    return found


def run_hf(tmp_path: Any, levers: list[str] = LEVERS, eval_every: float | None = 0.1,
           evaluate_sleep: float = 0.0) -> dict[str, Any]:
    from transformers import Trainer, TrainingArguments

    from hasten.integrations.hf_levers import HastenHFCallback

    class OwnLoss(Trainer):  # a user's subclass with its own compute_loss
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)
            return (out["loss"], out) if return_outputs else out["loss"]

        def evaluate(self, *args, **kwargs):
            time.sleep(evaluate_sleep)
            return super().evaluate(*args, **kwargs)

    model, budget = Net(), Budget(f"{STEPS}steps")
    cb = HastenHFCallback(budget, levers, per_example_loss=per_example_loss,
                          batch_size=BATCH, difficulty=DIFFICULTY, seed=0,
                          eval_every=eval_every)
    found = _with_recorders(cb, "on_train_begin")
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=10**6,
                             per_device_train_batch_size=2, max_grad_norm=0.0, report_to=[],
                             save_strategy="no", eval_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True, seed=0)
    trainer = OwnLoss(model=model, args=args, train_dataset=cb.train_dataset(Rows()),
                      eval_dataset=Rows(), optimizers=(opt, budget_lr(opt, budget, "constant")),
                      callbacks=[cb], data_collator=default_collate)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    evaluations = sum(1 for h in trainer.state.log_history if "eval_loss" in h)
    return result(found["drawn"], found["kept"], budget.work.as_dict(), model=model,
                  evaluations=evaluations, train_seconds=budget.ledger.seconds["train"],
                  wall=wall)


def run_lightning(tmp_path: Any, levers: list[str] = LEVERS, eval_every: float | None = 0.1,
                  evaluate_sleep: float = 0.0) -> dict[str, Any]:
    import pytorch_lightning as pl

    from hasten.integrations.lightning_levers import HastenLightningCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net, self.validations = Net(), 0

        def training_step(self, batch, batch_idx):
            raise AssertionError("the callback stands in for training_step")

        def validation_step(self, batch, batch_idx):
            if batch_idx == 0:
                self.validations += 1
                time.sleep(evaluate_sleep)
            return per_example_loss(self.net, batch).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    module, budget = Module(), Budget(f"{STEPS}steps")
    cb = HastenLightningCallback(budget, levers, loss_fn=lambda m, b: per_example_loss(m.net, b),
                                 batch_size=BATCH, schedule=None, difficulty=DIFFICULTY,
                                 eval_every=eval_every)
    found = _with_recorders(cb, "on_train_start")
    trainer = pl.Trainer(max_epochs=-1, callbacks=[cb], logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         check_val_every_n_epoch=None, default_root_dir=str(tmp_path))
    val = torch.utils.data.DataLoader(Rows(), batch_size=100, collate_fn=default_collate)
    started = time.perf_counter()
    trainer.fit(module, cb.train_dataloader(Rows(), collate_fn=default_collate), val)
    return result(found["drawn"], found["kept"], budget.work.as_dict(), model=module.net,
                  evaluations=module.validations, train_seconds=budget.ledger.seconds["train"],
                  wall=time.perf_counter() - started)
