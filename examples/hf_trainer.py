"""hasten's budget and three levers in the HF transformers Trainer: SST-2 with a small BERT.

The Trainer runs as usual; `HastenHFCallback` ends it when the budget is spent (evaluation
and checkpoints off the clock), the LR follows the budget's progress, and the levers (a
curriculum on sentence length, InfoBatch, selective backprop) choose each batch inside the
model's forward, so a Trainer subclass with its own compute_loss keeps them. Data,
tokenizer (trained here in a second) and model are local.

Run: python examples/hf_trainer.py [BUDGET]      (default 60s; also "500steps", "2e4ex")
"""

import json

# [readme]
import sys

import torch
from transformers import Trainer, TrainingArguments

from hasten import Budget, budget_lr
from hasten.integrations.hf_levers import HastenHFCallback
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert

task = load_sst2(train_rows=4000, vocab_size=4000)
model = tiny_bert(task.vocab_size, pad_id=task.pad_id)
budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "60s")  # "500steps", "2e4ex"
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
sched = budget_lr(opt, budget, "cosine", warmup=0.06)
levers = HastenHFCallback(budget, ["curriculum", "infobatch", "sb-topk"],
                          per_example_loss=sequence_loss, difficulty=task.lengths)
args = TrainingArguments("runs/hf-example", max_steps=10**9,  # the budget ends the run
                         per_device_train_batch_size=32, report_to=[], disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=levers.train_dataset(task.train),
                  data_collator=task.collate, optimizers=(opt, sched), callbacks=[levers])
trainer.train()
# [/readme]

print(json.dumps({"steps": trainer.state.global_step, **budget.work.as_dict(),
                  "train_seconds": budget.ledger.current("train"),
                  "last_lr": sched.get_last_lr()[0]}))
