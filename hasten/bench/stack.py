r"""The lever stack: compose what saves time under one budget, and keep only what pays.

Levers (each a function of a recipe and its chosen setting), applied in this order:
  schedule    the LR schedule's shape; candidates: one-cycle peaking at 10%, linear decay
              after 5% warmup, cosine after 5% warmup (chosen on the validation task)
  bf16        bf16 autocast for forward, backward and evaluation
  batch       a smaller micro-batch (half or a quarter of the task's; chosen), same LR
  compile     torch.compile; the trainer books compilation apart from training, so this
              lever charges it to the run as overhead (kept only if it pays, like every
              lever; on a CPU it gains little)
  curriculum  competence curriculum (Platanios et al. 2019, c_sqrt) over the task's
              difficulty, where it has one (SST-2: sentence length); T at 20% or 50% of
              the budget (chosen); with infobatch on, InfoBatch takes over from T
  infobatch   InfoBatch dynamic pruning, the paper's r = 0.5, delta = 0.875
              (`hasten.select.infobatch`)
  proxy       selective backprop with a small proxy: draw 2x the batch, backpropagate the
              proxy's top half; the proxy trains first for max(1 epoch, 200 steps), charged
              as overhead (the selective suite's `proxy`)

Runs (method names): `tuned-baseline` (the suite's baseline: the target is its median less
0.2 points), `baseline` (the task's plain fp32 recipe), `baseline@F`, `only-X` (lever X
alone), `stack` (every lever), `stack-minus-X` (every lever but X). Every lever run trains
`fraction` (default 0.6) of the baseline's examples; the baselines train all of them.

Settings are chosen on the task's validation twin (`fashion-stack-val`, `sst2-small-val`),
never on the reported split: for each lever with several candidates, its `only-X` run per
candidate (seed `tune_seed`, the lever budget); the best final validation metric wins. The
tuned baseline gets as many trials as those choices took: plain recipes (micro-batch, LR,
precision) drawn from a grid, the task's own first; the best final validation metric at the
full budget wins. Choices are deterministic (metrics, not times), made once per process
and recorded in every run's notes; `choices` passes them in (`hasten.bench.stack_plan`:
`save_choices`, `write_choices`; on the command line `--choices FILE`), so other processes
skip the trials.

The decision is by the measurement standard (`hasten.bench.stack_work`, plan
benchmarks/plans/stack-work.md): every arm evaluated at the same points of the tuned
baseline's examples (`same_work_eval`, the suite's prepare), its steps to the target times
its step cost from `scripts/iteration_cost.py`, plus its one-off seconds; no clocked second
of a shared machine enters it. `hasten.bench.stack_report` is the earlier reading, by
wall-clock time to target (a lever stays if removing it costs >= 5% on every seed), with
its ablation table and plot.

The earlier plan as commands (`hasten.bench.stack_plan`; each part pinned to its own core,
parts joined by `hasten report`; stack-sst2 / sst2-small the same, with the curriculum):

    # 0. choose the settings on the validation twin, once
    hasten bench stack --task fashion-stack-val --tune-only --out runs/stack-choices
    # 1. validation phase: which levers pay (tuned baseline, stack, stack-minus-X each)
    C=--choices=runs/stack-choices/choices.json
    A=tuned-baseline,stack,stack-minus-schedule,stack-minus-bf16
    B=stack-minus-batch,stack-minus-compile,stack-minus-infobatch,stack-minus-proxy
    taskset -c 0 env OMP_NUM_THREADS=1 hasten bench stack --task fashion-stack-val $C \
      --methods $A --seeds 3 --out runs/stack-val-a &
    taskset -c 1 env OMP_NUM_THREADS=1 hasten bench stack --task fashion-stack-val $C \
      --methods $B --baseline tuned-baseline --seeds 3 --out runs/stack-val-b; wait
    hasten report runs/stack-val-a/result.json runs/stack-val-b/result.json \
      --out runs/stack-val   # prints the levers kept: dropped if < 5% on every seed
    # 2. test phase: the kept levers and the choices, read from the validation record
    V=--levers-from=runs/stack-val/result.json
    taskset -c 0 env OMP_NUM_THREADS=1 hasten bench stack --task fashion-stack $V \
      --part levers --seeds 3 --out runs/stack-a &
    taskset -c 1 env OMP_NUM_THREADS=1 hasten bench stack --task fashion-stack $V \
      --part controls --seeds 3 --out runs/stack-b; wait
    hasten report runs/stack-a/result.json runs/stack-b/result.json --out runs/stack

Part `levers`: tuned-baseline, stack, stack-minus-X per kept lever; part `controls`: only-X
for every lever the validation phase weighed, baseline, baseline@F. `--set
'levers=["bf16","batch"]' $C` instead of `$V` names the levers by hand.

Where its result is shown: docs/benchmarks.md, "A lever stack at one budget: does not pass here".
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import TensorDataset

import hasten.bench.sst2  # noqa: F401  (registers the SST-2 tasks)
from hasten.bench.evidence import subset_until_final
from hasten.bench.harness import (
    TASKS,
    Recipe,
    Suite,
    lookup,
    register_method,
    register_suite,
    register_task,
    run_one,
    scale_budget,
    split_method,
)
from hasten.bench.selective import PROXY_STEPS
from hasten.bench.vision import _data, _recipe
from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainConfig, TrainState
from hasten.levers import (
    Bf16,
    Compile,
    Curriculum,
    InfoBatchLever,
    Lever,
    MicroBatch,
    SbProxy,
    Schedule,
    apply_levers,
)

LEVERS = ("schedule", "bf16", "batch", "compile", "curriculum", "infobatch", "proxy")


@dataclass
class StackOptions:
    """Settings of `hasten bench stack`."""

    task: str | None = option(None, "None: the suite's task (stack: fashion-stack, "
                              "stack-sst2: sst2-small); a validation twin for the lever "
                              "choice")
    levers: list[str] = option(list(LEVERS), "every lever; those a task lacks (curriculum "
                               "without a difficulty) are skipped")
    fraction: float = option(0.6, "lever runs train 60% of the baseline's examples: the goal "
                             "is the tuned baseline's quality in <= 0.6x its time")
    pays: float = option(0.05, "a lever stays if removing it costs >= 5% time to target on "
                         "every seed")
    tune_seed: int = option(0, "one seed for the validation trials (the plan's choice)")
    prune_ratio: float = option(0.5, "InfoBatch's r, the paper's default")
    anneal: float = option(0.875, "InfoBatch's delta, the paper's default")
    choices: dict = option({}, "settings already chosen ({'levers': {lever: candidate "
                           "index}, 'plain': {...}}); empty: chosen on the validation task",
                           flag=False)


# -----------------------------------------------------------------------------
# tasks: a cheap Fashion-MNIST ConvNet in plain fp32, and its validation twin


def _fashion(name: str, val: str):
    def task(seed: int, quick: bool) -> Recipe:
        data = _data(name)
        test = data.test if not quick else TensorDataset(*(t[:1000] for t in data.test.tensors))
        if quick:
            data = dataclasses.replace(data, train=TensorDataset(
                *(t[:2048] for t in data.train.tensors)))
        epochs = 1 if quick else 8
        cfg = TrainConfig(budget=f"{epochs * len(data.train)}ex", lr=2e-3, schedule="one-cycle",
                          schedule_params={"peak_at": 0.2}, micro_batch=256, weight_decay=0.05,
                          precision="fp32", eval_every=0.02)
        recipe = _recipe(data, test, "convnet3", cfg, seed, width=32, depth=2)
        recipe.notes.update(val_task=val, quick=quick, epochs=epochs)
        return recipe
    task.__doc__ = (f"{name}: ConvNet-3 (width 32, depth 2), 8 epochs, AdamW 2e-3, one-cycle, "
                    "fp32, evaluated every 2% (quick: 2,048 images, 1 epoch)")
    return task


register_task("fashion-stack")(_fashion("fashion-mnist", "fashion-stack-val"))
register_task("fashion-stack-val")(_fashion("fashion-mnist-val", "fashion-stack-val"))


# -----------------------------------------------------------------------------
# levers


def _schedule(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return Schedule(shape=s["name"], **s["params"])


def _bf16(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return Bf16()


def _batch(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return MicroBatch(size=max(1, round(recipe.config.micro_batch * s["scale"])))


class _ChargeCompile(Hook):
    """Charges the trainer's compile seconds (booked apart from training) to the run as
    overhead, so the compile lever pays only if it repays its own compilation."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.base = recipe, recipe.overhead_seconds

    def on_step_end(self, state: TrainState) -> None:
        compiled = state.budget.ledger.seconds.get("compile", 0.0)
        self.recipe.overhead_seconds = self.base + compiled
        self.recipe.notes["compile_seconds"] = compiled


def _compile(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return Compile()


def _curriculum(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return Curriculum(T=s["T_fraction"])


def _infobatch(recipe: Recipe, s: dict[str, Any]) -> Lever:
    return InfoBatchLever(prune=s["ratio"], anneal=s["anneal"])


def _proxy(recipe: Recipe, s: dict[str, Any]) -> Lever:
    # one epoch, at least PROXY_STEPS steps (a barely trained proxy picks a biased half);
    # quick runs: one epoch; the proxy trains at the task's learning rate
    quick = bool(recipe.notes.get("quick"))
    return SbProxy(min_steps=0 if quick else PROXY_STEPS)


LeverFn = Callable[[Recipe, dict[str, Any]], Lever]
StackLever = tuple[LeverFn, list[dict[str, Any]]]


def lever_table(options: StackOptions) -> dict[str, StackLever]:
    """Each lever's function and candidate settings (a list; one entry: nothing to choose)."""
    return {
        "schedule": (_schedule, [{"name": "one-cycle", "params": {"peak_at": 0.1}},
                                 {"name": "linear", "params": {"warmup": 0.05}},
                                 {"name": "cosine", "params": {"warmup": 0.05}}]),
        "bf16": (_bf16, [{}]),
        "batch": (_batch, [{"scale": 0.5}, {"scale": 0.25}]),
        "compile": (_compile, [{}]),
        "curriculum": (_curriculum, [{"T_fraction": 0.2}, {"T_fraction": 0.5}]),
        "infobatch": (_infobatch, [{"ratio": options.prune_ratio, "anneal": options.anneal}]),
        "proxy": (_proxy, [{}]),
    }


def applies(lever: str, recipe: Recipe) -> bool:
    """Whether `lever` can act on this task (the curriculum needs a difficulty, the proxy
    a small model)."""
    return {"curriculum": recipe.difficulty is not None,
            "proxy": recipe.proxy_model is not None}.get(lever, True)


# -----------------------------------------------------------------------------
# choosing settings on the validation twin

PLAIN_GRID = {"micro_batch": (256, 128, 64, 512), "lr_scale": (1.0, 0.5, 2.0),
              "precision": ("fp32", "bf16")}
_chosen: dict[str, dict[str, Any]] = {}


def plain_trials(k: int, seed: int = 0) -> list[dict[str, Any]]:
    """k plain recipes from PLAIN_GRID: the task's own (its batch relative 256, lr x1, fp32)
    first, then a seeded draw without replacement."""
    grid = [{"micro_batch": b, "lr_scale": s, "precision": p} for b in PLAIN_GRID["micro_batch"]
            for s in PLAIN_GRID["lr_scale"] for p in PLAIN_GRID["precision"]]
    first, rest = grid[0], grid[1:]
    order = np.random.default_rng(seed).permutation(len(rest))
    return [first] + [rest[i] for i in order[:max(0, k - 1)]]


def _plain(recipe: Recipe, plain: dict[str, Any]) -> None:
    cfg = recipe.config
    cfg.micro_batch = max(1, round(cfg.micro_batch * plain["micro_batch"] / 256))
    cfg.lr *= plain["lr_scale"]
    cfg.precision = plain["precision"]


def choose(recipe: Recipe, quick: bool, levers: list[str], plain: bool = False
           ) -> dict[str, Any]:
    """Chosen settings for `levers` (and the tuned plain recipe if `plain`): from
    `options.choices` where they cover what is asked, else from trials of every lever of
    the options on the task's validation twin (once per process)."""
    options: StackOptions = recipe.options or StackOptions()
    table = lever_table(options)
    given = options.choices or {}
    wanted = [x for x in levers if len(table[x][1]) > 1 and applies(x, recipe)]
    if all(x in given.get("levers", {}) for x in wanted) and (not plain or "plain" in given):
        return {"levers": dict(given.get("levers", {})), "plain": given.get("plain"),
                "trials": given.get("trials", [])}
    val = recipe.notes.get("val_task")
    if not val:
        raise ConfigError(f"task of {recipe.notes.get('dataset')!r} has no validation twin to "
                          "choose settings on; pass --set choices=...")
    multi = [x for x in options.levers if len(table[x][1]) > 1 and applies(x, recipe)]
    key = json.dumps([val, quick, dataclasses.asdict(options)], sort_keys=True, default=str)
    if key not in _chosen:
        _chosen[key] = _tune(val, quick, options, multi, table)
    return _chosen[key]


def _trial(val: str, method: str, quick: bool, options: StackOptions,
           choices: dict[str, Any], label: str) -> float:
    opts = dataclasses.replace(options, choices=choices)
    start = time.perf_counter()
    run, _ = run_one(val, method, options.tune_seed, quick, options=opts)
    print(f"  trial {label}: final {run['final']:.2f} ({time.perf_counter() - start:.0f} s)",
          flush=True)
    return float(run["final"])


def _tune(val: str, quick: bool, options: StackOptions, multi: list[str],
          table: dict[str, StackLever]) -> dict[str, Any]:
    trials: list[dict[str, Any]] = []
    levers: dict[str, int] = {}
    default_plain = plain_trials(1)[0]
    n = 2 * sum(len(table[x][1]) for x in multi)
    for x in multi:
        scores = []
        for k in range(len(table[x][1])):
            final = _trial(val, f"only-{x}", quick, options,
                           {"levers": {x: k}, "plain": default_plain},
                           f"{len(trials) + 1}/{n} {x} {json.dumps(table[x][1][k])}")
            trials.append({"kind": "lever", "lever": x, "candidate": k, "final": final})
            scores.append(final)
        levers[x] = int(np.argmax(scores))  # the first of equal bests
    best, best_final = default_plain, -np.inf
    for plain in plain_trials(len(trials), options.tune_seed):
        final = _trial(val, "tuned-baseline", quick, options, {"levers": {}, "plain": plain},
                       f"{len(trials) + 1}/{n} plain {json.dumps(plain)}")
        trials.append({"kind": "plain", **plain, "final": final})
        if final > best_final:
            best, best_final = plain, final
    return {"levers": levers, "plain": best, "trials": trials}


# -----------------------------------------------------------------------------
# methods


def apply_stack(recipe: Recipe, levers: list[str], quick: bool | None = None) -> Recipe:
    """The plain fp32 recipe at `fraction` of the budget with `levers` on, each at its
    chosen setting; what was applied goes to `recipe.notes["stack"]`."""
    options: StackOptions = recipe.options or StackOptions()
    recipe.options = options
    quick = bool(recipe.notes.get("quick")) if quick is None else quick
    table = lever_table(options)
    unknown = sorted(set(levers) - set(table))
    if unknown:
        raise ConfigError(f"unknown lever(s) {', '.join(unknown)}; known: {', '.join(LEVERS)}")
    picks = choose(recipe, quick, levers)
    recipe.config.precision, recipe.config.compile = "fp32", False
    recipe.config.budget = scale_budget(recipe.config.budget, options.fraction)
    applied, chosen = {}, []
    for x in LEVERS:  # the fixed order
        if x not in levers or not applies(x, recipe):
            continue
        fn, candidates = table[x]
        setting = candidates[picks["levers"].get(x, 0)]
        chosen.append(fn(recipe, setting))
        applied[x] = setting
    apply_levers(recipe, chosen)
    if "compile" in applied:
        recipe.hooks.append(_ChargeCompile(recipe))
    recipe.notes["stack"] = {"levers": applied, "fraction": options.fraction,
                             "skipped": [x for x in levers if x not in applied],
                             "choices": {x: picks["levers"][x] for x in applied
                                         if x in picks["levers"]}}
    return recipe


def _levers_in(recipe: Recipe) -> list[str]:
    return list((recipe.options or StackOptions()).levers)


# the tasks built for the stack (their validation twins choose the settings); a task of
# your own joins by adding its name and its twin's
STACK_TASKS = {"fashion-stack", "fashion-stack-val", "sst2-small", "sst2-small-val",
               "fashion-10k-w32", "fashion-10k-w32-val"}


@register_method("stack", applies=STACK_TASKS.__contains__)
def stack(recipe: Recipe) -> Recipe:
    """Every lever of the options at once, at `fraction` of the budget."""
    return apply_stack(recipe, _levers_in(recipe))


for _lever in LEVERS:
    register_method(f"only-{_lever}", applies=STACK_TASKS.__contains__)(
        lambda recipe, x=_lever: apply_stack(recipe, [x])).__doc__ = \
        f"The {_lever} lever alone, at `fraction` of the budget."
    register_method(f"stack-minus-{_lever}", applies=STACK_TASKS.__contains__)(
        lambda recipe, x=_lever: apply_stack(recipe, [y for y in _levers_in(recipe) if y != x])
    ).__doc__ = f"Every lever of the options but {_lever}, at `fraction` of the budget."


@register_method("tuned-baseline", applies=STACK_TASKS.__contains__)
def tuned_baseline(recipe: Recipe) -> Recipe:
    """The plain recipe (micro-batch, LR, precision) that scored best on the validation
    twin, at the full budget."""
    recipe.options = recipe.options or StackOptions()
    picks = choose(recipe, bool(recipe.notes.get("quick")), [], plain=True)
    _plain(recipe, picks["plain"])
    recipe.notes["stack"] = {"plain": picks["plain"], "trials": picks["trials"],
                             "choices": {"levers": picks["levers"], "plain": picks["plain"]}}
    return recipe


def methods_for(levers: list[str] | tuple[str, ...] = LEVERS, fraction: float = 0.6,
                curriculum: bool = False) -> list[str]:
    """The suite's runs for these levers (`curriculum`: whether the task has a difficulty):
    the tuned baseline first (the target), the plain baseline, the plain recipe at
    `fraction`, each lever alone, the stack, and the stack less each lever."""
    use = [x for x in levers if curriculum or x != "curriculum"]
    return (["tuned-baseline", "baseline", f"baseline@{fraction:g}", "stack"]
            + [f"only-{x}" for x in use] + [f"stack-minus-{x}" for x in use])


def stack_methods(task: str, options: StackOptions | None = None) -> list[str]:
    """`methods_for` the options' levers on `task` (for `hasten bench stack --task T`): the
    curriculum's rows only where the task has a difficulty (its quick recipe is built to
    tell)."""
    options = options or StackOptions()
    recipe = lookup("task", TASKS, task)(0, True)
    return methods_for(options.levers, options.fraction, applies("curriculum", recipe))


def same_work_eval(recipe: Recipe, method: str) -> Recipe:
    """The suite's `prepare`: every arm evaluated at the same points of the tuned baseline's
    examples, every 2% (a lever run, which trains `fraction` of them, every 2% / fraction of
    its own), on the first fifth of the test set where the task's evaluation can split it
    (the final evaluation on all of it), else on all of it (`hasten.bench.evidence`)."""
    options: StackOptions = recipe.options or StackOptions()
    levered = method == "stack" or method.startswith(("only-", "stack-minus-"))
    fraction = options.fraction if levered else split_method(method)[1]
    recipe.config.eval_every = min(1.0, 0.02 / fraction)
    if getattr(recipe.evaluate, "partial", None) is not None:
        recipe.evaluate = subset_until_final(recipe.evaluate, 5)
    recipe.notes["evaluation"] = {"every_baseline_work": 0.02, "fraction": fraction}
    return recipe


def _task_or(default: str) -> Callable[[Any], list[str]]:
    return lambda options: [getattr(options, "task", None) or default]


register_suite(Suite(
    name="stack", tasks=_task_or("fashion-stack"), methods=methods_for(), margin=0.2,
    options=StackOptions, prepare=same_work_eval,
    description="levers alone, together and each removed, against a tuned baseline"))
register_suite(Suite(
    name="stack-sst2", tasks=_task_or("sst2-small"), methods=methods_for(curriculum=True),
    margin=0.2, options=StackOptions, prepare=same_work_eval,
    description="the lever stack on SST-2 from scratch"))
