"""A linear classifier on 320 generated points as a lever-stack task (`tiny-stack`) and its
validation twin (`tiny-stack-val`), so `hasten bench stack` runs end to end in seconds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench import harness, stack
from hasten.bench.harness import Recipe
from hasten.core.trainer import TrainConfig

TASK, TWIN = "tiny-stack", "tiny-stack-val"
# set "levers_data" to True to declare a difficulty and a proxy model (curriculum, proxy)
EXTRAS: dict[str, bool] = {}


def _task(validation: bool):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    rows = slice(0, 256) if not validation else slice(64, 320)
    held = slice(256, 320) if not validation else slice(0, 64)
    train, test = TensorDataset(x[rows], y[rows]), (x[held], y[held])

    def task(seed: int, quick: bool) -> Recipe:
        torch.manual_seed(seed)
        cfg = TrainConfig(budget="640ex", lr=0.05, micro_batch=32, eval_every=0.25,
                          schedule="one-cycle")

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"accuracy": 100.0 * (m(test[0]).argmax(1) == test[1]).float().mean().item()}

        extras = EXTRAS.get("levers_data", False)
        return Recipe(nn.Linear(6, 3), train,
                      lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                      evaluate, cfg, notes={"model": "tiny-linear", "quick": quick,
                                            "val_task": TWIN},
                      difficulty=train.tensors[0].norm(dim=1).numpy() if extras else None,
                      proxy_model=(lambda: nn.Linear(6, 3)) if extras else None)
    return task


def register(monkeypatch) -> None:
    """Register both tasks and let the stack's methods apply to them (`unregister` after)."""
    monkeypatch.setitem(harness.TASKS, TASK, _task(False))
    monkeypatch.setitem(harness.TASKS, TWIN, _task(True))
    monkeypatch.setattr(stack, "_chosen", {})
    stack.STACK_TASKS.update((TASK, TWIN))


def unregister() -> None:
    stack.STACK_TASKS.difference_update((TASK, TWIN))
