"""A task of your own for hasten's trainer and benchmark harness: a small MLP on a synthetic
tabular classification problem (scikit-learn's `make_classification`, generated offline).

`make_recipe(seed, quick)` returns a `Recipe`: model, training data, per-example loss,
evaluation and training settings. Importing this file does nothing else, so tools can load
`make_recipe` from it by path. To train it yourself:

    from hasten import train
    r = make_recipe(seed=0, quick=True)
    result = train(r.model, r.train_data, r.loss_fn, r.config, evaluate=r.evaluate)

Run: python examples/own_task.py [--full]   (trains the quick recipe, or the full one)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten import Recipe, TrainConfig

FEATURES, CLASSES = 20, 3


def make_data(seed: int, rows: int) -> tuple[TensorDataset, TensorDataset]:
    """(train, test) splits of a seeded synthetic problem, features standardised on train."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=10,
                               n_redundant=4, n_classes=CLASSES, class_sep=1.0,
                               flip_y=0.02, random_state=seed)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    cut = int(0.8 * rows)
    mean, std = x[:cut].mean(0), x[:cut].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


def make_recipe(seed: int, quick: bool) -> Recipe:
    """The task for `seed`; `quick` is a few-second version for smoke tests."""
    train_set, test_set = make_data(seed, 4000 if quick else 40000)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, CLASSES))

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, reduction="none")  # one loss per example

    def evaluate(model: nn.Module) -> dict[str, float]:
        x, y = test_set.tensors
        device = next(model.parameters()).device
        pred = model(x.to(device)).argmax(1).cpu()
        return {"accuracy": 100.0 * (pred == y).float().mean().item()}

    config = TrainConfig(budget="150steps" if quick else "30s", lr=3e-3, schedule="cosine",
                         schedule_params={"warmup": 0.05}, micro_batch=128, eval_every=0.25,
                         weight_decay=0.01, seed=seed, quiet=True, tensorboard=False)
    return Recipe(model=model, train_data=train_set, loss_fn=loss_fn, evaluate=evaluate,
                  config=config, notes={"task": "synthetic tabular, 3 classes"})


if __name__ == "__main__":
    import json
    import sys

    from hasten import train

    r = make_recipe(seed=0, quick="--full" not in sys.argv)
    result = train(r.model, r.train_data, r.loss_fn, r.config, evaluate=r.evaluate)
    print(json.dumps({"accuracy": round(result.final or 0.0, 2), "steps": result.steps,
                      "train_seconds": round(result.train_seconds, 3)}))
