"""Small task files for the command-line tests: a user's own task, as `hasten train --task
FILE.py:FUNCTION` loads it. `slow` runs sleep a little per step (for signal tests) while
the environment variable HASTEN_TEST_SLOW is set."""

from __future__ import annotations

from pathlib import Path

TASK = '''
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe
from hasten.core.trainer import TrainConfig

g = torch.Generator().manual_seed(0)
X = torch.randn(256, 6, generator=g)
DATA = TensorDataset(X, (X[:, 0] > 0).long())


def evaluate(model):
    acc = (model(X).argmax(1) == DATA.tensors[1]).float().mean().item()
    return {"accuracy": 100.0 * acc}


def loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def make_recipe(seed, quick):
    torch.manual_seed(seed)
    return Recipe(nn.Linear(6, 2), DATA, loss, evaluate,
                  TrainConfig(budget="8steps", lr=0.05, micro_batch=32, eval_every=0.5))


def slow_loss(model, batch):
    if os.environ.get("HASTEN_TEST_SLOW") and torch.is_grad_enabled():
        time.sleep(0.05)
    return loss(model, batch)


def slow(seed, quick):
    """Seed 0 is quick; later seeds take a while when HASTEN_TEST_SLOW is set."""
    recipe = make_recipe(seed, quick)
    if seed > 0:
        recipe.loss_fn = slow_loss
        recipe.config.budget = "400steps"
    return recipe


def not_a_recipe(seed, quick):
    return {"model": None}


def wrong_arguments(size):
    return None


def broken(seed, quick):
    raise RuntimeError("no data here")
'''


def write_task(folder: Path, name: str = "tiny_task.py") -> Path:
    path = Path(folder) / name
    path.write_text(TASK)
    return path
