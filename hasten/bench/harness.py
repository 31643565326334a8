"""The benchmark harness: tasks x methods x seeds, interleaved, into one results record.

A *task* builds a `Recipe` (model, data, loss, evaluation, config) for a seed. A *method*
takes a recipe and returns a changed one (another sampler, hooks, config). Both are
registered by name, so a new method is one decorated function in its own module:

    @register_method("bf16")
    def bf16(recipe: Recipe) -> Recipe:
        recipe.config.precision = "bf16"
        return recipe

A method says where it applies (`applies=`: task names or a test on the task name; by
default every task), so a suite, `hasten train` and `hasten list` offer it only there, and a
method run where it does not apply is refused before any run starts.

A *suite* names its tasks and methods, the margin below the baseline that counts as
reaching its quality, and its own typed options (a dataclass in `hasten.core.config` style). A
method name may end in `@F` (e.g. `proxy@0.5`): the method run at fraction F of the task's
budget, so a suite can show how little budget a method needs to reach the baseline's
quality.

A suite whose runs are not one training of a recipe (kill-and-resume checks, pretraining
rows scored after training, another library's trainer) gives its own `run(task, method,
seed, quick, budget, options, say) -> run record` (at least `metric`, `final`,
`train_seconds`); its tasks and methods are names it lists, and the rest is the harness's
(plan, checks, interleaving, the record after every run, stop, `--resume`, the machine's
state, report). `budget_units`: the units `--budget` may use (none: sized by its options).
`verdict(record)` gives the exit status and lines `hasten bench` and `hasten report` print.

Runs go in interleaved order (seed 0: A B C, seed 1: A B C, ...), so drifts in machine
speed fall on every method alike. Each run records its curve of (train seconds, work,
metric); `fill_targets` then turns them into time to target. With an output path the record
is rewritten after every run, so a failure or a stop signal keeps every finished run (the
cut one is never recorded) and `resume=True` carries on where it ended.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from hasten.bench.machine import TimingMonitor
from hasten.bench.records import (  # noqa: F401  (re-exported: where callers found them)
    RESULT_FILE,
    code_version,
    cpu_model,
    load_record,
    machine_description,
    provenance,
    resumed_record,
    write_record,
)
from hasten.bench.report import fill_targets
from hasten.core import stop
from hasten.core.budget import parse_budget, seconds_spec
from hasten.core.config import resolve, to_dict
from hasten.core.errors import ConfigError
from hasten.core.recipe import TASKS, Recipe, TaskFn, lookup, register_task  # noqa: F401
from hasten.core.trainer import Hook, train
from hasten.levers import LEVERS, Lever, apply_levers, parse_levers, split_specs

RESULTS_FILE = RESULT_FILE  # the name callers import from here

MethodFn = Callable[[Recipe], Recipe]
Applies = Callable[[str], bool]
# a suite's own run: (task, method, seed, quick, budget, options, say) -> run record
OwnRunFn = Callable[..., dict[str, Any]]


@dataclass
class Suite:
    name: str
    # the task names, or a function of the suite's options that returns them (e.g. the mt
    # suite's language pair picks its task)
    tasks: list[str] | Callable[[Any], list[str]]
    methods: list[str]  # the first is the baseline
    margin: float = 0.0  # target = baseline's median final - margin (metric units)
    description: str = ""
    budgets: dict[str, str] = field(default_factory=dict)  # per task, overriding its own
    quick_budgets: dict[str, str] = field(default_factory=dict)  # the same, under --quick
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields for every run
    # the suite's own settings: a dataclass in `hasten.core.config` style (each field an `option`
    # with its reason), listed by `hasten bench SUITE --help`, filled by flags, `--set` and
    # `--config`; a task takes them as an `options` keyword, a method reads `recipe.options`.
    options: type | None = None
    # called on the results after every run, to add what needs several runs (rows across
    # seeds, say); it may change the runs' notes
    after_run: Callable[[dict[str, Any]], None] | None = None
    # the suite's own run, for runs that are not one training of a recipe (module docstring)
    run: OwnRunFn | None = None
    budget_units: tuple[str, ...] | None = None  # units --budget may use (None: any)
    # (exit status, lines to print) from the record, after the tables
    verdict: Callable[[dict[str, Any]], tuple[int, list[str]]] | None = None
    # every run's recipe after its method: (recipe, method) -> recipe (e.g. the evaluation
    # points and test subset every arm shares, `hasten.bench.evidence.dense_eval`)
    prepare: Callable[[Recipe, str], Recipe] | None = None
    # a suite that runs its rows end to end, e.g. "pretrain, then evaluate" per row
    # (`hasten.bench.ladder`): `own_rows(args, say) -> (results, out dir, title, notes)`,
    # called by `hasten bench` with the command's settings
    own_rows: Callable[..., Any] | None = None


METHODS: dict[str, MethodFn] = {}
SUITES: dict[str, Suite] = {}
APPLIES: dict[str, Applies] = {}  # method -> which tasks it applies to (absent: every task)


def register_method(name: str, applies: Collection[str] | Applies | None = None
                    ) -> Callable[[MethodFn], MethodFn]:
    """Register a method under `name`. `applies`: the task names it works on, or a test on
    a task name; None (the default) means every task."""
    def add(fn: MethodFn) -> MethodFn:
        METHODS[name] = fn
        if applies is None:
            APPLIES.pop(name, None)
        elif callable(applies):
            APPLIES[name] = applies
        else:
            names = frozenset(applies)
            APPLIES[name] = names.__contains__
        return fn
    return add


def register_suite(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite


@register_method("baseline")
def baseline(recipe: Recipe) -> Recipe:
    """The task's own recipe, unchanged."""
    return recipe


def lever_arm(method: str) -> list[Lever] | None:
    """The levers of a method that is a lever list (`infobatch+sb-topk:keep=0.25`, maybe
    `@F`), else None (a registered method, or no lever). A known lever with bad settings
    raises its one-line error."""
    base = method.partition("@")[0]
    if base in METHODS:
        return None
    names = [part.partition(":")[0].strip() for part in base.split("+")]
    if not all(name in LEVERS for name in names):
        return None
    return parse_levers(base)


def applies(method: str, task: str) -> bool:
    """Whether `method` (maybe `NAME@F`) is registered and works on `task`; a lever list
    applies to every task (each lever checks what it needs when the recipe is built)."""
    base = method.partition("@")[0]
    if base not in METHODS:
        return lever_arm(base) is not None
    return APPLIES.get(base, lambda _t: True)(task)


def methods_for(task: str) -> list[str]:
    """The registered methods that apply to `task`, in registration order."""
    return [m for m in METHODS if applies(m, task)]


def check_method(method: str, tasks: Sequence[str]) -> None:
    """A ConfigError unless `method` is registered and applies to every task in `tasks`;
    the message lists the methods that do apply there."""
    base, _ = split_method(method)
    for task in tasks:
        if applies(base, task):
            continue
        valid = [m for m in methods_for(tasks[0]) if all(applies(m, t) for t in tasks)]
        what = (f"unknown method {base!r} (neither a registered method nor a lever list: "
                "`hasten list levers`)" if base not in METHODS else
                f"method {method!r} does not apply to task {task}")
        where = tasks[0] if len(tasks) == 1 else ", ".join(tasks)
        raise ConfigError(f"{what}; methods for {where}: {', '.join(valid) or 'none'}")


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


def suite_options(suite: Suite, options: Any = None) -> Any:
    """The suite's options: `options` when already an instance of `suite.options`, else a
    mapping of its fields (or None for the defaults) resolved into one."""
    if suite.options is None:
        if options:
            raise ConfigError(f"suite {suite.name!r} has no options")
        return None
    if isinstance(options, suite.options):
        return options

    return resolve(suite.options, flags=dict(options or {}))


def suite_tasks(suite: Suite, options: Any = None) -> list[str]:
    """The suite's tasks for these options."""
    return list(suite.tasks(options) if callable(suite.tasks) else suite.tasks)


def plan(suite: Suite, seeds: int, tasks: Sequence[str] | None = None,
         methods: Sequence[str] | None = None, first_seed: int = 0, options: Any = None
         ) -> list[tuple[int, str, str]]:
    """The interleaved run order: for each seed (first_seed, first_seed + 1, ...), for each
    task, every method in turn. Every name is checked first (methods: that they apply to
    every task), so a bad one fails before any run."""
    tasks = list(tasks or suite_tasks(suite, options))
    methods = split_specs(",".join(methods or suite.methods))  # lever settings stay whole
    if suite.run is not None:  # plain names the suite lists
        for kind, names, known in (("task", tasks, suite_tasks(suite, options)),
                                   ("method", methods, suite.methods)):
            for name in names:
                lookup(f"{kind} of suite {suite.name}", dict.fromkeys(known), name)
    else:
        for name in tasks:
            lookup("task", TASKS, name)
        for name in methods:
            check_method(name, tasks)
        check_lever_needs(methods, tasks, options)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {first_seed}")
    return [(seed, t, m) for seed in range(first_seed, first_seed + seeds) for t in tasks
            for m in methods]


def check_lever_needs(methods: Sequence[str], tasks: Sequence[str], options: Any = None
                      ) -> None:
    """Before any run: each lever list whose levers need something only some tasks declare
    (a difficulty, a proxy model) is checked against each task's quick recipe."""
    for method in methods:
        levers = lever_arm(method) or []
        picky = [x for x in levers if set(x.needs) - {"per_example_loss", "example_ids"}]
        for task in tasks if picky else ():
            recipe = _task_recipe(task, 0, True, options)
            for lever in picky:
                reason = lever.refusal(recipe)
                if reason is not None:
                    raise ConfigError(reason)


def _task_recipe(task: str, seed: int, quick: bool, options: Any) -> Recipe:
    task_fn = lookup("task", TASKS, task)
    if options is not None and "options" in inspect.signature(task_fn).parameters:
        recipe = task_fn(seed, quick, options=options)
    else:
        recipe = task_fn(seed, quick)
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"task {task!r} returned {type(recipe).__name__}, not a Recipe")
    return recipe


def build_recipe(task: str, method: str, seed: int, quick: bool, budget: str | None = None,
                 quiet: bool = True, options: Any = None) -> Recipe:
    """The task's recipe for `seed` with the method applied (the budget set before the
    method, so a method can adapt to it)."""
    check_method(method, [task])
    recipe = _task_recipe(task, seed, quick, options)
    recipe.options = options
    recipe.config.seed, recipe.config.quiet = seed, quiet
    if budget is not None:
        recipe.config.budget = budget
    base, fraction = split_method(method)
    if fraction != 1.0:
        recipe.config.budget = scale_budget(recipe.config.budget, fraction)
    if base in METHODS:
        return METHODS[base](recipe)
    return apply_levers(recipe, base)


def run_one(task: str, method: str, seed: int, quick: bool, budget: str | None = None,
            quiet: bool = True, options: Any = None, hooks: Sequence[Hook] = (),
            prepare: Callable[[Recipe, str], Recipe] | None = None,
            **overrides: Any) -> tuple[dict[str, Any], nn.Module]:
    """Build the task's recipe for `seed`, apply the method, train; return the run record
    and the trained model.

    `options` are the suite's resolved options (passed to a task that takes an `options`
    keyword, and set as `recipe.options`). `hooks` are added after the method's own.
    `overrides` set `TrainConfig` fields (out_dir, resume, micro_batch, ...) after the
    method. A stop signal that arrived while the method prepared (a proxy, a scorer) stops
    here, before training on what it left half done. `prepare` (a suite's) changes the
    recipe after the method.
    """
    recipe = build_recipe(task, method, seed, quick, budget, quiet, options)
    if prepare is not None:
        recipe = prepare(recipe, method)
    return train_recipe(recipe, task, method, hooks, **overrides)


def train_recipe(recipe: Recipe, task: str, method: str, hooks: Sequence[Hook] = (),
                 **overrides: Any) -> tuple[dict[str, Any], nn.Module]:
    """Train a built recipe; the run record and the model (see `run_one`)."""
    cfg = recipe.config
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ConfigError(f"unknown training option {key!r}")
        setattr(cfg, key, value)
    stop.check()
    result = train(recipe.model, recipe.train_data, recipe.loss_fn, cfg,
                   evaluate=recipe.evaluate, hooks=[*recipe.hooks, *hooks],
                   sampler=recipe.sampler, tokens_fn=recipe.tokens_fn,
                   collate_fn=recipe.collate_fn)
    shift = recipe.overhead_seconds

    def charged(work: dict[str, Any]) -> dict[str, Any]:
        return {**work, "flops": work.get("flops", 0.0) + recipe.overhead_flops}

    run = {
        "task": task, "method": method, "seed": cfg.seed, "metric": result.metric,
        "higher_is_better": cfg.higher_is_better, "final": result.final,
        "metrics": dict(result.metrics),
        "train_seconds": result.train_seconds + shift, "target": None,
        "time_to_target": None, "relative_time": None, "work": charged(result.work),
        "curve": [[s + shift, charged(w), v] for s, w, v in result.curve],
        "overhead_flops": recipe.overhead_flops,
        "ledger": result.ledger, "overhead_seconds": shift, "steps": result.steps,
        "stopped": result.stopped,
        "budget": cfg.budget, "config": _jsonable(asdict(cfg)), "notes": recipe.notes,
        **_jsonable(result.record()),
    }
    return run, recipe.model


def run_suite(name: str, quick: bool = False, seeds: int = 1, budget: str | None = None,
              tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None,
              command: str | None = None, progress: Callable[[str], None] | None = None,
              quiet: bool = True, first_seed: int = 0, baseline: str | None = None,
              options: Any = None, out: str | Path | None = None, resume: bool = False,
              hooks: Sequence[Hook] = (), notes: dict[str, Any] | None = None,
              repeat_flagged: bool = False) -> dict[str, Any]:
    """Run a registered suite and return its record (targets and relative times filled).

    Seeds run from `first_seed`, so one suite can be split across machines or cores and its
    result files joined with `merge_results`. The baseline is `baseline`, else the first
    method; naming it lets a part without the baseline's runs merge with the part that has
    them. `options`: an instance of `suite.options`, a mapping of its fields, or None for
    its defaults. With `out` (a folder) the record is written to `out/result.json` after
    every run, "partial" until the suite finishes; `resume=True` keeps the runs a partial
    record there already holds and runs the rest. A stop signal ends the suite with
    `hasten.core.stop.Stopped` (the finished runs kept, the cut one dropped); an error writes a
    "failed" record and propagates. Each run records the machine's state around it
    (`hasten.bench.machine`); `repeat_flagged` runs a run timed on a busy machine once
    more."""
    suite = lookup("suite", SUITES, name)
    if suite.own_rows is not None:
        raise ConfigError(f"suite {name!r} runs its own rows: `hasten bench {name}`")
    options = suite_options(suite, options)
    if budget is not None:
        parse_budget(budget)
    units = suite.budget_units
    if budget is not None and units is not None and parse_budget(budget)[0] not in units:
        takes = f"it takes {' or '.join(units)} budgets" if units else \
            "its runs are sized by its own options"
        raise ConfigError(f"bench {suite.name}: --budget {budget} does not apply ({takes})")
    order = plan(suite, seeds, tasks, methods, first_seed, options)
    baseline_method = baseline or (list(methods) if methods else suite.methods)[0]
    if suite.run is None:
        check_method(baseline_method, sorted({t for _, t, _ in order}))
    path = Path(out) / RESULTS_FILE if out is not None else None
    results = _new_record(suite, quick, seeds, first_seed, options, command, len(order), notes)
    if resume and path is not None:
        results = resumed_record(results, path)
    done = {(r["seed"], r["task"], r["method"]) for r in results["runs"]}
    margins = {t: suite.margin for _, t, _ in order}

    def save(status: str, **extra: Any) -> None:
        results.update(status=status, **extra)
        fill_targets(results, margins=margins)
        if suite.after_run is not None:
            suite.after_run(results)
        if path is not None:
            write_record(results, path)

    monitor = TimingMonitor(repeat=repeat_flagged, quick=quick)
    one = partial(run_one, prepare=suite.prepare) if suite.run is None else \
        partial(_own_run, suite.run, say=progress)
    run_fn: Callable[..., tuple[dict[str, Any], Any]] = partial(monitor.measure, one)
    with stop.watch(), _stopped_between_runs(save, path, results, len(order)):
        for i, (seed, task, method) in enumerate(order):
            if (seed, task, method) in done:
                continue
            if progress:
                progress(f"[{i + 1}/{len(order)}] {task} / {method} / seed {seed}")
            task_budget = budget or (suite.quick_budgets if quick else suite.budgets).get(task)
            run = _guarded_run(run_fn, save, path, results, len(order), task, method, seed,
                               quick, task_budget, quiet, options, hooks, suite.overrides)
            run["baseline"] = baseline_method
            # per-run additions to the record (e.g. the machine's state) belong here
            results["runs"].append(run)
            save("partial")
            if progress:
                progress(f"    {run['metric']} {_fmt(run['final'])} in "
                         f"{run['train_seconds']:.1f}s train, "
                         f"{(run.get('work') or {}).get('steps', 'n/a')} steps")
    save("complete")
    return results


def _own_run(fn: OwnRunFn, task: str, method: str, seed: int, quick: bool,
             budget: str | None, quiet: bool = True, options: Any = None,
             hooks: Sequence[Hook] = (), say: Callable[[str], None] | None = None,
             **overrides: Any) -> tuple[dict[str, Any], None]:
    """A suite's own run, called as `run_one` is; the record gets the harness's fields."""
    stop.check()
    run = fn(task, method, seed, quick, budget, options, say)
    return {"task": task, "method": method, "seed": seed, "higher_is_better": True,
            "target": None, "time_to_target": None, "relative_time": None, "work": {},
            "curve": None, "stopped": "budget", "budget": budget, "notes": {}, **run}, None


@contextmanager
def _stopped_between_runs(save: Callable[..., None], path: Path | None,
                          results: dict[str, Any], planned: int) -> Iterator[None]:
    """A stop signal that lands between two runs (outside `_guarded_run`) also records the
    suite as stopped, with the runs finished so far."""
    try:
        yield
    except (stop.Stopped, KeyboardInterrupt) as err:
        if isinstance(err, stop.Stopped) and err.saved:  # `_guarded_run` recorded it
            raise
        name = err.signal if isinstance(err, stop.Stopped) else "sigint"
        save("stopped", stopped=name)
        raise stop.Stopped(name, f"{len(results['runs'])} of {planned} runs finished and kept "
                                 f"in {path if path is not None else 'memory'}; the same "
                                 "command with --resume runs the rest") from None


def _guarded_run(run_fn: Callable[..., tuple[dict[str, Any], nn.Module]],
                 save: Callable[..., None], path: Path | None, results: dict[str, Any],
                 planned: int, task: str, method: str, seed: int, quick: bool,
                 budget: str | None, quiet: bool, options: Any, hooks: Sequence[Hook],
                 overrides: dict[str, Any]) -> dict[str, Any]:
    """One run of a suite. A stop signal (during the run, or caught by a trainer inside the
    method) records the suite as stopped, without the cut run, and raises `Stopped`; an
    error records it as failed and propagates."""
    where = f"{path}" if path is not None else "memory"
    try:
        run, _ = run_fn(task, method, seed, quick, budget, quiet=quiet, options=options,
                        hooks=hooks, **overrides)
        signal_name = run["stopped"] if run["stopped"] in stop.EXIT_CODES else stop.received()
    except stop.Stopped as err:
        signal_name = err.signal
    except KeyboardInterrupt:
        signal_name = "sigint"
    except Exception as err:
        save("failed", error=f"{task} / {method} / seed {seed}: {type(err).__name__}: "
                             f"{' '.join(str(err).split())}")
        raise
    if signal_name is None:
        return run
    save("stopped", stopped=signal_name)
    kept = len(results["runs"])
    raise stop.Stopped(signal_name, f"{kept} of {planned} runs finished and kept in {where}; "
                                    "the same command with --resume runs the rest")


def _new_record(suite: Suite, quick: bool, seeds: int, first_seed: int, options: Any,
                command: str | None, planned: int, notes: dict[str, Any] | None
                ) -> dict[str, Any]:
    return {"suite": suite.name, **provenance(command), "status": "partial",
            "quick": quick, "seeds": seeds, "first_seed": first_seed, "margin": suite.margin,
            "suite_methods": list(suite.methods),  # the column order when parts are merged
            "options": to_dict(options) if options is not None else {},
            "planned_runs": planned, "notes": dict(notes or {}), "runs": []}


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
