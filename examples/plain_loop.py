"""hasten's budget in your own PyTorch loop, without hasten's trainer.

A wall-clock budget drives a cosine schedule through a plain torch LR scheduler, and a
DataLoader draws its batches through a budget-aware batch sampler, so the learning rate
reaches its end exactly when the time is up, however fast this machine is.

Run: python examples/plain_loop.py [BUDGET]      (default 10s; also "300steps", "2e4ex")
"""

import json

# [readme]
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from hasten import Budget, budget_lr
from hasten.core.sampling import ShuffledSampler
from hasten.data import CompetenceBatchSampler
from hasten.data.vision import load_digits
from hasten.models.vision import ConvNet3

data = load_digits()  # scikit-learn's 8x8 digits, shipped with it
torch.manual_seed(0)
model = ConvNet3(data.input_shape, data.num_classes, width=32, depth=2)
dataset = data.train
budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "10s")
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
sched = budget_lr(opt, budget, "cosine", warmup=0.05)  # a torch LambdaLR
batches = CompetenceBatchSampler(ShuffledSampler(len(dataset)), 64, budget)
budget.start()  # the training clock: pause it (budget.stop()) around evaluation
for x, y in DataLoader(dataset, batch_sampler=batches):  # ends when the budget is spent
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    budget.work.steps += 1  # count the step, then let the schedule move
    sched.step()
budget.stop()
# [/readme]

with torch.no_grad():
    x_test, y_test = data.test.tensors
    accuracy = 100.0 * (model(x_test).argmax(1) == y_test).float().mean().item()
print(json.dumps({"steps": budget.work.steps, "train_seconds": budget.ledger.current("train"),
                  "last_lr": sched.get_last_lr()[0], "accuracy": round(accuracy, 2)}))
