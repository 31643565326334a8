"""How levers combine: one list, one order, checked before any work.

    recipe = apply_levers(recipe, ["curriculum", "infobatch:prune=0.3", "sb-topk"])

The rules (docs/your-loop.md states them for users):
1. Config levers (bf16, compile, channels-last, micro-batch, adamw, schedule) may stand
   anywhere; they set `TrainConfig` fields, and two that set the same field are refused.
2. Data levers follow the order of their roles: `pool` (static pruning changes the training
   set once), `order` (a curriculum draws from the admitted pool), `prune` (InfoBatch and its
   controls prune epochs; after a curriculum they take over at its length T), `select`
   (selective backprop chooses among the drawn rows; kept rows keep their pruning weights).
   A list in another order, or two levers of one data role, is refused with the rule.
3. Each lever checks what it needs from the task and refuses in one line what is missing.
4. Then, in list order: every lever's `configure`, every lever's `setup` (one-off work,
   charged to the run), the samplers in role order, the hooks. Nothing is a silent no-op: a
   lever that cannot act raises here.

Each lever's hooks are timed (`Timed`), so a lever reports its own seconds per step beside
its one-off costs (`lever_costs`). Where it is shown: docs/your-loop.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.train_config import TrainConfig
from hasten.core.train_state import Hook, TrainState
from hasten.levers.base import ROLES, Lever, parse_levers


def check_combination(levers: Sequence[Lever]) -> None:
    """Refuse a list that breaks the order rules (see the module docstring)."""
    names = [lever.name for lever in levers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"lever {twice[0]!r} is listed twice")
    data = [lever for lever in levers if lever.role != "config"]
    for before, after in zip(data, data[1:], strict=False):
        a, b = ROLES.index(before.role), ROLES.index(after.role)
        if a == b:
            raise ConfigError(f"levers {before.name!r} and {after.name!r} both {_doing(a)}: "
                              "keep one")
        if a > b:
            raise ConfigError(f"lever {after.name!r} must come before {before.name!r}: data "
                              "levers go in the order static pruning, curriculum, dynamic "
                              "pruning, selective backprop")


def _doing(role_index: int) -> str:
    return {"pool": "change the training set", "order": "order the pool",
            "prune": "prune the epochs", "select": "choose the rows to backpropagate"
            }[ROLES[role_index]]


def configure(levers: Sequence[Lever], config: TrainConfig) -> None:
    """Every lever's `configure`, refusing two that set one field."""
    owner: dict[str, str] = {}
    for lever in levers:
        for key in lever.configure(config):
            if key in owner:
                raise ConfigError(f"levers {owner[key]!r} and {lever.name!r} both set {key}")
            owner[key] = lever.name


def apply_levers(recipe: Recipe, levers: str | Sequence[str | Lever]) -> Recipe:
    """`recipe` with `levers` applied (spec strings or Lever objects), checked first."""
    chosen = parse_levers(levers)
    check_combination(chosen)
    for lever in chosen:
        reason = lever.refusal(recipe)
        if reason is not None:
            raise ConfigError(reason)
    configure(chosen, recipe.config)
    for lever in chosen:
        lever.setup(recipe)
    sampler = recipe.sampler
    for lever in chosen:
        if lever.role != "config":
            sampler = lever.sampler(sampler, recipe)
    recipe.sampler = sampler
    for lever in chosen:
        recipe.hooks.extend(Timed(h, lever) for h in lever.hooks())
    recipe.levers.extend(chosen)
    recipe.notes["levers"] = [lever.spec() for lever in recipe.levers]
    return recipe


def lever_costs(recipe: Recipe, steps: int) -> dict[str, dict[str, float]]:
    """Each applied lever's one-off costs and its hooks' seconds per optimizer step."""
    out = {}
    for lever in recipe.levers:
        per_step = lever.costs.get("hook_seconds", 0.0) / max(1, steps)
        out[lever.spec()] = {"setup_seconds": lever.costs["seconds"],
                             "setup_flops": lever.costs["flops"],
                             "seconds_per_step": per_step}
    return out


class Timed(Hook):
    """A lever's hook, its time on every event added to the lever's `costs["hook_seconds"]`.
    Everything else passes through (state, attributes)."""

    def __init__(self, hook: Hook, lever: Lever):
        self.hook, self.lever = hook, lever
        lever.costs.setdefault("hook_seconds", 0.0)

    def _timed(self, name: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return getattr(self.hook, name)(*args)
        finally:
            self.lever.costs["hook_seconds"] += time.perf_counter() - started

    def on_start(self, state: TrainState) -> None:
        self._timed("on_start", state)

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        return self._timed("on_batch", state, batch)

    def on_loss(self, state: TrainState, batch: Any, losses: torch.Tensor) -> torch.Tensor:
        return self._timed("on_loss", state, batch, losses)

    def on_step_end(self, state: TrainState) -> None:
        self._timed("on_step_end", state)

    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None:
        self._timed("on_eval", state, metrics)

    def state_dict(self) -> dict[str, Any]:
        return self.hook.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hook.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["hook"], name)
