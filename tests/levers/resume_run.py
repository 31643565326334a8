"""A run with a lever list in one of three loops, for the kill-and-resume tests:

    python resume_run.py trainer|hf|lightning OUT [--resume]

It trains 60 steps of the four-loop problem with LEVERS, checkpointing every 10% of the
budget, sleeping SLEEP seconds a step when HASTEN_TEST_SLOW is set (so a test can kill it
mid-run), and at the end writes OUT/final.json: the weights' exact values and the work."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from four_loops import DIFFICULTY, LR, Net, Rows, per_example_loss
from torch.utils.data import default_collate

from hasten.core.budget import Budget
from hasten.core.schedules import budget_lr

LEVERS = ["curriculum:T=0.3", "infobatch:prune=0.5,anneal=0.9", "sb:prime=0.05"]
STEPS, BATCH, SLEEP = 60, 16, 0.1


def slow_loss(model, batch):
    if os.environ.get("HASTEN_TEST_SLOW") and torch.is_grad_enabled():
        time.sleep(SLEEP)
    return per_example_loss(model, batch)


def finish(out: Path, model: torch.nn.Module, work: dict) -> None:
    weights = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
    (out / "final.json").write_text(json.dumps({"weights": weights, "work": work}))


def trainer(out: Path, resume: bool) -> None:
    from hasten.core.recipe import Recipe
    from hasten.core.train_config import TrainConfig
    from hasten.levers import train

    cfg = TrainConfig(budget=f"{STEPS}steps", lr=LR, optimizer="sgd", momentum=0.0,
                      schedule="constant", micro_batch=BATCH, quiet=True, tensorboard=False,
                      out_dir=str(out), checkpoint_every=STEPS // 10, resume=resume)
    recipe = Recipe(Net(), Rows(), slow_loss, None, cfg, difficulty=DIFFICULTY,
                    collate_fn=default_collate)
    result = train(recipe, levers=LEVERS)
    finish(out, recipe.model, result.work)


def hf(out: Path, resume: bool) -> None:
    from transformers import Trainer, TrainingArguments

    from hasten.integrations.hf_levers import HastenHFCallback

    model, budget = Net(), Budget(f"{STEPS}steps")
    cb = HastenHFCallback(budget, LEVERS, per_example_loss=slow_loss, batch_size=BATCH,
                          difficulty=DIFFICULTY, seed=0, save_every=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    args = TrainingArguments(output_dir=str(out), max_steps=10**6, max_grad_norm=0.0,
                             per_device_train_batch_size=2, report_to=[], save_strategy="no",
                             eval_strategy="no", logging_strategy="no", use_cpu=True,
                             disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=cb.train_dataset(Rows()),
                      optimizers=(opt, budget_lr(opt, budget, "constant")), callbacks=[cb],
                      data_collator=default_collate)
    trainer.train(resume_from_checkpoint=True if resume else None)
    finish(out, model, budget.work.as_dict())


def lightning(out: Path, resume: bool) -> None:
    import pytorch_lightning as pl

    from hasten.integrations.lightning_levers import HastenLightningCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = Net()

        def training_step(self, batch, batch_idx):  # Lightning asks for one; levers replace it
            return per_example_loss(self.net, batch).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    module, budget = Module(), Budget(f"{STEPS}steps")
    cb = HastenLightningCallback(budget, LEVERS, loss_fn=lambda m, b: slow_loss(m.net, b),
                                 batch_size=BATCH, schedule=None, difficulty=DIFFICULTY,
                                 save_every=0.1, checkpoint_dir=out / "ckpt")
    trainer = pl.Trainer(max_epochs=-1, callbacks=[cb], logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(out))
    last = None
    if resume:
        saved = sorted((out / "ckpt").glob("step-*.ckpt"),
                       key=lambda p: int(p.stem.split("-")[1]))
        last = str(saved[-1])
    trainer.fit(module, cb.train_dataloader(Rows(), collate_fn=default_collate),
                ckpt_path=last)
    finish(out, module.net, budget.work.as_dict())


if __name__ == "__main__":
    torch.set_num_threads(1)
    kind, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    {"trainer": trainer, "hf": hf, "lightning": lightning}[kind](folder, "--resume" in sys.argv)
