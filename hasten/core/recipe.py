"""A task's recipe, and the registry of tasks by name.

A *task* is a function `(seed, quick) -> Recipe`: everything one training run needs (model,
data, per-example loss, evaluation, `TrainConfig`), built afresh for a seed. `hasten train
--task`, the benchmark suites and `hasten tune` all start from one; a task of your own is the
same function in your own file (`hasten.bench.own` loads it by `FILE.py:FUNCTION`).

What a recipe may also declare, for the levers that need it (`hasten.levers`):
`difficulty` (one value per training example, higher = harder: the curriculum's order) and
`proxy_model` (a function returning a fresh small model with the same inputs and outputs: the
selective-backprop proxy). A lever whose need is missing refuses the recipe in one line.

Where it is shown: docs/extending.md (a building block; no measured result).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from hasten.core.errors import ConfigError
from hasten.core.sampling import CollateFn, Sampler
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import EvalFn, Hook, LossFn


@dataclass
class Recipe:
    """Everything one training run needs. `overhead_seconds` is time a method spent before
    training (scoring, a proxy model, distillation): it is added to the run's curve so time
    to target counts it; `overhead_flops`, that work's FLOPs, is added to the FLOPs counter
    (the example counters stay the trained model's own). `levers` are the levers
    applied to it, in order (`hasten.levers`: Lever objects; `notes["levers"]` holds their
    spec strings for the record)."""

    model: nn.Module
    train_data: Dataset
    loss_fn: LossFn
    evaluate: EvalFn | None
    config: TrainConfig
    hooks: list[Hook] = field(default_factory=list)
    sampler: Sampler | None = None
    tokens_fn: Callable[[Any], int] | None = None
    collate_fn: CollateFn | None = None  # list of dataset items -> batch (e.g. padding)
    options: Any = None  # the suite's resolved options (a dataclass), for methods to read
    overhead_seconds: float = 0.0
    overhead_flops: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    difficulty: Any = None  # one value per training example (higher = harder), or None
    proxy_model: Callable[[], nn.Module] | None = None  # a fresh small model, or None
    levers: list[Any] = field(default_factory=list)


TaskFn = Callable[..., Recipe]  # (seed, quick) -> Recipe, or (seed, quick, *, options)
TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Register a task function under `name` (a decorator)."""
    def add(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn
    return add


def lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    """`table[name]`, or a ConfigError listing the known names of this kind."""
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]
