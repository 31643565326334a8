"""hasten's budget and three levers in PyTorch Lightning: SST-2 with a small BERT.

`HastenLightningCallback` runs the budget's clock around training batches, sets the LR from
the budget's progress, stops the Trainer when the budget is spent, and with levers (a
curriculum on sentence length, InfoBatch, selective backprop) draws each batch through them
and trains on the weighted per-example losses in place of `training_step`. Data, tokenizer
and model are local.

Run: python examples/lightning_loop.py [BUDGET]      (default 60s; also "500steps", "2e4ex")
"""

import json

# [readme]
import sys

import pytorch_lightning as pl
import torch

from hasten import Budget
from hasten.integrations.lightning_levers import HastenLightningCallback
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert

task = load_sst2(train_rows=4000, vocab_size=4000)


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_bert(task.vocab_size, pad_id=task.pad_id)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return sequence_loss(self.model, batch).mean()  # used when no lever is listed

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)  # the peak LR


budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "60s")  # "500steps", "2e4ex"
levers = HastenLightningCallback(budget, ["curriculum", "infobatch", "sb-topk"],
                                 loss_fn=lambda module, b: sequence_loss(module.model, b),
                                 batch_size=32, difficulty=task.lengths, warmup=0.06)
trainer = pl.Trainer(max_epochs=-1, callbacks=[levers], logger=False,
                     enable_checkpointing=False)
trainer.fit(Classifier(), levers.train_dataloader(task.train, collate_fn=task.collate))
# [/readme]

print(json.dumps({"steps": trainer.global_step, **budget.work.as_dict(),
                  "train_seconds": budget.ledger.current("train")}))
