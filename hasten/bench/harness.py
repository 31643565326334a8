"""The benchmark harness: tasks x methods x seeds, interleaved, into one results file.

A *task* builds a `Recipe` (model, data, loss, evaluation, config) for a seed. A *method*
takes a recipe and returns a changed one (another sampler, hooks, config). Both are
registered by name, so a new method is one decorated function in its own module:

    @register_method("bf16")
    def bf16(recipe: Recipe) -> Recipe:
        recipe.config.precision = "bf16"
        return recipe

A *suite* names its tasks and methods and the margin below the baseline that counts as
reaching its quality. A method name may end in `@F` (e.g. `proxy@0.5`): the method run at
fraction F of the task's budget, so a suite can show how little budget a method needs to
reach the baseline's quality (and, next to it, `baseline@0.5`, what the plain recipe does
with as little).

Runs go in interleaved order (seed 0: A B C, seed 1: A B C, ...), so
drifts in machine speed fall on every method alike. Each run records its curve of
(train seconds, work, metric); `fill_targets` then turns them into time to target.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hasten.budget import parse_budget, seconds_spec
from hasten.data.sampling import CollateFn, Sampler
from hasten.errors import ConfigError
from hasten.trainer import EvalFn, Hook, LossFn, TrainConfig, train


@dataclass
class Recipe:
    """Everything one training run needs. `overhead_seconds` is time a method spent before
    training (scoring, a proxy model, distillation): it is added to the run's curve so time
    to target counts it; `overhead_flops`, that work's FLOPs, is added to the FLOPs counter
    (the example counters stay the trained model's own)."""

    model: nn.Module
    train_data: Dataset
    loss_fn: LossFn
    evaluate: EvalFn
    config: TrainConfig
    hooks: list[Hook] = field(default_factory=list)
    sampler: Sampler | None = None
    tokens_fn: Callable[[Any], int] | None = None
    collate_fn: CollateFn | None = None  # list of dataset items -> batch (e.g. padding)
    options: Any = None  # the suite's resolved options (a dataclass), for methods to read
    overhead_seconds: float = 0.0
    overhead_flops: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


TaskFn = Callable[[int, bool], Recipe]  # (seed, quick) -> Recipe
MethodFn = Callable[[Recipe], Recipe]


@dataclass
class Suite:
    name: str
    tasks: list[str]
    methods: list[str]  # the first is the baseline
    margin: float = 0.0  # target = baseline's median final - margin (metric units)
    description: str = ""
    budgets: dict[str, str] = field(default_factory=dict)  # per task, overriding its own
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields for every run
    # the suite's own settings: a dataclass in `hasten.config` style (each field an `option`
    # with its reason). `hasten bench SUITE --help` lists them; `--set` and `--config` fill
    # them. A task receives them when it takes an `options` keyword; methods read
    # `recipe.options`.
    options: type | None = None


TASKS: dict[str, TaskFn] = {}
METHODS: dict[str, MethodFn] = {}
SUITES: dict[str, Suite] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    def add(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn
    return add


def register_method(name: str) -> Callable[[MethodFn], MethodFn]:
    def add(fn: MethodFn) -> MethodFn:
        METHODS[name] = fn
        return fn
    return add


def register_suite(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite


@register_method("baseline")
def baseline(recipe: Recipe) -> Recipe:
    """The task's own recipe, unchanged."""
    return recipe


def lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    """`table[name]`, or a ConfigError listing the known names of this kind."""
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def split_method(name: str) -> tuple[str, float]:
    """`"proxy@0.5"` -> `("proxy", 0.5)`; a plain name runs at its full budget (1.0)."""
    base, at, frac = name.partition("@")
    if not at:
        return name, 1.0
    try:
        fraction = float(frac)
    except ValueError:
        fraction = float("nan")
    if not 0 < fraction <= 1:
        raise ConfigError(f"method {name!r}: the budget fraction after '@' must be in (0, 1]")
    return base, fraction


def scale_budget(spec: str, fraction: float) -> str:
    """A budget string for `fraction` of `spec` ("150s" at 0.5 -> "75s")."""
    unit, amount = parse_budget(spec)
    suffix = {"seconds": "s", "steps": "steps", "examples": "ex", "tokens": "tok",
              "flops": "flop"}[unit]
    value = amount * fraction
    return seconds_spec(value) if unit == "seconds" else f"{max(1, round(value))}{suffix}"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU model, cores and torch build (and GPU name when CUDA is used)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.system()}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def code_version(root: str | os.PathLike[str] | None = None) -> str:
    """The git commit the code runs from, with "+ uncommitted changes" when tracked files
    differ from it; "hasten VERSION" outside a git checkout (e.g. a pip install)."""
    from hasten import __version__

    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # e.g. site-packages inside someone else's repository
        return f"hasten {__version__}"
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--"], capture_output=True,
                               timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return f"hasten {__version__}"
    return head + (" + uncommitted changes" if dirty else "")


def provenance(command: str | None = None, created: datetime | None = None) -> dict[str, str]:
    """When, where, from which code and how a result was made: the header of every results
    JSON."""
    return {"created": (created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
            "machine": machine_description(),
            "code": code_version(),
            "command": command or "hasten " + " ".join(shlex.quote(a) for a in sys.argv[1:])}


def plan(suite: Suite, seeds: int, tasks: Sequence[str] | None = None,
         methods: Sequence[str] | None = None, first_seed: int = 0
         ) -> list[tuple[int, str, str]]:
    """The interleaved run order: for each seed (first_seed, first_seed + 1, ...), for each
    task, every method in turn."""
    tasks = list(tasks or suite.tasks)
    methods = list(methods or suite.methods)
    for name in tasks:
        lookup("task", TASKS, name)
    for name in methods:
        lookup("method", METHODS, split_method(name)[0])
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {first_seed}")
    return [(seed, t, m) for seed in range(first_seed, first_seed + seeds) for t in tasks
            for m in methods]


def run_one(task: str, method: str, seed: int, quick: bool, budget: str | None = None,
            quiet: bool = True, options: Any = None, **overrides: Any
            ) -> tuple[dict[str, Any], nn.Module]:
    """Build the task's recipe for `seed`, apply the method, train; return the run record
    and the trained model.

    `options` are the suite's resolved options (passed to a task that takes an `options`
    keyword, and set as `recipe.options`). `overrides` set `TrainConfig` fields (out_dir,
    resume, micro_batch, ...) after the method.
    """
    task_fn = lookup("task", TASKS, task)
    if options is not None and "options" in inspect.signature(task_fn).parameters:
        recipe = task_fn(seed, quick, options=options)
    else:
        recipe = task_fn(seed, quick)
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"task {task!r} returned {type(recipe).__name__}, not a Recipe")
    recipe.options = options
    recipe.config.seed, recipe.config.quiet = seed, quiet
    if budget is not None:  # before the method, so a method can adapt to the budget
        recipe.config.budget = budget
    base, fraction = split_method(method)
    if fraction != 1.0:
        recipe.config.budget = scale_budget(recipe.config.budget, fraction)
    recipe = lookup("method", METHODS, base)(recipe)
    cfg = recipe.config
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ConfigError(f"unknown training option {key!r}")
        setattr(cfg, key, value)
    result = train(recipe.model, recipe.train_data, recipe.loss_fn, cfg,
                   evaluate=recipe.evaluate, hooks=recipe.hooks, sampler=recipe.sampler,
                   tokens_fn=recipe.tokens_fn, collate_fn=recipe.collate_fn)
    shift = recipe.overhead_seconds

    def charged(work: dict[str, Any]) -> dict[str, Any]:
        return {**work, "flops": work.get("flops", 0.0) + recipe.overhead_flops}

    curve = [[s + shift, charged(w), v] for s, w, v in result.curve]
    run = {
        "task": task, "method": method, "seed": seed, "metric": result.metric,
        "higher_is_better": cfg.higher_is_better, "final": result.final,
        "metrics": dict(result.metrics),
        "train_seconds": result.train_seconds + shift, "target": None,
        "time_to_target": None, "relative_time": None, "work": charged(result.work),
        "curve": curve, "overhead_flops": recipe.overhead_flops,
        "ledger": result.ledger, "overhead_seconds": shift, "steps": result.steps,
        "stopped": result.stopped,
        "budget": cfg.budget, "config": _jsonable(asdict(cfg)), "notes": recipe.notes,
    }
    return run, recipe.model


def run_suite(name: str, quick: bool = False, seeds: int = 1, budget: str | None = None,
              tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None,
              command: str | None = None, progress: Callable[[str], None] | None = None,
              quiet: bool = True, first_seed: int = 0, baseline: str | None = None,
              options: Any = None, repeat_flagged: bool = False) -> dict[str, Any]:
    """Run a registered suite and return its results (targets and relative times filled).
    Seeds run from `first_seed`, so one suite can be split across machines or cores and its
    result files joined with `merge_results`. The baseline is `baseline`, else the first
    method; naming it lets a part without the baseline's runs (methods split across cores)
    merge with the part that has them. `options` is the suite's options: an instance of
    `suite.options`, a mapping of its fields, or None for its defaults. Each run records
    the machine's state around it (`hasten.bench.machine`); `repeat_flagged` runs a run
    timed on a busy machine once more."""
    from hasten.bench.machine import TimingMonitor
    from hasten.bench.report import fill_targets
    from hasten.config import resolve, to_dict

    suite = lookup("suite", SUITES, name)
    if suite.options is not None and not isinstance(options, suite.options):
        options = resolve(suite.options, flags=dict(options or {}))
    if budget is not None:
        parse_budget(budget)
    order = plan(suite, seeds, tasks, methods, first_seed)
    baseline_method = baseline or (list(methods) if methods else suite.methods)[0]
    lookup("method", METHODS, split_method(baseline_method)[0])
    results: dict[str, Any] = {
        "suite": name, **provenance(command),
        "quick": quick, "seeds": seeds, "first_seed": first_seed, "margin": suite.margin,
        "suite_methods": list(suite.methods),  # the column order when parts are merged
        "options": to_dict(options) if options is not None else {},
        "runs": [],
    }
    monitor = TimingMonitor(repeat=repeat_flagged, quick=quick)
    for i, (seed, task, method) in enumerate(order):
        if progress:
            progress(f"[{i + 1}/{len(order)}] {task} / {method} / seed {seed}")
        task_budget = budget or (None if quick else suite.budgets.get(task))
        run, _ = monitor.measure(run_one, task, method, seed, quick, task_budget, quiet=quiet,
                                 options=options, **suite.overrides)
        run["baseline"] = baseline_method
        results["runs"].append(run)
        if progress:
            progress(f"    {run['metric']} {run['final']:.2f} in {run['train_seconds']:.1f}s "
                     f"train, {run['work']['steps']} steps")
    tasks_run = {r["task"] for r in results["runs"]}
    return fill_targets(results, margins={t: suite.margin for t in tasks_run})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
