"""What the tuner runs on a task: short timed trainings (the cost of a step) and pilots (the
validation loss a lever list reaches in a given training time).

A pilot trains on the task's training set less a held-out validation split (`VALIDATION`
rows drawn by a seeded permutation, never the task's test split), for a seconds budget, then
scores the mean per-example loss on the held-out rows with the task's own loss (lower is
better, for every task alike). A step-cost run trains `steps` steps of the whole training set
and reports the training seconds per step and any compile seconds, as the trainer's ledger
books them (set-up and evaluation excluded). Each call builds the recipe afresh, so one lever
list cannot leak into the next. `hasten.tuning.tuner` times the calls with its own clock; tests
swap in a runner of rigged numbers and a fake clock.

Where it is shown: docs/tune.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from hasten.core.budget import seconds_spec
from hasten.core.recipe import Recipe
from hasten.core.sampling import batch_size, gather, to_device
from hasten.core.train_state import precision_context
from hasten.levers import train

VALIDATION = 1000  # held-out training rows a pilot is scored on (at most a fifth of the set)


def _rows(data: Dataset, idx: list[int]) -> Dataset:
    if isinstance(data, TensorDataset):
        index = torch.as_tensor(idx, dtype=torch.long)
        return TensorDataset(*(t[index] for t in data.tensors))
    return Subset(data, idx)


def split(recipe: Recipe, rows: int = VALIDATION, seed: int = 0) -> tuple[Recipe, Dataset]:
    """`recipe` training on all but `rows` held-out training rows (at most a fifth), and
    those rows; a difficulty per example follows its rows."""
    n = len(recipe.train_data)
    held = min(rows, n // 5)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(10_007 + seed)).tolist()
    train_idx, val_idx = sorted(order[held:]), sorted(order[:held])
    recipe.train_data, val = _rows(recipe.train_data, train_idx), _rows(recipe.train_data,
                                                                         val_idx)
    if recipe.difficulty is not None:
        recipe.difficulty = np.asarray(recipe.difficulty)[train_idx]
    return recipe, val


def validation_loss(recipe: Recipe, val: Dataset, batch: int = 256) -> float:
    """The mean per-example loss of the trained model on `val` (eval mode, no grad)."""
    model = recipe.model
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad(), precision_context(recipe.config.precision, device):
        for i in range(0, len(val), batch):
            rows = to_device(gather(val, list(range(i, min(i + batch, len(val)))),
                                    recipe.collate_fn), device)
            total += float(recipe.loss_fn(model, rows).float().sum())
            count += batch_size(rows)
    model.train()
    return total / max(1, count)


class RecipeRunner:
    """Pilots and step-cost runs of the recipes `make_recipe(seed)` builds."""

    def __init__(self, make_recipe: Callable[[int], Recipe], seed: int = 0):
        self.make_recipe, self.seed = make_recipe, seed

    def _fresh(self, seed: int) -> Recipe:
        recipe = self.make_recipe(seed)
        cfg = recipe.config
        cfg.seed, cfg.quiet, cfg.tensorboard, cfg.out_dir = seed, True, False, None
        cfg.eval_every, cfg.resume, cfg.checkpoint_every = 1.0, False, 0
        recipe.evaluate = None
        return recipe

    def step_cost(self, levers: list[str], steps: int) -> dict[str, float]:
        """Training seconds per step (and compile seconds) of `steps` steps with `levers`."""
        recipe = self._fresh(self.seed)
        recipe.config.budget = f"{steps}steps"
        result = train(recipe, levers=levers)
        return {"per_step": result.ledger["train"] / max(1, result.steps),
                "compile": result.ledger.get("compile", 0.0)}

    def pilot(self, levers: list[str], seconds: float, seed: int) -> float:
        """Validation loss after `seconds` of training with `levers` (seed `seed`)."""
        recipe, val = split(self._fresh(seed), seed=self.seed)
        recipe.config.budget = seconds_spec(max(0.1, seconds))
        train(recipe, levers=levers)
        return validation_loss(recipe, val)


def recipe_maker(target: Any, quick: bool = False) -> Callable[[int], Recipe]:
    """`make_recipe(seed)` for a task function `(seed, quick) -> Recipe` or a built Recipe
    (copied afresh for every call, its model untrained)."""
    if isinstance(target, Recipe):
        pristine = copy.deepcopy(target)
        return lambda seed: copy.deepcopy(pristine)
    return lambda seed: target(seed, quick)
