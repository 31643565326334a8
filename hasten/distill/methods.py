"""`distill`: one entry point for DC, DSA, DM and MTT, with budgets, checkpoints and resume.

The papers: DC, gradient matching (Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient
Matching", ICLR 2021); DSA, DC with differentiable Siamese augmentation (Zhao & Bilen, ICML
2021); DM, distribution matching (Zhao & Bilen, WACV 2023); IDM (Zhao et al., CVPR 2023);
MTT, matching training trajectories (Cazenavette et al., CVPR 2022). Each lives in its own
module; this one runs any of them under one `DistillConfig`.

The synthetic set is ipc images per class with fixed balanced labels, initialised from
random real images of each class ("real", the default of DSA, DM and MTT) or from Gaussian
noise ("noise", DC's default; the data are standardised, so N(0, 1) is on their scale).
The loop runs method iterations until the `Budget` is spent (iterations: "500steps", or
training wall clock: "20m"; setup such as MTT's experts is timed apart). A checkpoint
(learnable tensors, optimizer moments, the generator, the budget's clock and counters) is
written every `checkpoint_every` iterations and at the end; `resume=True` continues from the
latest one and ends with the same images as an uninterrupted run. SIGTERM or SIGINT stops the
loop at an iteration boundary, writes a checkpoint (with a checkpoint folder) and raises
`hasten.core.stop.Stopped`, so a cut run never passes for a finished set.

Departures on purpose: budgets replace fixed iteration counts; every run is resumable.
Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data training
time".
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hasten.core import distributed, stop
from hasten.core.budget import Budget
from hasten.core.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    optimizer_state,
    save_checkpoint,
)
from hasten.core.config import option
from hasten.core.errors import CheckpointError, ConfigError, DataError
from hasten.core.guards import SLOW_STEP_SHARE
from hasten.core.runlog import RunLog
from hasten.data.vision import VisionData
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import Context, Method, ModelFn, default_model_fn
from hasten.distill.dc import DC
from hasten.distill.dm import DM
from hasten.distill.formation import check_factor, encode
from hasten.distill.idm import IDM
from hasten.distill.mtt import MTT
from hasten.distill.synthetic import SyntheticSet

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


def distill_budget(budget: Budget | str | int) -> Budget:
    """The budget of a distillation: iterations (steps), seconds or examples; one ConfigError
    line for a unit distillation cannot count (tokens, FLOPs) or a bad string."""
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


@dataclass
class DistillConfig:
    """One distillation run: every setting, each default with its reason."""

    method: str = option("dm", "distribution matching: the cheapest per iteration of the "
                               "four, and strong at ipc 10 and 50")
    ipc: int = option(10, "the papers' middle setting (they report 1, 10 and 50)")
    budget: str = option("500steps", "iterations, so the set does not depend on the "
                                     "machine's speed; wall clock (20m) works too")
    init: str = option("real", "random real images of each class: DSA's, DM's and MTT's "
                               "start (DC's is noise)", choices=INITS)
    dsa: bool | None = option(None, "None: DSA augmentation on for images (all four papers "
                                    "use it there), off for other examples")
    seed: int = option(0, "one fixed draw of the starting images and networks")
    width: int = option(128, "the papers' ConvNet-3 width")
    batch_real: int = option(256, "real images per class and match, as in DM")
    factor: int = option(1, "1: plain images; IDC's multi-formation stores factor x factor "
                            "smaller images in each (2 in the paper)")
    device: str | None = option(None, "None: CUDA when available, else the CPU")
    checkpoint_dir: str | None = option(None, "None: no checkpoints (and no resume)")
    checkpoint_every: int = option(100, "iterations between checkpoints: a few seconds of "
                                        "writing per several minutes of work")
    resume: bool = option(False, "start fresh unless asked")
    snapshot_every: int = option(0, "0: no snapshots; N saves the set every N iterations "
                                    "(accuracy-vs-iterations curves from one run)")
    snapshot_dir: str | None = option(None, "where snapshots go (needed when "
                                            "snapshot_every > 0)")
    options: dict[str, Any] = option({}, "the method's own hyperparameters (lr_img, "
                                         "syn_steps, ...); unset ones keep its defaults",
                                     flag=False)


def distill(method: str, data: VisionData, ipc: int, budget: Budget | str | int, *,
            model_fn: ModelFn | None = None, progress: bool | Callable[[str], None] = True,
            dsa: bool = True, device: str | torch.device = "cpu", **settings: Any
            ) -> SyntheticSet:
    """Distil `data` into ipc images per class with `method` ("dm", "idm", "dc", "dsa", "mtt").

    Keywords are `DistillConfig` fields (init, seed, width, batch_real, factor,
    checkpoint_dir, checkpoint_every, resume, snapshot_every, snapshot_dir); any other
    keyword is one of the method's hyperparameters (e.g. lr_img; DC: outer_loop,
    inner_loop, lr_net; MTT: syn_steps, expert_epochs, max_start_epoch, lr_lr, lr_teacher,
    num_experts, expert_dir). "dsa" is DC with DSA on; `dsa=True` augments every match with
    one shared DSA draw. `model_fn` builds the (random) networks; the default is ConvNet-3
    of `width` with instance norm. `progress`: True shows a rich bar on a terminal; a
    callable gets a line every 10%. See `distill_with` for the same with a `DistillConfig`.
    """
    fields = {f.name for f in dataclasses.fields(DistillConfig)}
    known = {k: v for k, v in settings.items() if k in fields and k != "options"}
    options = {**settings.get("options", {}),
               **{k: v for k, v in settings.items() if k not in fields}}
    spec = budget.spec if isinstance(budget, Budget) else (
        f"{budget}steps" if isinstance(budget, int) and not isinstance(budget, bool)
        else str(budget))
    config = DistillConfig(method=method, ipc=ipc, budget=spec, dsa=dsa, device=str(device),
                           options=options, **known)
    return distill_with(data, config, model_fn=model_fn, progress=progress)


def distill_with(data: VisionData, config: DistillConfig, *, model_fn: ModelFn | None = None,
                 progress: bool | Callable[[str], None] = True) -> SyntheticSet:
    """Run `config` on `data` and return the synthetic set (its `meta` says how it was
    made). User errors raise HastenErrors before any work; a stop signal raises `Stopped`
    after the checkpoint is written."""
    key, cls = _check(data, config)
    budget = distill_budget(config.budget)
    device = distributed.init(config.device).device if config.device in (None, "None") \
        else distributed.resolve_device(config.device)
    ckpt = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    with budget.ledger.phase("setup"):
        run = _setup(key, cls, data, config, budget, device, model_fn, ckpt)
    _loop(run, budget, config, ckpt, progress)
    return SyntheticSet(run.ctx.syn.detach(), run.ctx.labels, _meta(run, budget))


def _check(data: VisionData, c: DistillConfig) -> tuple[str, type[Method]]:
    """The method's key and class; ConfigErrors for settings wrong whatever happens next."""
    key = str(c.method).lower()
    if key not in METHODS:
        raise ConfigError(f"unknown distillation method {c.method!r}; known: "
                          f"{', '.join(METHODS)}")
    cls = METHODS[key]
    bad = sorted(set(c.options) - set(cls.defaults))
    if bad:
        raise ConfigError(f"method {key!r} has no option(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(cls.defaults)) or 'none'}")
    if c.init not in INITS:
        raise ConfigError(f"unknown init {c.init!r}; known: {', '.join(INITS)}")
    counts = check_ipc(data, c.ipc)
    factor = check_factor(c.factor, tuple(data.input_shape))
    if factor > 1 and c.init == "real" and c.ipc * factor * factor > min(counts):
        raise ConfigError(f"ipc {c.ipc} at factor {factor} starts from "
                          f"{c.ipc * factor * factor} real images per class; {data.name}'s "
                          f"smallest class has {min(counts)}")
    if c.batch_real < 1:
        raise ConfigError(f"batch_real must be >= 1, got {c.batch_real}")
    if _uses_dsa(key, c, data) and len(tuple(data.input_shape)) != 3:
        raise ConfigError(f"DSA augments images (C, H, W); {data.name} has examples of shape "
                          f"{tuple(data.input_shape)}: pass dsa=False")
    if c.resume and c.checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint_dir")
    if c.snapshot_every < 0 or (c.snapshot_every > 0 and c.snapshot_dir is None):
        raise ConfigError("snapshot_every needs to be >= 0, and a snapshot_dir when > 0")
    return key, cls


def _uses_dsa(key: str, c: DistillConfig, data: VisionData) -> bool:
    if key == "dsa":
        return True
    return len(tuple(data.input_shape)) == 3 if c.dsa is None else bool(c.dsa)


@dataclass
class _Run:
    """A distillation in progress: the method, its context and where the loop stands."""

    key: str
    algo: Method
    ctx: Context
    config: dict[str, Any]
    counts: list[int]
    setup_info: dict[str, Any]
    iteration: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    started: float = 0.0
    first_iteration: int = 0  # where this process began (the first iteration is not timed)
    warned_slow: bool = False


def _setup(key: str, cls: type[Method], data: VisionData, c: DistillConfig, budget: Budget,
           device: torch.device, model_fn: ModelFn | None, ckpt: Path | None) -> _Run:
    """The starting images, the method and its context; a checkpoint's state on resume."""
    shape = tuple(data.input_shape)
    dsa = _uses_dsa(key, c, data)
    g = torch.Generator().manual_seed(int(c.seed))
    class_x = class_tensors(data, device)
    images = init_images(class_x, c.ipc, c.init, g, c.factor).to(device).requires_grad_(True)
    labels = torch.arange(data.num_classes).repeat_interleave(c.ipc).to(device)
    ctx = Context(
        class_x=class_x, syn=images, labels=labels, ipc=c.ipc, num_classes=data.num_classes,
        model_fn=model_fn or default_model_fn(shape, data.num_classes, c.width),
        generator=g, device=device, dsa=DSA(dsa_strategy(data.name)) if dsa else None,
        batch_real=c.batch_real, options={**cls.defaults, **c.options}, factor=c.factor)
    if key == "mtt" and ctx.options["expert_dir"] is None and ckpt is not None:
        ctx.options["expert_dir"] = str(ckpt / "experts")
    algo = cls(ctx)
    config = {"method": "dc" if key == "dsa" else key, "dataset": data.name, "ipc": c.ipc,
              "init": c.init, "dsa": dsa, "seed": int(c.seed),
              "num_classes": data.num_classes, "input_shape": list(shape),
              "width": c.width if model_fn is None else None, "batch_real": c.batch_real,
              "factor": c.factor, "layout": {k: ctx.options[k] for k in cls.layout_options}}
    run = _Run(key, algo, ctx, config, check_ipc(data, c.ipc), algo.setup())
    if c.resume and ckpt is not None and latest_checkpoint(ckpt) is not None:
        run.iteration, run.losses = _restore(ckpt, algo, ctx, budget, config)
    return run


def _loop(run: _Run, budget: Budget, c: DistillConfig, ckpt: Path | None,
          progress: bool | Callable[[str], None]) -> None:
    """Method iterations until the budget is spent or a stop signal arrives."""
    say = progress if callable(progress) else None
    log = RunLog(None, enabled=progress is True, quiet=progress is not True,
                 description=f"distill {run.config['method']}")
    next_line = 0.1
    run.started, run.first_iteration = time.perf_counter(), run.iteration
    try:
        with stop.deferred() as flag:
            while not budget.exhausted() and flag.signal is None:
                started = time.perf_counter()
                loss = _iterate(run, budget)
                _warn_if_slow(run, budget, time.perf_counter() - started)
                if log.shows_progress:
                    log.progress(budget.progress(), f"it {run.iteration}  loss {loss:.4g}")
                if say is not None and (budget.progress() >= next_line or budget.exhausted()):
                    next_line = budget.progress() + 0.1
                    say(f"{100 * budget.progress():5.1f}%  iteration {run.iteration}  loss "
                        f"{loss:.4g}  {budget.ledger.current('train'):.0f}s")
                _snapshot_and_checkpoint(run, budget, c, ckpt)
        if ckpt is not None:
            with budget.ledger.phase("checkpoint"):
                _save(ckpt, run.iteration, run.algo, run.ctx, budget, run.config, run.losses)
    finally:
        log.close()
    if flag.signal is not None:
        saved = (f"checkpoint of iteration {run.iteration} saved in {ckpt} (continue with "
                 "--resume)" if ckpt is not None else "nothing saved (no checkpoint folder)")
        raise stop.Stopped(flag.signal, saved)


def _warn_if_slow(run: _Run, budget: Budget, seconds: float) -> None:
    """One warning (the trainer's) when an iteration after the first takes more than 5% of a
    seconds budget: the run then ends on a coarse grid and may overrun by that much."""
    if budget.is_wall_clock and not run.warned_slow and run.iteration > run.first_iteration + 1 \
            and seconds > SLOW_STEP_SHARE * budget.amount:
        run.warned_slow = True
        print(f"warning: one iteration takes {seconds:.1f}s, "
              f"{100 * seconds / budget.amount:.0f}% of the {budget.amount:g}s budget; a "
              "smaller ipc, batch_real or width keeps iterations short", file=sys.stderr,
              flush=True)


def _iterate(run: _Run, budget: Budget) -> float:
    """One method iteration, counted; a DataError if the images diverge."""
    with budget.ledger.phase("train"):
        loss, seen = run.algo.step()
    if not torch.isfinite(run.ctx.syn.detach()).all():
        raise DataError(f"{run.key}: the synthetic images diverged to non-finite values "
                        f"at iteration {run.iteration + 1}; lower lr_img")
    run.iteration += 1
    run.losses.append(loss)
    budget.work.steps += 1
    budget.work.examples_forwarded += seen
    return loss


def _snapshot_and_checkpoint(run: _Run, budget: Budget, c: DistillConfig,
                             ckpt: Path | None) -> None:
    if c.snapshot_every > 0 and run.iteration % c.snapshot_every == 0:
        with budget.ledger.phase("checkpoint"):
            SyntheticSet(run.ctx.syn.detach(), run.ctx.labels, _meta(run, budget)).save(
                Path(str(c.snapshot_dir)) / f"it{run.iteration:06d}.safetensors")
    if ckpt is not None and c.checkpoint_every > 0 and run.iteration % c.checkpoint_every == 0:
        with budget.ledger.phase("checkpoint"):
            _save(ckpt, run.iteration, run.algo, run.ctx, budget, run.config, run.losses)


def _meta(run: _Run, budget: Budget) -> dict:
    """The provenance a SyntheticSet carries: settings, iterations, times, losses."""
    return {**run.config, "iterations": run.iteration, "budget": budget.spec,
            "train_seconds": budget.ledger.current("train"),
            "setup_seconds": budget.ledger.current("setup"),
            "wall_seconds": time.perf_counter() - run.started,
            "loss_first": run.losses[0] if run.losses else None,
            "loss_last": run.losses[-1] if run.losses else None,
            "class_counts": run.counts,
            "dsa_strategy": run.ctx.dsa.strategy if run.ctx.dsa else None,
            "options": _options(run.ctx), **run.setup_info, **run.algo.info()}


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
