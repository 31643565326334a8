"""`hasten bench stack` (and `stack-sst2`): the lever stack's plan from the command line.

One task per run (`--task T`). The settings are chosen once on the task's validation twin
before any run and saved to `OUT/choices.json` (`--choices FILE` reuses a saved one,
`--tune-only` stops there; `--resume` reuses the folder's own); `--levers-from RESULTS`
takes the levers a validation record kept and its choices. Without `--methods`, the runs
are the plan's (`--part levers` or `controls` for one of two cores, the tuned baseline as
the baseline of both). After the runs: the report, `stack.md` and `stack.png`, the ablation
table and the verdict lines; on a validation twin, the levers the test phase keeps.
The plan's commands: `hasten.bench.stack`'s docstring and docs/what-pays-off.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasten.bench import harness, stack_plan
from hasten.bench.evidence import plan_line, plan_stamp
from hasten.bench.records import load_record
from hasten.bench.stack import LEVERS, StackOptions, lever_table
from hasten.bench.stack_report import select_levers, stack_table, verdict, write_stack_report
from hasten.cli import common
from hasten.cli.bench_run import BenchCommand, _tasks, open_out, report_results, run_planned
from hasten.core import stop
from hasten.core.config import option, settings_help, to_dict
from hasten.core.errors import ConfigError

SUITES = ("stack", "stack-sst2")
RENAME = {"choices_file": "choices"}  # the flag is --choices FILE
# one task per run: --task T (the suite's option); --tasks fails with one line naming it
SKIP = ("tasks",)
REPLACED = {"--tasks": "replaced_tasks"}


@dataclass
class StackCommand:
    """`hasten bench stack`: how the plan runs (beside the suite's options)."""

    choices_file: str | None = option(None, "None: chosen on the validation twin (on "
                                      "--resume: OUT/choices.json); a choices.json another "
                                      "run wrote skips the trials")
    levers_from: str | None = option(None, "None: the levers option; a validation "
                                     "result.json: the levers it kept (dropped: < pays on "
                                     "every seed) and its choices")
    part: str = option("all", "every run of the plan; levers: tuned-baseline, stack, "
                       "stack-minus-X; controls: only-X, baseline, baseline@F (one per core)",
                       choices=("all", "levers", "controls"))
    tune_only: bool = option(False, "run the plan; --tune-only writes OUT/choices.json and "
                             "stops")


def epilog() -> str:
    return settings_help(StackCommand).replace("settings (", "plan settings (", 1)


def run(args: argparse.Namespace, suite: Any) -> int:
    if getattr(args, "replaced_tasks", None) is not None:
        raise ConfigError(f"bench {suite.name} runs one task at a time: --tasks is replaced "
                          "by --task T")
    c, options, sc = common.settle([BenchCommand, StackOptions, StackCommand], args, "bench")
    stamp = {"plan": plan_stamp(c.plan)} if c.plan else {}  # a missing plan fails first
    tasks = _tasks(c, suite, options)
    if len(tasks) != 1:
        raise ConfigError(f"bench {suite.name} runs one task at a time (--task T), got "
                          f"{', '.join(tasks)}")
    task = tasks[0]
    out = open_out(c, suite)
    options, selection = _resolve(options, sc, task, out, c.resume)
    methods, baseline = _methods(c, sc, task, options, selection)
    harness.plan(suite, c.seeds, tasks, methods, c.first_seed, options)
    if sc.tune_only or any(not m.startswith("baseline") for m in methods):
        options = _choose(task, c.quick, options, out, c.quiet)
    if sc.tune_only:
        common.write_settings(out, c, sc, extra={"suite": suite.name,
                                                 "options": to_dict(options)})
        return 0
    notes = {"stack_plan": {"part": sc.part, "levers": list(options.levers),
                            "selection": selection, "choices_file": sc.choices_file},
             **stamp}
    results = run_planned(c, suite, options, tasks, out, methods, baseline, (sc,), notes)
    code = report_results(results, out, c.quiet)
    report_stack(results, out, options.pays, tables=not c.quiet)
    return code


def _resolve(options: Any, sc: StackCommand, task: str, out: Path, resume: bool
             ) -> tuple[Any, dict[str, Any] | None]:
    """The options with the given choices and levers filled in; the validation record's
    lever selection (None without --levers-from)."""
    saved = out / stack_plan.CHOICES_FILE
    path = sc.choices_file or (saved if resume and saved.is_file() else None)
    if path is not None:
        if options.choices:
            raise ConfigError("choices are given twice: --choices FILE and --set choices")
        options = dataclasses.replace(options, choices=stack_plan.load_choices(path))
    if sc.levers_from is None:
        return options, None
    if list(options.levers) != list(LEVERS):
        raise ConfigError("--levers-from chooses the levers; drop --levers / --set levers")
    return stack_plan.from_validation(load_record(sc.levers_from), task, options,
                                      sc.levers_from)


def _methods(c: Any, sc: StackCommand, task: str, options: Any,
             selection: dict[str, Any] | None) -> tuple[list[str], str]:
    """The runs and the baseline: --methods as given, else the plan's part (each lever
    alone: the levers the validation record weighed, else every lever)."""
    if c.methods:
        if sc.part != "all":
            raise ConfigError("--part picks the plan's runs; drop it or --methods")
        return list(c.methods), c.baseline or c.methods[0]
    every = selection["kept"] + selection["dropped"] if selection else list(LEVERS)
    return (stack_plan.plan_methods(task, options, sc.part, every),
            c.baseline or stack_plan.BASELINE)


def _choose(task: str, quick: bool, options: Any, out: Path, quiet: bool) -> Any:
    """The options with their choices: chosen on the validation twin unless given, saved to
    OUT/choices.json at once (other processes reuse it with --choices)."""
    say = common.sayer(quiet)
    if not options.choices and say is not None:
        say(f"choosing settings on the validation twin of {task}")
    choices = stack_plan.tune(task, quick, options)
    stop.check("the settings were not all chosen; nothing saved")
    path = stack_plan.save_choices(choices, out / stack_plan.CHOICES_FILE)
    table = lever_table(options)
    levers = "; ".join(f"{x} {json.dumps(table[x][1][k])}" for x, k in
                       choices["levers"].items()) or "none to choose"
    print(f"choices: levers {levers}; plain {choices['plain']}; {len(choices['trials'])} "
          f"trials; wrote {path} (other processes: --choices {path})", flush=True)
    return dataclasses.replace(options, choices=choices)


BY_WORK = "scripts/stack_verdict.py QUALITY.json COSTS.json --margin M, the plan's rule"


def report_stack(results: dict[str, Any], out: Path, threshold: float = 0.05,
                 tables: bool = True) -> None:
    """stack.md and stack.png into `out`, then `print_stack`."""
    paths = write_stack_report(results, out, threshold)
    print_stack(results, threshold, out / "result.json", tables)
    print(f"stack report: {paths['table']}  plot: {paths['plot']}", flush=True)


def print_stack(results: dict[str, Any], threshold: float, record: Path | None,
                tables: bool = True) -> None:
    """Per task: the ablation table (with `tables`), the verdict and, on a validation twin,
    the levers the test phase keeps (`record`: the results file to pass as --levers-from)."""
    tasks = list(dict.fromkeys(str(r["task"]) for r in results.get("runs", [])))
    print(plan_line(results), flush=True)
    for task in tasks:
        if tables:
            print(f"\n{task}\n\n{stack_table(results, threshold, task)}")
        v = verdict(results, threshold=threshold, task=task)
        rel = v["relative_time"]
        print(f"verdict: {'PASS' if v['pass'] else 'FAIL'} by wall clock on this machine "
              f"(load counts; by work and step cost: {BY_WORK}): the stack's median relative "
              f"time {'never reached' if rel == float('inf') else f'{rel:.2f}'} (pass <= "
              f"{v['max_relative']:g}); levers that pay on every seed: "
              f"{', '.join(v['kept']) or 'none'}; that do not: "
              f"{', '.join(v['not_paying']) or 'none'}")
        if stack_plan.is_validation(results, task):
            s = select_levers(results, threshold, task)
            where = (f"--levers-from {record}" if record is not None else
                     "write this record with --out, then --levers-from OUT/result.json")
            print(f"validation lever choice by wall clock (dropped: removing it cost < "
                  f"{threshold:.0%} on every seed): keep {', '.join(s['kept']) or 'none'}; drop "
                  f"{', '.join(s['dropped']) or 'none'}; test phase: {where}", flush=True)
