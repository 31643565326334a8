"""`hasten demo`: the quick `demo` suite on embedded data (fp32 vs bf16 autocast on digits
and MNIST-1D), its tables, a report and curves: about 12 minutes on a 2-core CPU without bf16
units, where autocast emulates bf16 and the bf16 arm runs about ten times slower than fp32."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from hasten.bench import harness
from hasten.bench.suites import load_suites
from hasten.cli import common
from hasten.cli.bench_run import report_results
from hasten.core.config import option, settings_help
from hasten.core.errors import ConfigError

NAME = "demo"
HELP = "quick suite on embedded data: fp32 vs bf16 autocast (minutes on 2 cores)"
DEMO_FILES = ("result.json", "report.md", "curves.png", "config.json")


@dataclass
class DemoCommand:
    """`hasten demo`: every setting, each default with its reason."""

    out: str = option("runs/demo", "beside other runs, out of the source tree's way",
                      help="the folder for result.json, report.md, curves.png, config.json")
    seeds: int = option(3, "three seeds: enough for a median and a range",
                        help="runs of each method on each task")
    overwrite: bool = option(False, "a folder holding anything is never replaced unless "
                             "asked", help="replace what --out holds (an earlier demo)")
    quiet: bool = option(False, "a line per run", help="no progress lines")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(DemoCommand),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_settings(p, DemoCommand)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    (c,) = common.settle([DemoCommand], args, NAME)
    if c.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {c.seeds}")
    out = common.check_out(c.out, empty=True, overwrite=c.overwrite)
    load_suites()
    threads = common.choose_threads()
    with common.replacing(out, DEMO_FILES):
        common.write_settings(out, c, extra={"threads": threads})
        results = harness.run_suite("demo", quick=True, seeds=c.seeds, out=out,
                                    progress=common.sayer(c.quiet),
                                    hooks=[common.progress_hook(c.quiet)],
                                    command=common.command_text(), notes={"threads": threads})
        return report_results(results, out, c.quiet)
