"""hasten's parts in your own training loop, without hasten's trainer.

A wall-clock budget drives a cosine schedule, so the learning rate reaches zero exactly when
the time is up, however fast this machine is. Run: python examples/plain_loop.py [BUDGET]
"""

import sys

import torch
import torch.nn.functional as F

from hasten.budget import Budget
from hasten.data.vision import load_digits
from hasten.models.vision import ConvNet3
from hasten.schedules import cosine

budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "10s")
data = load_digits()
x, y = data.train.tensors
torch.manual_seed(0)
model = ConvNet3(data.input_shape, data.num_classes, width=32, depth=2)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
peak, step_seconds = 3e-3, 0.0

while not budget.exhausted():
    # where will we be when this step ends? use the schedule's value there
    p = budget.projected_progress(step_seconds)
    for group in opt.param_groups:
        group["lr"] = peak * cosine(p, warmup=0.05)
    start = budget.used()
    with budget.ledger.phase("train"):
        idx = torch.randint(len(y), (64,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        budget.work.steps += 1
    step_seconds = budget.used() - start
    if p >= 1.0:
        break

with budget.ledger.phase("eval"), torch.no_grad():
    x_test, y_test = data.test.tensors
    accuracy = 100.0 * (model(x_test).argmax(1) == y_test).float().mean().item()
print(f"{budget.work.steps} steps in {budget.ledger.seconds['train']:.2f}s of training, "
      f"last lr {opt.param_groups[0]['lr']:.2e}, test accuracy {accuracy:.2f}%")
