"""`hasten bench SUITE`: run a suite's tasks x methods x seeds, interleaved, into a results
record, a report and curves. `hasten bench SUITE --help` lists the suite's own options.

Besides the harness's suites: the pretraining tables (`mlm`, `electra`, `pretrain-ladder`,
their own runner), `chaos` (kill a run at random moments and resume it,
`hasten.cli.bench_chaos`), and the lever stack's plan (`stack`, `stack-sst2`: settings chosen
once, parts, the validation phase's lever choice; `hasten.cli.bench_stack`). torch's threads
are set to the cores the process may use (`taskset` pins them) and recorded."""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasten.cli import common
from hasten.config import option, settings_help
from hasten.errors import ConfigError, HastenError

NAME = "bench"
HELP = "run a benchmark suite (hasten list suites)"
# tables of pretraining runs scored on GLUE (module with run(args, say)), until they move
# into the harness
PRETRAIN_SUITES = {"mlm": "hasten.bench.mlm", "electra": "hasten.bench.electra",
                   "pretrain-ladder": "hasten.bench.ladder"}
# suites with their own settings and runner: module with HELP, add_settings(parser), run(args)
OWN_SUITES = {"chaos": "hasten.cli.bench_chaos"}


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


def _suite_name(argv: list[str]) -> str | None:
    if len(argv) > 1 and argv[0] == NAME and not argv[1].startswith("-"):
        return argv[1]
    return None


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    from hasten.cli import bench_stack

    name = _suite_name(argv)
    suite = None
    if name in OWN_SUITES:
        return _own_parser(sub, importlib.import_module(OWN_SUITES[name]))
    if name is not None and name not in PRETRAIN_SUITES:
        from hasten.bench.harness import SUITES
        from hasten.bench.suites import load_suites

        load_suites()
        suite = SUITES.get(name)
    epilog = settings_help(BenchCommand)
    if suite is not None:
        epilog += _suite_epilog(suite)
    stack = name in bench_stack.SUITES
    if stack:
        epilog += "\n" + bench_stack.epilog()
    p = sub.add_parser(NAME, help=HELP, description=__doc__, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help="a suite (hasten list suites); `hasten bench SUITE --help` "
                                 "shows its options")
    classes = [BenchCommand] + ([suite.options] if suite and suite.options else [])
    if stack:
        classes.append(bench_stack.StackCommand)
    common.add_settings(p, *classes, rename=bench_stack.RENAME if stack else None)
    if name in PRETRAIN_SUITES:
        p.add_argument("--corpus", nargs="+", help="text files or folders (default "
                                                   "$HASTEN_DATA/gutenberg)")
    p.set_defaults(run=run)
    return p


def _own_parser(sub: Any, module: Any) -> argparse.ArgumentParser:
    """`hasten bench NAME` for a suite with its own settings (not the harness's)."""
    p = sub.add_parser(NAME, help=HELP, description=module.__doc__, epilog=module.epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help="a suite (hasten list suites)")
    module.add_settings(p)
    p.set_defaults(run=run)
    return p


def _suite_epilog(suite: Any) -> str:
    tasks = suite.tasks if isinstance(suite.tasks, list) else ["chosen by its options"]
    text = (f"\n\nsuite {suite.name}: {suite.description}\n  tasks: {', '.join(tasks)}\n"
            f"  methods: {', '.join(suite.methods)}")
    if suite.options is not None:
        text += "\n" + settings_help(suite.options).replace("settings (", "suite options (", 1)
    return text


def unknown_hint(args: argparse.Namespace, extras: list[str]) -> str | None:
    """For a flag this suite lacks: which suites have it."""
    from hasten.bench.harness import SUITES

    flag = next((e for e in extras if e.startswith("--")), None)
    if flag is None:
        return None
    owners = []
    for suite in SUITES.values():
        fields = getattr(suite.options, "__dataclass_fields__", {})
        if flag[2:].replace("-", "_") in fields:
            owners.append(suite.name)
    if flag == "--corpus":
        owners += list(PRETRAIN_SUITES)
    if not owners:
        return None
    return f"bench {args.suite}: {flag} applies to the {' and '.join(owners)} suite" \
           f"{'s' if len(owners) > 1 else ''}, not {args.suite}"


def run(args: argparse.Namespace) -> int:
    from hasten.bench import harness
    from hasten.bench.suites import load_suites
    from hasten.cli import bench_stack

    load_suites()
    if args.suite in PRETRAIN_SUITES:
        return _pretrain(args)
    if args.suite in OWN_SUITES:
        return int(importlib.import_module(OWN_SUITES[args.suite]).run(args))
    if args.suite not in harness.SUITES:
        known = sorted({*harness.SUITES, *PRETRAIN_SUITES, *OWN_SUITES})
        raise ConfigError(f"unknown suite {args.suite!r}; known: {', '.join(known)}")
    suite = harness.SUITES[args.suite]
    if suite.name in bench_stack.SUITES:
        return bench_stack.run(args, suite)
    classes = [BenchCommand] + ([suite.options] if suite.options else [])
    c, *rest = common.settle(classes, args, NAME)
    options = rest[0] if rest else None
    tasks = _tasks(c, suite, options)
    out = open_out(c, suite)
    harness.plan(suite, c.seeds, tasks, c.methods, c.first_seed, options)
    results = run_planned(c, suite, options, tasks, out)
    return report_results(results, out, c.quiet)


def open_out(c: BenchCommand, suite: Any) -> Path:
    """The output folder, checked before any work (a finished record needs --overwrite)."""
    out = common.check_out(c.out or f"runs/bench-{suite.name}")
    _check_record(out, c)
    return out


def run_planned(c: BenchCommand, suite: Any, options: Any, tasks: list[str], out: Path,
                methods: list[str] | None = None, baseline: str | None = None,
                settings: tuple[Any, ...] = (), notes: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Choose the threads, write config.json (`c`, `settings` and the suite's options),
    run the suite into `out`; the record. `methods` and `baseline` default to `c`'s."""
    from hasten.bench import harness
    from hasten.config import to_dict

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
    from hasten.bench.harness import suite_tasks
    from hasten.bench.own import task_name

    if c.tasks:
        return [task_name(t) for t in c.tasks]
    return suite_tasks(suite, options)


def _check_record(out: Path, c: BenchCommand) -> None:
    """Records are written once: a folder with one needs --overwrite (or --resume)."""
    from hasten.bench.harness import RESULTS_FILE

    path = out / RESULTS_FILE
    if c.resume and not out.is_dir():
        raise ConfigError(f"cannot resume: {out} does not exist")
    if c.resume and not path.is_file():
        print(f"no record in {out} yet; starting fresh", file=sys.stderr)
    if not path.is_file() or c.overwrite or c.resume:
        return
    from hasten.bench.records import load_record

    try:
        status = load_record(path).get("status", "complete")
    except HastenError:
        status = "complete"
    if status == "complete":
        raise ConfigError(f"--out {out} holds a finished record; records are never "
                          "replaced: choose another folder, or pass --overwrite")
    raise ConfigError(f"--out {out} holds a {status} record; pass --resume to run the rest, "
                      "or --overwrite to start over")


def report_results(results: dict[str, Any], out: Path, quiet: bool) -> int:
    from hasten.bench import report

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


def _pretrain(args: argparse.Namespace) -> int:
    """The mlm and electra tables (their own runner)."""
    from hasten.bench.pretrain import rich_table, write_results

    # --set and --config hold the suite's own settings (e.g. LadderOptions): they go to it
    own = {"set": getattr(args, "set", None), "config": getattr(args, "config", None)}
    (c,) = common.settle([BenchCommand], argparse.Namespace(
        **{k: v for k, v in vars(args).items() if k not in own}), NAME)
    if c.tasks or c.first_seed or c.baseline:
        raise ConfigError(f"bench {args.suite}: --tasks, --pair, --distill-budget, "
                          "--first-seed and --baseline do not apply (rows are chosen with "
                          "--methods)")
    if c.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {c.seeds}")
    out = common.check_out(c.out or f"runs/bench-{args.suite}")
    legacy = argparse.Namespace(quick=c.quick, budget=c.budget, seeds=c.seeds, out=str(out),
                                methods=",".join(c.methods) if c.methods else None,
                                corpus=getattr(args, "corpus", None), quiet=c.quiet, **own)
    say = common.sayer(c.quiet) or (lambda line: None)
    module = importlib.import_module(PRETRAIN_SUITES[args.suite])
    threads = common.choose_threads()
    results, out_dir, title, notes = module.run(legacy, say)
    paths = write_results(results, out_dir, title, notes)
    common.write_settings(out_dir, c, extra={
        "suite": args.suite, "options": results.get("options") or {}, "threads": threads,
        "corpus": legacy.corpus, "set": list(own["set"] or []), "config": own["config"]})
    if not c.quiet:
        common.print_tables([rich_table(results, title)])
    print(f"report: {paths['report']}  results: {paths['results']}")
    return 0
