"""The lever stack's pre-registered plan as runs: which methods, in which part, with which
settings, and which levers the validation phase keeps.

The plan (the exact commands are in `hasten.bench.stack`'s docstring and
docs/what-pays-off.md):

1. choose settings once on the task's validation twin (`tune`: the levers' candidates, then
   as many plain trials for the tuned baseline) and save them (`save_choices`, a
   `choices.json` that other processes reuse with `--choices FILE`);
2. validation phase, on the twin: tuned-baseline, stack and stack-minus-X for every lever;
   `select_levers` (in `hasten.bench.stack_report`) drops a lever whose removal cost less
   than `pays` (5%) time to target on every validation seed;
3. test phase, on the task: tuned-baseline, the stack of the kept levers, stack-minus-X for
   each kept lever, only-X for every lever, baseline and baseline@F (`plan_methods`), split
   in two parts (`levers`, `controls`) for two cores and joined by `hasten report`.
   `from_validation` reads the validation record: its kept levers and its choices.

Where its result is shown: docs/benchmarks.md, "A lever stack at one budget: does not pass here".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hasten.bench import stack
from hasten.bench.harness import TASKS, build_recipe, lookup
from hasten.bench.stack import LEVERS, StackOptions
from hasten.bench.stack_report import select_levers
from hasten.core.atomic import atomic_write, read_json
from hasten.core.errors import ConfigError, DataError

CHOICES_FILE = "choices.json"
PARTS = ("all", "levers", "controls")
BASELINE = "tuned-baseline"


def plan_methods(task: str, options: StackOptions, part: str = "all",
                 every: Sequence[str] = LEVERS) -> list[str]:
    """The test phase's runs on `task`: part `levers` is the tuned baseline, the stack and
    the stack less each of its levers; part `controls` each lever of `every` alone (the
    levers the validation phase weighed, kept or not), the plain baseline and the plain
    recipe at `fraction` of its budget; `all` both. The curriculum's rows only where the
    task has a difficulty."""
    if part not in PARTS:
        raise ConfigError(f"part: {part!r} is not one of {', '.join(PARTS)}")
    recipe = lookup("task", TASKS, task)(0, True)
    usable = [x for x in LEVERS if stack.applies(x, recipe)]
    levers = ([BASELINE, "stack"]
              + [f"stack-minus-{x}" for x in usable if x in options.levers])
    controls = ([f"only-{x}" for x in usable if x in every]
                + ["baseline", f"baseline@{options.fraction:g}"])
    return {"all": levers + controls, "levers": levers, "controls": controls}[part]


def validation_twin(task: str) -> str:
    """The task its settings are chosen on (its recipe's notes name it)."""
    recipe = lookup("task", TASKS, task)(0, True)
    twin = recipe.notes.get("val_task")
    if not twin:
        raise ConfigError(f"task {task!r} has no validation twin to choose settings on")
    return str(twin)


def tune(task: str, quick: bool, options: StackOptions) -> dict[str, Any]:
    """The settings for `task`'s stack runs: `options.choices` where given, else chosen on
    its validation twin (`stack.choose`: each lever's candidates, then as many plain
    trials for the tuned baseline); {"levers", "plain", "trials"}."""
    recipe = build_recipe(task, "baseline", options.tune_seed, quick, options=options)
    return stack.choose(recipe, quick, list(options.levers), plain=True)


def choices_from(results: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a results dict's tuned-baseline runs were chosen with, with the trials
    that chose them, as the `choices` option (so later runs, e.g. other seeds on another
    core, skip the trials)."""
    for run in results.get("runs", []):
        if run.get("method") == BASELINE:
            notes = run["notes"]["stack"]
            return {**notes["choices"], "trials": list(notes.get("trials", []))}
    raise ConfigError("no tuned-baseline run in these results to take the choices from")


def save_choices(choices: Mapping[str, Any], path: str | Path) -> Path:
    """`choices` as a JSON config file (`--choices FILE`, or `--config FILE`), atomically."""
    body = json.dumps({"choices": dict(choices)}, indent=1) + "\n"
    atomic_write(Path(path), lambda fh: fh.write(body.encode("utf-8")))
    return Path(path)


def write_choices(results: Mapping[str, Any], path: str | Path) -> Path:
    """`choices_from(results)` saved to `path` (`save_choices`)."""
    return save_choices(choices_from(results), path)


def load_choices(path: str | Path) -> dict[str, Any]:
    """The choices in a file `save_choices` wrote; a one-line error when it is not one."""
    p = Path(path)
    body = read_json(p, "choices file")
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, dict) or not isinstance(choices.get("levers"), dict) \
            or "plain" not in choices:
        raise DataError(f"{p}: not a choices file (no 'choices' with 'levers' and 'plain')")
    return choices


def from_validation(results: Mapping[str, Any], task: str, options: StackOptions,
                    source: str) -> tuple[StackOptions, dict[str, Any]]:
    """`options` with the levers the validation record `results` kept (`select_levers` at
    `options.pays`) and, unless already given, its choices; and the selection, to record.
    The record must hold runs of `task`'s validation twin with stack-minus-X runs."""
    twin = validation_twin(task)
    tasks = {str(r.get("task")) for r in results.get("runs", [])}
    if twin not in tasks:
        raise ConfigError(f"{source} holds runs of {', '.join(sorted(tasks)) or 'nothing'}, "
                          f"not of {twin} (the validation twin of {task})")
    selection = select_levers(results, options.pays, twin)
    if not selection["kept"] and not selection["dropped"]:
        raise ConfigError(f"{source} has no stack-minus-X runs of {twin} to choose levers by")
    choices = options.choices or choices_from(
        {"runs": [r for r in results.get("runs", []) if r.get("task") == twin]})
    kept = [x for x in LEVERS if x in selection["kept"]]
    return dataclasses.replace(options, levers=kept, choices=choices), \
        {**selection, "source": source, "task": twin}


def is_validation(results: Mapping[str, Any], task: str) -> bool:
    """Whether `task`'s runs in `results` are on a validation twin (the task chooses its own
    settings)."""
    return any(r.get("task") == task and (r.get("notes") or {}).get("val_task") == task
               for r in results.get("runs", []))
