"""hasten: reach a target quality with less compute.

The stable entry points, whatever moves inside the package:

    from hasten import Budget, Recipe, TrainConfig, budget_lr, train, tune

They are loaded on first use, so `import hasten` itself imports nothing heavy (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hasten import _moved

_moved.install()  # old import paths of moved modules keep working, with a warning

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Budget": "hasten.core.budget",
    "TrainConfig": "hasten.core.trainer",
    "train": "hasten.levers.run",  # the trainer, given a Recipe (or its parts) and levers
    "budget_lr": "hasten.core.schedules",
    "Recipe": "hasten.core.recipe",
    "tune": "hasten.tuning.tuner",
}

__all__ = ["Budget", "Recipe", "TrainConfig", "__version__", "budget_lr", "train", "tune"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` loads them
    from hasten.core.budget import Budget
    from hasten.core.recipe import Recipe
    from hasten.core.schedules import budget_lr
    from hasten.core.trainer import TrainConfig
    from hasten.levers.run import train
    from hasten.tuning.tuner import tune


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hasten' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
