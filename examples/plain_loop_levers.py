"""Three levers in a hand-written PyTorch loop: a curriculum on sentence length, InfoBatch
dynamic pruning, selective backprop (top half of each draw), on SST-2 with a small BERT.

`LeverLoop` draws each batch through the levers (the curriculum admits short sentences
first, InfoBatch prunes well-learned ones each epoch, selective backprop keeps the biggest
losers), weighs the per-example losses, and counts the work; the loop stays yours.

Run: python examples/plain_loop_levers.py [BUDGET]      (default 60s; also "200steps")
"""

import json

# [readme]
import sys

import torch

from hasten import Budget, budget_lr
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert
from hasten.levers.loop import LeverLoop

task = load_sst2(train_rows=4000, vocab_size=4000)
model = tiny_bert(task.vocab_size, pad_id=task.pad_id)
budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "60s")
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
sched = budget_lr(opt, budget, "cosine", warmup=0.06)
loop = LeverLoop(["curriculum", "infobatch", "sb-topk"], task.train, sequence_loss, model,
                 budget, batch_size=32, difficulty=task.lengths, collate_fn=task.collate)
budget.start()
for batch in loop:  # drawn through the levers; ends when the budget is spent
    loss = loop.loss(model, batch)  # per-example losses, weighted, averaged
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    loop.step()  # the levers learn from this step's losses
budget.stop()
# [/readme]

print(json.dumps({**loop.work(), "train_seconds": budget.ledger.current("train"),
                  "last_lr": sched.get_last_lr()[0],
                  "pruned": loop.recipe.notes["pruning"]["pruned"]}))
