"""hasten's budget and curriculum in PyTorch Lightning: SST-2 with a small BERT from a config.

`BudgetCallback` runs the budget's clock around training batches, sets the LR from the
budget's progress before each batch and stops the Trainer when the budget is spent; the
DataLoader draws short sentences first and every sentence by half of the budget (a
competence curriculum on sentence length). Data, tokenizer and model are local.

Run: python examples/lightning_loop.py [BUDGET] [--train-rows N]
     (default 60s; also "500steps", "2e4ex")
"""

import argparse
import json

import pytorch_lightning as pl
import torch

from hasten import Budget
from hasten.integrations.lightning import BudgetCallback, budget_dataloader
from hasten.integrations.sst2 import accuracy, load_sst2, sequence_loss, tiny_bert
from hasten.select.curriculum import CompetenceSampler

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("budget", nargs="?", default="60s")
parser.add_argument("--train-rows", type=int, default=20000, help="SST-2 sentences to use")
cli = parser.parse_args()

task = load_sst2(train_rows=cli.train_rows, vocab_size=4000)


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_bert(task.vocab_size, pad_id=task.pad_id)
        self.lrs: list[float] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return sequence_loss(self.model, batch).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)  # the peak LR


module = Classifier()

# [readme]
budget = Budget(cli.budget)  # "60s", "500steps", "2e4ex"
short_first = CompetenceSampler(task.lengths, p=2.0, T_fraction=0.5)  # sentence length
loader = budget_dataloader(task.train, short_first, batch_size=32, budget=budget,
                           collate_fn=task.collate)
trainer = pl.Trainer(max_epochs=-1, use_distributed_sampler=False,  # hasten shards by rank
                     callbacks=[BudgetCallback(budget, "cosine", warmup=0.06)])
trainer.fit(module, loader)
# [/readme]

print(json.dumps({"steps": trainer.global_step, "budget_steps": budget.work.steps,
                  "train_seconds": budget.ledger.current("train"),
                  "lrs": module.lrs, "last_lr": module.lrs[-1],
                  "accuracy": round(accuracy(module.model, task.test, task.collate), 2)}))
