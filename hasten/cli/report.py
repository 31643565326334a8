"""`hasten report FILE...`: render results files (any layout ever written: see
`hasten.bench.records`); several files of one suite run in parts are joined first, and a
joined suite's rows that need every run (the prune suite's break-even trainings) are made
again. A lever stack's record also gets its ablation table, verdict and, on a validation
twin, the levers kept (with `--out`: stack.md and stack.png); an InfoBatch record its
pre-registered verdict, seed by seed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from hasten.bench import ladder_verdicts
from hasten.bench.dynprune import verdict_lines
from hasten.bench.harness import SUITES
from hasten.bench.records import load_record
from hasten.bench.report import merge_results, rich_tables, write_report
from hasten.bench.suites import load_suites
from hasten.cli import bench_stack, common
from hasten.core.config import option, settings_help

NAME = "report"
HELP = "render results files (old layouts too); join parts of one suite run apart"


@dataclass
class ReportCommand:
    """`hasten report`: every setting, each default with its reason."""

    files: list[str] = field(metadata={"reason": "required", "flag": False,
                                       "help": "results files (results.json or any file in "
                                               "benchmarks/results/)"})
    out: str | None = option(None, "None: print the tables only; a folder gets results.json, "
                                   "report.md and curves.png")
    quiet: bool = option(False, "print the tables")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(ReportCommand),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="results files")
    common.add_settings(p, ReportCommand, skip=("files",))
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    (c,) = common.settle([ReportCommand], args, NAME, fixed={"files": args.files})
    out = common.check_out(c.out) if c.out else None
    records = [load_record(p) for p in c.files]
    results = records[0] if len(records) == 1 else _joined(records)
    if not c.quiet:
        common.print_tables(rich_tables(results))
    if out is not None:
        paths = write_report(results, out)
        common.write_settings(out, c)
        print(f"report: {paths['report']}  results: {paths['results']}")
    if results.get("suite") == "infobatch":
        print("\n".join(verdict_lines(results)))
    if results.get("suite") == "pretrain-ladder":
        print("\n".join(ladder_verdicts.report_lines(results)))
    if results.get("suite") in bench_stack.SUITES:
        threshold = float((results.get("options") or {}).get("pays", 0.05))
        if out is not None:
            bench_stack.report_stack(results, out, threshold, tables=not c.quiet)
        else:
            bench_stack.print_stack(results, threshold, None, tables=not c.quiet)
    return 0


def _joined(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts of one suite run apart, joined; the suite's own after-run rows made again
    over every run (a registered suite's `after_run`)."""
    results = merge_results(records)
    load_suites()
    suite = SUITES.get(str(results.get("suite")))
    if suite is not None and suite.after_run is not None:
        suite.after_run(results)
    return results
