"""What every `hasten bench` suite shares: its settings (`BenchCommand`), the output folder
checked before any work, the run of a planned suite into it, and the report at the end."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasten.bench import harness, report
from hasten.bench.harness import RESULTS_FILE, suite_tasks
from hasten.bench.own import task_name
from hasten.bench.records import load_record
from hasten.cli import common
from hasten.core.budget import parse_budget
from hasten.core.config import option, to_dict
from hasten.core.errors import ConfigError, HastenError


@dataclass
class BenchCommand:
    """`hasten bench`: every setting, each default with its reason."""

    quick: bool = option(False, "full budgets: the measurement; --quick is a smoke test")
    seeds: int = option(1, "one seed per task and method; three or more back a claim")
    first_seed: int = option(0, "seeds FIRST..FIRST+SEEDS-1: parts run apart join with "
                                "`hasten report`")
    budget: str | None = option(None, "None: each task's own budget, e.g. 90s or 2000steps "
                                      "overrides every task's")
    tasks: list[str] | None = option(None, "None: the suite's tasks; a comma list, your own "
                                           "as FILE.py:FUNCTION or MODULE:FUNCTION")
    methods: list[str] | None = option(None, "None: the suite's methods; the first listed "
                                             "is the baseline")
    baseline: str | None = option(None, "None: the first method; name it when a part runs "
                                        "without it (join the parts with `hasten report`)")
    out: str | None = option(None, "None: runs/bench-SUITE")
    resume: bool = option(False, "start over unless asked to carry on a stopped record")
    overwrite: bool = option(False, "a finished record is never replaced unless asked")
    repeat_flagged: bool = option(False, "a run timed on a busy machine is flagged in the "
                                  "report; --repeat-flagged runs it once more, keeping the "
                                  "second")
    quiet: bool = option(False, "a line per run, and off a terminal a line every 30 s")
    plan: str | None = option(None, "exploratory runs", help="the plan file these runs "
                              "follow (benchmarks/plans/): its path, hash and commit are "
                              "recorded, and a plan committed before the first run lets "
                              "hasten report print the verdict")


def open_out(c: BenchCommand, suite: Any) -> Path:
    """The output folder, checked before any work (a finished record needs --overwrite),
    once the budget is known to parse (config.json is written there next)."""
    if c.budget is not None:
        parse_budget(c.budget)
    out = common.check_out(c.out or f"runs/bench-{suite.name}", overwrite=c.overwrite,
                           own=common.HASTEN_FOLDER)
    _check_record(out, c)
    return out


def run_planned(c: BenchCommand, suite: Any, options: Any, tasks: list[str], out: Path,
                methods: list[str] | None = None, baseline: str | None = None,
                settings: tuple[Any, ...] = (), notes: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Choose the threads, write config.json (`c`, `settings` and the suite's options),
    run the suite into `out`; the record. `methods` and `baseline` default to `c`'s."""
    threads = common.choose_threads()
    common.write_settings(out, c, *settings, extra={
        "suite": suite.name, "options": to_dict(options) if options else {},
        "threads": threads})
    return harness.run_suite(
        suite.name, quick=c.quick, seeds=c.seeds, budget=c.budget, tasks=tasks,
        methods=methods or c.methods, progress=common.sayer(c.quiet), quiet=c.quiet,
        first_seed=c.first_seed, baseline=baseline or c.baseline, options=options, out=out,
        resume=c.resume, hooks=[common.progress_hook(c.quiet)],
        command=common.command_text(), notes={"threads": threads, **(notes or {})},
        repeat_flagged=c.repeat_flagged)


def _tasks(c: BenchCommand, suite: Any, options: Any) -> list[str]:
    """The tasks to run: the listed ones (own tasks loaded), else the suite's."""
    if c.tasks:
        return [task_name(t) for t in c.tasks]
    return suite_tasks(suite, options)


def _check_record(out: Path, c: BenchCommand) -> None:
    """Records are written once: a folder with one needs --overwrite (or --resume)."""
    path = out / RESULTS_FILE
    if c.resume and not out.is_dir():
        raise ConfigError(f"cannot resume: {out} does not exist")
    if c.resume and not path.is_file() and (out / "results.json").is_file():
        raise ConfigError(f"--resume: {out} holds results.json, the record's name before it "
                          f"became {RESULTS_FILE}: rename it to {RESULTS_FILE} to carry on")
    if c.resume and not path.is_file():
        print(f"no record in {out} yet; starting fresh", file=sys.stderr)
    if not path.is_file() or c.overwrite or c.resume:
        return

    try:
        status = load_record(path).get("status", "complete")
    except HastenError:
        status = "complete"
    if status == "complete":
        raise ConfigError(f"--out {out} holds a finished record; records are never "
                          "replaced: choose another folder, or pass --overwrite")
    raise ConfigError(f"--out {out} holds a {status} record; pass --resume to run the rest, "
                      "or --overwrite to start over")


def print_verdict(suite: Any, results: dict[str, Any]) -> int:
    """Print the suite's verdict lines (if it has a verdict); its exit status, else 0."""
    if suite is None or suite.verdict is None:
        return 0
    code, lines = suite.verdict(results)
    if lines:
        print("\n".join(lines), flush=True)
    return int(code)


def report_results(results: dict[str, Any], out: Path, quiet: bool) -> int:
    paths = report.write_report(results, out)
    if not quiet:
        common.print_tables(report.rich_tables(results))
    print(f"report: {paths['report']}  curves: {paths['curves']}  "
          f"results: {paths['results']}", flush=True)
    cut = [r for r in results.get("runs", []) if r.get("stopped") == "nonfinite"]
    if cut:
        return common.nonfinite_exit(", ".join(f"{r['task']} / {r['method']} / seed "
                                               f"{r['seed']}" for r in cut))
    return 0
