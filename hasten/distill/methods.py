"""`distill`: one entry point for DC, DSA, DM and MTT, with budgets, checkpoints and resume.

The synthetic set is ipc images per class with fixed balanced labels, initialised from
random real images of each class ("real", the default of DSA, DM and MTT) or from Gaussian
noise ("noise", DC's default; the data are standardised, so N(0, 1) is on their scale).
The loop runs method iterations until the `Budget` is spent (iterations: "500steps", or
training wall clock: "20m"; setup such as MTT's experts is timed apart). A checkpoint
(learnable tensors, optimizer moments, the generator, the budget's clock and counters) is
written every `checkpoint_every` iterations and at the end; `resume=True` continues from the
latest one and ends with the same images as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hasten.budget import Budget
from hasten.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    optimizer_state,
    save_checkpoint,
)
from hasten.data.vision import VisionData
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import Context, Method, ModelFn, default_model_fn
from hasten.distill.dc import DC
from hasten.distill.dm import DM
from hasten.distill.formation import check_factor, encode
from hasten.distill.idm import IDM
from hasten.distill.mtt import MTT
from hasten.distill.synthetic import SyntheticSet
from hasten.errors import CheckpointError, ConfigError, DataError
from hasten.runlog import RunLog

METHODS: dict[str, type[Method]] = {"dm": DM, "idm": IDM, "dc": DC, "dsa": DC, "mtt": MTT}
INITS = ("real", "noise")
CONFIG_KEYS = ("method", "dataset", "ipc", "init", "dsa", "seed", "num_classes",
               "input_shape", "width", "batch_real", "factor", "layout")
# what checkpoints from before a key existed meant
CONFIG_DEFAULTS: dict[str, Any] = {"factor": 1, "layout": {}}


class _Holder(nn.Module):
    """The learnable tensors as a module, so the shared checkpoint code can save them."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for k, v in tensors.items():
            self.register_parameter(k, nn.Parameter(v, requires_grad=v.requires_grad))


def class_tensors(data: VisionData, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """The train images of each class (in dataset order), as one tensor per class on `device`.
    The tensors are consecutive slices of one class-major copy, so `real_set` joins them
    without another copy."""
    x, y = data.train.tensors
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y, minlength=data.num_classes).tolist()
    return list(x[order].to(device).split(counts))


def check_ipc(data: VisionData, ipc: int) -> list[int]:
    """Per-class train counts; ConfigError unless 1 <= ipc <= the smallest class."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ConfigError(f"ipc (images per class) must be an integer >= 1, got {ipc!r}")
    y = data.train.tensors[1]
    counts = torch.bincount(y, minlength=data.num_classes).tolist()
    smallest = min(counts)
    if ipc > smallest:
        c = counts.index(smallest)
        raise ConfigError(f"ipc {ipc} is larger than class {c} of {data.name}, which has "
                          f"only {smallest} training examples")
    return counts


def init_images(class_x: list[torch.Tensor], ipc: int, init: str,
                generator: torch.Generator, factor: int = 1) -> torch.Tensor:
    """ipc images per class, class-major: random distinct real ones, or N(0, 1) noise.

    With multi-formation (`factor` > 1) each stored image tiles factor^2 distinct real images
    of its class, downsampled.
    """
    if init == "real":
        n = ipc * factor * factor
        return torch.cat([encode(xc[torch.randperm(len(xc), generator=generator)[:n]], factor)
                          for xc in class_x]).clone()
    if init == "noise":
        shape = (len(class_x) * ipc, *class_x[0].shape[1:])
        return torch.randn(shape, generator=generator)
    raise ConfigError(f"unknown init {init!r}; known: {', '.join(INITS)}")


def _budget(budget: Budget | str | int) -> Budget:
    if isinstance(budget, Budget):
        b = budget
    elif isinstance(budget, int) and not isinstance(budget, bool):
        b = Budget(("steps", float(budget)))
    else:
        b = Budget(str(budget))
    if b.unit not in ("steps", "seconds", "examples"):
        raise ConfigError(f"distillation budgets are iterations (e.g. 500steps), wall clock "
                          f"(e.g. 20m) or examples; got {b.spec}")
    return b


def distill(method: str, data: VisionData, ipc: int, budget: Budget | str | int, *,
            init: str = "real", dsa: bool = True, seed: int = 0,
            model_fn: ModelFn | None = None, width: int = 128, batch_real: int = 256,
            device: str | torch.device = "cpu", checkpoint_dir: str | Path | None = None,
            checkpoint_every: int = 100, resume: bool = False,
            snapshot_every: int = 0, snapshot_dir: str | Path | None = None,
            factor: int = 1, progress: bool | Callable[[str], None] = True,
            **options: Any) -> SyntheticSet:
    """Distil `data` into ipc images per class with `method` ("dm", "idm", "dc", "dsa", "mtt").

    `budget` counts iterations ("500steps" or an int), seconds of the loop ("20m") or
    examples forwarded. "dsa" is DC with DSA on. `dsa=True` augments every match with one
    shared DSA draw (strategy without flip for MNIST-like data). `model_fn` builds the
    (random) networks; the default is ConvNet-3 of `width` with instance norm. `options` are
    the method's hyperparameters (e.g. lr_img; DC: outer_loop, inner_loop, lr_net; MTT:
    syn_steps, expert_epochs, max_start_epoch, lr_lr, lr_teacher, num_experts, expert_dir).
    `snapshot_every` > 0 also writes the set every that many iterations to `snapshot_dir`
    (`it000500.safetensors`, ...), for accuracy-vs-iterations curves from one run.
    `factor` > 1 stores each image as factor^2 smaller ones (IDC's multi-formation, see
    `hasten.distill.formation`): storage stays ipc images per class, training sees
    ipc * factor^2. `progress`: True shows a rich bar on a terminal; a callable gets a line
    every 10%.
    """
    key = str(method).lower()
    if key not in METHODS:
        raise ConfigError(f"unknown distillation method {method!r}; known: "
                          f"{', '.join(METHODS)}")
    if key == "dsa":
        dsa = True
    cls = METHODS[key]
    bad = sorted(set(options) - set(cls.defaults))
    if bad:
        raise ConfigError(f"method {key!r} has no option(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(cls.defaults)) or 'none'}")
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    counts = check_ipc(data, ipc)
    factor = check_factor(factor, tuple(data.input_shape))
    if factor > 1 and init == "real":
        need = ipc * factor * factor
        if need > min(counts):
            raise ConfigError(f"ipc {ipc} at factor {factor} starts from {need} real images "
                              f"per class; {data.name}'s smallest class has {min(counts)}")
    if batch_real < 1:
        raise ConfigError(f"batch_real must be >= 1, got {batch_real}")
    shape = tuple(data.input_shape)
    if dsa and len(shape) != 3:
        raise ConfigError(f"DSA augments images (C, H, W); {data.name} has examples of shape "
                          f"{shape}: pass dsa=False")
    budget = _budget(budget)
    device = torch.device(device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt is None:
        raise ConfigError("resume needs a checkpoint_dir")
    if snapshot_every < 0 or (snapshot_every > 0 and snapshot_dir is None):
        raise ConfigError("snapshot_every needs to be >= 0, and a snapshot_dir when > 0")

    with budget.ledger.phase("setup"):
        g = torch.Generator().manual_seed(int(seed))
        class_x = class_tensors(data, device)
        images = init_images(class_x, ipc, init, g, factor).to(device).requires_grad_(True)
        labels = torch.arange(data.num_classes).repeat_interleave(ipc).to(device)
        ctx = Context(
            class_x=class_x, syn=images, labels=labels, ipc=ipc,
            num_classes=data.num_classes,
            model_fn=model_fn or default_model_fn(shape, data.num_classes, width),
            generator=g, device=device,
            dsa=DSA(dsa_strategy(data.name)) if dsa else None,
            batch_real=batch_real, options={**cls.defaults, **options}, factor=factor)
        if key == "mtt" and ctx.options["expert_dir"] is None and ckpt is not None:
            ctx.options["expert_dir"] = str(ckpt / "experts")
        algo = cls(ctx)
        config = {"method": "dc" if key == "dsa" else key, "dataset": data.name, "ipc": ipc,
                  "init": init, "dsa": bool(dsa), "seed": int(seed),
                  "num_classes": data.num_classes, "input_shape": list(shape),
                  "width": width if model_fn is None else None, "batch_real": batch_real,
                  "factor": factor,
                  "layout": {k: ctx.options[k] for k in cls.layout_options}}
        setup_info = algo.setup()
        iteration, losses = 0, []
        if resume and ckpt is not None and latest_checkpoint(ckpt) is not None:
            iteration, losses = _restore(ckpt, algo, ctx, budget, config)

    say = progress if callable(progress) else None
    log = RunLog(None, enabled=progress is True, quiet=progress is not True,
                 description=f"distill {config['method']}")
    next_line = 0.1
    started = time.perf_counter()
    try:
        while not budget.exhausted():
            with budget.ledger.phase("train"):
                loss, seen = algo.step()
            if not torch.isfinite(ctx.syn.detach()).all():
                raise DataError(f"{key}: the synthetic images diverged to non-finite values "
                                f"at iteration {iteration + 1}; lower lr_img")
            iteration += 1
            losses.append(loss)
            budget.work.steps += 1
            budget.work.examples_forwarded += seen
            if log.shows_progress:
                log.progress(budget.progress(), f"it {iteration}  loss {loss:.4g}")
            if say is not None and (budget.progress() >= next_line or budget.exhausted()):
                next_line = budget.progress() + 0.1
                say(f"{100 * budget.progress():5.1f}%  iteration {iteration}  loss {loss:.4g}  "
                    f"{budget.ledger.current('train'):.0f}s")
            if snapshot_every > 0 and iteration % snapshot_every == 0:
                with budget.ledger.phase("checkpoint"):
                    meta = _meta(config, iteration, budget, started, losses, counts, ctx,
                                 setup_info, algo)
                    SyntheticSet(ctx.syn.detach(), ctx.labels, meta).save(
                        Path(snapshot_dir) / f"it{iteration:06d}.safetensors")
            if ckpt is not None and checkpoint_every > 0 and iteration % checkpoint_every == 0:
                with budget.ledger.phase("checkpoint"):
                    _save(ckpt, iteration, algo, ctx, budget, config, losses)
        if ckpt is not None:
            with budget.ledger.phase("checkpoint"):
                _save(ckpt, iteration, algo, ctx, budget, config, losses)
    finally:
        log.close()

    meta = _meta(config, iteration, budget, started, losses, counts, ctx, setup_info, algo)
    return SyntheticSet(ctx.syn.detach(), ctx.labels, meta)


def _meta(config: dict, iteration: int, budget: Budget, started: float, losses: list[float],
          counts: list[int], ctx: Context, setup_info: dict, algo: Method) -> dict:
    """The provenance a SyntheticSet carries: settings, iterations, times, losses."""
    return {**config, "iterations": iteration, "budget": budget.spec,
            "train_seconds": budget.ledger.current("train"),
            "setup_seconds": budget.ledger.current("setup"),
            "wall_seconds": time.perf_counter() - started,
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            "class_counts": counts, "dsa_strategy": ctx.dsa.strategy if ctx.dsa else None,
            "options": _options(ctx),
            **setup_info, **algo.info()}


def _tensors(algo: Method, ctx: Context) -> dict[str, torch.Tensor]:
    return {"images": ctx.syn, **algo.learnables()}


def _save(folder: Path, iteration: int, algo: Method, ctx: Context, budget: Budget,
          config: dict, losses: list[float]) -> None:
    holder = _Holder({k: v.detach() for k, v in _tensors(algo, ctx).items()})
    state = {"config": config, "iteration": iteration, "losses": losses,
             "generator": ctx.generator.get_state(), "budget": budget.state_dict(),
             "optimizers": {k: optimizer_state(o) for k, o in algo.optimizers().items()},
             "options": _options(ctx), "extra": algo.checkpoint_extra()}
    save_checkpoint(folder, iteration, holder, state)


def _options(ctx: Context) -> dict:
    """The method's options as run (JSON-able: MTT's loaded trajectories left out)."""
    return {k: v for k, v in ctx.options.items() if k != "trajectories"}


def _restore(folder: Path, algo: Method, ctx: Context, budget: Budget,
             config: dict) -> tuple[int, list[float]]:
    """Continue the run saved in `folder`. Its tensors, optimizer moments, RNG and clock come
    back; its settings must match `config` (`CONFIG_KEYS`). The method's options (lr_img,
    ...) are the caller's: a changed option takes effect from here (a step schedule by
    resume), and `config["history"]` records at which iteration it changed."""
    path = latest_checkpoint(folder)
    try:  # check the run's settings first: a clearer message than a layout mismatch
        saved = json.loads((path / "state.json").read_text())["state"].get("config", {})
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        saved = None  # load_checkpoint reports what is wrong with the file
    if saved is not None:
        saved = {**CONFIG_DEFAULTS, **saved}
    diff = [k for k in CONFIG_KEYS if saved is not None and saved.get(k) != config.get(k)]
    if diff:
        k = diff[0]
        raise CheckpointError(f"checkpoint {path} is from another run: {k} was "
                              f"{saved.get(k)!r}, now {config.get(k)!r}")
    holder = _Holder({k: v.detach().clone() for k, v in _tensors(algo, ctx).items()})
    body = load_checkpoint(path, holder)
    state = body["state"]
    with torch.no_grad():
        for name, t in _tensors(algo, ctx).items():
            t.copy_(getattr(holder, name))
    for name, opt in algo.optimizers().items():
        # the moments resume; lr and momentum are this call's
        load_optimizer_state(opt, state["optimizers"][name], keep_settings=True)
    ctx.generator.set_state(state["generator"])
    budget.load_state_dict(state["budget"])
    algo.load_checkpoint_extra(state["extra"])
    iteration = int(state["iteration"])
    history = list(state["config"].get("history", []))
    before, now = state.get("options"), _options(ctx)
    if before is not None and before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        history.append({"iteration": iteration, "was": {k: before.get(k) for k in changed},
                        "now": {k: now.get(k) for k in changed}})
    if history:
        config["history"] = history
    return iteration, [float(v) for v in state["losses"]]
