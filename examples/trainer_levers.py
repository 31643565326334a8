"""The same three levers in hasten's own trainer: a curriculum on sentence length, InfoBatch
dynamic pruning, selective backprop (top half of each draw), on SST-2 with a small BERT.

Run: python examples/trainer_levers.py [BUDGET]      (default 60s; also "200steps")
"""

import json

# [readme]
import sys

from hasten import Recipe, TrainConfig
from hasten.integrations.sst2 import load_sst2, sequence_loss, tiny_bert
from hasten.levers import train

task = load_sst2(train_rows=4000, vocab_size=4000)
budget = sys.argv[1] if len(sys.argv) > 1 else "60s"
recipe = Recipe(model=tiny_bert(task.vocab_size, pad_id=task.pad_id), train_data=task.train,
                loss_fn=sequence_loss, evaluate=None, collate_fn=task.collate,
                difficulty=task.lengths,
                config=TrainConfig(budget=budget, lr=1e-3, micro_batch=32,
                                   schedule_params={"warmup": 0.06}, quiet=True))
result = train(recipe, levers=["curriculum", "infobatch", "sb-topk"])
# [/readme]

print(json.dumps({**result.work, "train_seconds": result.train_seconds,
                  "levers": list(result.levers), "pruned": recipe.notes["pruning"]["pruned"]}))
