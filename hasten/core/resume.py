"""A training run's checkpoints: what goes into one, resuming from one, rolling back to one.

A checkpoint holds everything a run needs to continue as if it never stopped: weights,
optimizer moments, budget clock and work counters, sampler position, hook state, every
rank's RNG states, the curve so far, the evaluation plan and the rollback state. Resuming
picks the newest checkpoint that verifies (`hasten.core.checkpoint.find_checkpoint`), prints
`resumed from step N`, and refuses a changed budget unless `allow_budget_change` is set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.checkpoint import (
    checkpoint_steps,
    clean_partial,
    find_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    optimizer_state,
    rng_state,
    save_checkpoint,
    set_aside,
    set_rng_state,
)
from hasten.core.errors import CheckpointError, ConfigError
from hasten.core.eval_plan import EvalPlan
from hasten.core.sampling import Sampler
from hasten.core.train_state import Hook, TrainState

CHECKPOINTS = "checkpoints"


def save_run(state: TrainState, sampler: Sampler, hooks: Sequence[Hook], plan: EvalPlan,
             out: Path, wall_started: float) -> None:
    """Write a checkpoint of the whole run at `state.step` (every rank takes part; the main
    rank writes)."""
    with state.budget.ledger.phase("checkpoint"):
        # each rank's own RNG, sampler and hook state (a selection queue differs per rank)
        mine = {"rng": rng_state(), "sampler": sampler.state_dict(),
                "hooks": [h.state_dict() for h in hooks]}
        ranks = distributed.all_gather_object(state.dist, mine, doing="a checkpoint")
        if state.dist.is_main:
            payload = {
                "optimizer": optimizer_state(state.optimizer),
                "budget": state.budget.state_dict(),
                "sampler": mine["sampler"],
                "curve": state.curve,
                "metrics": state.metrics,
                "flops": [state.flops_forward, state.flops_train, state.flops_unit],
                "hooks": mine["hooks"],
                "rng": [r["rng"] for r in ranks] if state.dist.enabled else mine["rng"],
                "config": asdict(state.config),
                "guard": {"lr_scale": state.lr_scale, "skipped_steps": state.skipped_steps,
                          "rollbacks": state.rollbacks},
                "eval_plan": plan.state_dict(),
                "wall": state.wall_before + time.perf_counter() - wall_started,
            }
            if state.dist.enabled:
                payload["sampler_by_rank"] = [r["sampler"] for r in ranks]
                payload["hooks_by_rank"] = [r["hooks"] for r in ranks]
            save_checkpoint(Path(out) / CHECKPOINTS, state.step, state.raw_model, payload,
                            keep=state.config.keep_checkpoints)
        distributed.barrier(state.dist, doing="a checkpoint")


def _agree(state: TrainState, step: int | None, folder: Path) -> None:
    """Every rank must have chosen the same checkpoint (they read one shared folder)."""
    if not state.dist.enabled:
        return
    t = torch.tensor([float(-1 if step is None else step)] * 2, dtype=torch.float64,
                     device=state.dist.device)
    t[1] = -t[1]
    distributed.all_reduce(state.dist, t, "max", doing="a resume")
    if float(t[0]) != -float(t[1]):
        raise CheckpointError(f"the ranks found different checkpoints in {folder}; is the "
                              "folder shared by every rank?")


def _check_budget(state: TrainState, saved_spec: str, out: Path) -> str | None:
    """None when the budget is unchanged; the notice line when a change is allowed; a
    ConfigError otherwise."""
    old, new = Budget(saved_spec), state.budget
    if (old.unit, old.amount) == (new.unit, new.amount):
        return None
    if not state.config.allow_budget_change:
        raise ConfigError(f"cannot resume {out} with budget {new.spec}: it was started with "
                          f"budget {old.spec} (set allow_budget_change to change it)")
    return f"budget changed from {old.spec} to {new.spec} on resume"


def open_run(state: TrainState, sampler: Sampler, hooks: Sequence[Hook], plan: EvalPlan,
             out: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Prepare the run folder (the main rank clears what a killed save left) and, when
    `config.resume`, load the newest valid checkpoint into the run. Returns the lines to
    show the user and a budget change to record (None if none)."""
    folder = out / CHECKPOINTS
    if state.dist.is_main:
        clean_partial(folder)
    if not state.config.resume:
        earlier = checkpoint_steps(folder)
        if earlier:  # a later resume would pick them up as this run's
            raise ConfigError(f"{folder} holds checkpoints of an earlier run (newest "
                              f"step-{earlier[0][0]}); resume it or use another output folder")
        return [], None
    found = find_checkpoint(folder)
    _agree(state, found.step, folder)
    if found.path is None:  # one line, naming a damaged pointer if there is one
        return ["; ".join([*found.warnings, f"no checkpoint in {folder} yet; starting fresh"])
                ], None
    assert found.body is not None
    with _unusable(found.path):
        change = _check_budget(state, found.body["state"]["budget"]["spec"], out)
    distributed.barrier(state.dist, doing="a resume")
    if state.dist.is_main:
        for path in found.damaged:
            set_aside(path)
    body = load_checkpoint(found.path, state.raw_model)
    with _unusable(found.path):
        _restore(state, sampler, hooks, plan, body["state"], str(found.path))
    state.step = state.resumed_from = body["step"]
    lines = [*found.warnings, *([change] if change else []), f"resumed from step {state.step}"]
    budget_change = {"old": found.body["state"]["budget"]["spec"],
                     "new": state.budget.spec} if change else None
    return lines, budget_change


@contextmanager
def _unusable(path: Path) -> Iterator[None]:
    """A checkpoint that verifies but holds values this run cannot take (wrong types, missing
    parts, another optimizer's moments) becomes one CheckpointError line."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(f"checkpoint {path} holds a state this run cannot use "
                              f"({type(err).__name__}: {reason})") from None


def _restore(state: TrainState, sampler: Sampler, hooks: Sequence[Hook], plan: EvalPlan,
             saved: dict[str, Any], where: str) -> None:
    load_optimizer_state(state.optimizer, saved["optimizer"])
    state.budget.load_state_dict(saved["budget"])
    if not isinstance(saved["curve"], list) or not isinstance(saved["metrics"], dict):
        raise TypeError("the curve or the metrics are not a list and a table")
    state.curve = saved["curve"]
    state.metrics = {k: float(v) for k, v in saved["metrics"].items()}
    flops = saved["flops"]  # [forward, train] before the unit was saved: per example
    state.flops_forward, state.flops_train = float(flops[0]), float(flops[1])
    state.flops_unit = str(flops[2]) if len(flops) > 2 else "example"
    _restore_ranked(state, sampler, hooks, saved, where)
    guard = saved.get("guard", {})
    state.lr_scale = float(guard.get("lr_scale", 1.0))
    state.skipped_steps = int(guard.get("skipped_steps", 0))
    state.rollbacks = int(guard.get("rollbacks", 0))
    if "eval_plan" in saved:
        plan.load_state_dict(saved["eval_plan"])
    state.wall_before = float(saved.get("wall", 0.0))


def _restore_ranked(state: TrainState, sampler: Sampler, hooks: Sequence[Hook],
                    saved: dict[str, Any], where: str) -> None:
    """This rank's RNG, sampler and hook state. Older checkpoints hold rank 0's sampler and
    hooks only; a job resumed on more ranks than it was saved from gives the new ranks rank
    0's (it continues, but not bit-exactly)."""
    def mine(key: str, fallback: Any) -> Any:
        values = saved.get(key)
        if not isinstance(values, list):
            return fallback
        return values[state.dist.rank] if state.dist.rank < len(values) else values[0]

    set_rng_state(mine("rng", saved["rng"]))
    sampler.load_state_dict(mine("sampler_by_rank", saved["sampler"]))
    _restore_hooks(hooks, mine("hooks_by_rank", saved.get("hooks", [])), where)


def _restore_hooks(hooks: Sequence[Hook], states: list[Any], where: str) -> None:
    if len(states) != len(hooks):
        raise CheckpointError(f"checkpoint {where} was saved with {len(states)} hooks, "
                              f"this run has {len(hooks)}")
    for h, s in zip(hooks, states, strict=True):
        h.load_state_dict(s)


def rollback(state: TrainState, sampler: Sampler, hooks: Sequence[Hook],
             out: Path | None) -> int | None:
    """Reload weights, optimizer, sampler, hooks and RNG from the newest valid checkpoint
    (the budget clock, work counters and curve go on) and halve the learning rate. Returns
    the checkpoint's step, or None when there is none to go back to."""
    if out is None:
        return None
    found = find_checkpoint(out / CHECKPOINTS)
    _agree(state, found.step, out / CHECKPOINTS)
    if found.path is None:
        return None
    body = load_checkpoint(found.path, state.raw_model)
    saved = body["state"]
    load_optimizer_state(state.optimizer, saved["optimizer"])
    _restore_ranked(state, sampler, hooks, saved, str(found.path))
    state.lr_scale *= 0.5
    state.rollbacks += 1
    return found.step
