"""Every data and step lever of hasten in a hand-written PyTorch loop, on one budget.

1. pruning: score the training set by EL2N (a briefly trained proxy), keep 70% by coverage
   sampling over the score strata (CCS);
2. curriculum: draw batches easiest-first (lowest EL2N), every kept example admitted by
   half of the budget, through a DataLoader batch sampler that reads the budget's progress;
3. selective backprop: a cheap scoring forward per drawn batch, backward passes only on the
   biggest losers, queued into full batches;
4. the LR follows the budget (cosine with warm-up) through a torch scheduler.

Run: python examples/plain_loop_levers.py [BUDGET]      (default 15s; also "200steps")
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from hasten import Budget, budget_lr
from hasten.data import CompetenceBatchSampler
from hasten.data.vision import load_digits
from hasten.models.vision import MLP
from hasten.select.curriculum import CompetenceSampler
from hasten.select.scorers import ScoringSpec, score
from hasten.select.selectors import ccs
from hasten.steps.selective_backprop import BackpropQueue, LossHistory, select_biggest_losers

data = load_digits()
budget = Budget(sys.argv[1] if len(sys.argv) > 1 else "15s")


def make_model() -> torch.nn.Module:
    return MLP(data.input_shape, data.num_classes, hidden=(128,))


# 1. pruning (its time is spent before the budget starts, and reported apart)
start = time.perf_counter()
spec = ScoringSpec(make_model=make_model, epochs=1, lr=3e-3, batch_size=64, device="cpu")
el2n = score("el2n", data.train, spec)
kept = ccs(el2n, keep=0.7, seed=0)
subset = Subset(data.train, kept.tolist())
scoring_seconds = time.perf_counter() - start

# 2. curriculum over the kept examples, easiest first
curriculum = CompetenceSampler(el2n.values[kept], p=2.0, T_fraction=0.5, seed=0)
loader = DataLoader(subset, batch_sampler=CompetenceBatchSampler(curriculum, 128, budget))

torch.manual_seed(0)
model = make_model()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
sched = budget_lr(opt, budget, "cosine", warmup=0.05)  # 4. the LR follows the budget

# 3. selective backprop: keep each example with probability percentile ** 3
history, queue = LossHistory(1024), BackpropQueue(64)
budget.start()
for x, y in loader:  # ends when the budget is spent
    model.eval()
    with torch.no_grad():
        losses = F.cross_entropy(model(x), y, reduction="none")
    model.train()
    budget.work.examples_forwarded += len(y)
    keep = select_biggest_losers(losses, history, beta=3.0)
    queue.push((x[keep], y[keep]))
    while queue.ready() and not budget.exhausted():
        xb, yb = queue.pop()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        budget.work.steps += 1
        budget.work.examples_backpropagated += len(yb)
        sched.step()
budget.stop()

with torch.no_grad():
    x_test, y_test = data.test.tensors
    accuracy = 100.0 * (model(x_test).argmax(1) == y_test).float().mean().item()
print(json.dumps({
    "steps": budget.work.steps, "train_seconds": budget.ledger.current("train"),
    "scoring_seconds": round(scoring_seconds, 3), "kept": len(kept),
    "examples_scored": budget.work.examples_forwarded,
    "examples_backpropagated": budget.work.examples_backpropagated,
    "last_lr": sched.get_last_lr()[0], "accuracy": round(accuracy, 2)}))
