"""`hasten bench SUITE`: run a suite's tasks x methods x seeds, interleaved, into a results
record, a report and curves. `hasten bench SUITE --help` lists the suite's own options.

Every suite is a suite of the harness (`hasten.bench.harness`): `chaos` and the HF Trainer
comparison with their own runs, the pretraining tables (`mlm`, `electra`, `pretrain-ladder`)
with their own rows (pretrain, then evaluate; `Suite.own_rows`); the lever stack's plan
(`stack`, `stack-sst2`: settings chosen once, parts, the validation phase's lever choice;
`hasten.cli.bench_stack`) adds its settings. A suite's verdict (chaos: bit-identical or not)
sets the exit status. torch's threads are set to the cores the process may use (`taskset`
pins them) and recorded."""

from __future__ import annotations

import argparse
from typing import Any

from hasten.bench import harness
from hasten.bench.evidence import plan_stamp
from hasten.bench.harness import SUITES
from hasten.bench.pretrain import rich_table, write_results
from hasten.bench.suites import load_suites
from hasten.cli import bench_stack, common
from hasten.cli.bench_run import (
    BenchCommand,
    _tasks,
    open_out,
    print_verdict,
    report_results,
    run_planned,
)
from hasten.core.config import settings_help
from hasten.core.errors import ConfigError

NAME = "bench"
HELP = "run a benchmark suite (hasten list suites)"


def _suite_name(argv: list[str]) -> str | None:
    if len(argv) > 1 and argv[0] == NAME and not argv[1].startswith("-"):
        return argv[1]
    return None


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    name = _suite_name(argv)
    suite = None
    if name is not None:
        load_suites([name])
        suite = SUITES.get(name)
    own_rows = suite is not None and suite.own_rows is not None
    epilog = settings_help(BenchCommand)
    if suite is not None and not own_rows:
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
    common.add_settings(p, *classes, rename=bench_stack.RENAME if stack else None,
                        skip=bench_stack.SKIP if stack else (),
                        aliases=bench_stack.REPLACED if stack else None)
    if own_rows:
        p.add_argument("--corpus", nargs="+", help="text files or folders (default "
                                                   "$HASTEN_DATA/gutenberg-large)")
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
    flag = next((e for e in extras if e.startswith("--")), None)
    if flag is None:
        return None
    owners = []
    for suite in SUITES.values():
        fields = getattr(suite.options, "__dataclass_fields__", {})
        if flag[2:].replace("-", "_") in fields:
            owners.append(suite.name)
    if flag == "--corpus":
        owners += [s.name for s in SUITES.values() if s.own_rows is not None]
    if not owners:
        return None
    return f"bench {args.suite}: {flag} applies to the {' and '.join(owners)} suite" \
           f"{'s' if len(owners) > 1 else ''}, not {args.suite}"


def run(args: argparse.Namespace) -> int:
    load_suites([args.suite])
    if args.suite not in harness.SUITES:
        known = sorted(harness.SUITES)
        raise ConfigError(f"unknown suite {args.suite!r}; known: {', '.join(known)}")
    suite = harness.SUITES[args.suite]
    if suite.own_rows is not None:
        return _own_rows(args, suite)
    if suite.name in bench_stack.SUITES:
        return bench_stack.run(args, suite)
    classes = [BenchCommand] + ([suite.options] if suite.options else [])
    c, *rest = common.settle(classes, args, NAME)
    options = rest[0] if rest else None
    tasks = _tasks(c, suite, options)
    stamp = {"plan": plan_stamp(c.plan)} if c.plan else {}
    out = open_out(c, suite)
    harness.plan(suite, c.seeds, tasks, c.methods, c.first_seed, options)
    results = run_planned(c, suite, options, tasks, out, notes=stamp)
    return max(report_results(results, out, c.quiet), print_verdict(suite, results))


def _own_rows(args: argparse.Namespace, suite: harness.Suite) -> int:
    """A suite that runs its own rows (the pretraining tables: `Suite.own_rows`)."""
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
    out = common.check_out(c.out or f"runs/bench-{args.suite}", overwrite=c.overwrite,
                           own=common.HASTEN_FOLDER)
    legacy = argparse.Namespace(quick=c.quick, budget=c.budget, seeds=c.seeds, out=str(out),
                                methods=",".join(c.methods) if c.methods else None,
                                corpus=getattr(args, "corpus", None), quiet=c.quiet, **own)
    say = common.sayer(c.quiet) or (lambda line: None)
    threads = common.choose_threads()
    results, out_dir, title, notes = suite.own_rows(legacy, say)
    results.setdefault("status", "complete")
    paths = write_results(results, out_dir, title, notes)
    common.write_settings(out_dir, c, extra={
        "suite": args.suite, "options": results.get("options") or {}, "threads": threads,
        "corpus": legacy.corpus, "set": list(own["set"] or []), "config": own["config"]})
    if not c.quiet:
        common.print_tables([rich_table(results, title)])
    print(f"report: {paths['report']}  results: {paths['results']}")
    return print_verdict(suite, results)
