"""hasten's budget in the HF transformers Trainer: SST-2 with a small BERT built from a config.

The Trainer runs as usual; `BudgetCallback` ends it when the budget is spent (evaluation and
checkpoints off the clock), and the LR follows the budget's progress, so a wall-clock run
ends with its schedule finished. `--selective` trains each batch on its biggest losers
(`SelectiveBackpropTrainer`). Data, tokenizer (trained here in a second) and model are local.

Run: python examples/hf_trainer.py [BUDGET] [--selective] [--train-rows N]
     (default 60s; also "500steps", "2e4ex")
"""

import argparse
import json
from functools import partial

from transformers import Trainer, TrainingArguments

from hasten import Budget
from hasten.integrations.hf import BudgetCallback, SelectiveBackpropTrainer, budget_optimizers
from hasten.integrations.sst2 import accuracy, load_sst2, tiny_bert

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("budget", nargs="?", default="60s")
parser.add_argument("--selective", action="store_true", help="selective backprop (top 50%%)")
parser.add_argument("--train-rows", type=int, default=20000, help="SST-2 sentences to use")
cli = parser.parse_args()

task = load_sst2(train_rows=cli.train_rows, vocab_size=4000)
model = tiny_bert(task.vocab_size, pad_id=task.pad_id)
if cli.selective:  # the same Trainer, each batch trained on its biggest losers
    Trainer = partial(SelectiveBackpropTrainer, selector="topk", keep=0.5)

# [readme]
budget = Budget(cli.budget)  # "60s", "500steps", "2e4ex"
opt, sched = budget_optimizers(model, budget, lr=1e-3, schedule="cosine", warmup=0.06)
args = TrainingArguments("runs/hf-example", max_steps=10**9,  # the budget ends the run
                         per_device_train_batch_size=32, report_to=[], disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=task.train, data_collator=task.collate,
                  optimizers=(opt, sched), callbacks=[BudgetCallback(budget)])
trainer.train()
# [/readme]

print(json.dumps({"steps": trainer.state.global_step, "budget_steps": budget.work.steps,
                  "train_seconds": budget.ledger.current("train"),
                  "last_lr": sched.get_last_lr()[0],
                  "accuracy": round(accuracy(model, task.test, task.collate), 2)}))
