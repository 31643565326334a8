"""`hasten tune`: choose the levers for a task within a share of its budget; write
`choices.json` (for `hasten train --choices`, the HF and Lightning callbacks and `LeverLoop`),
`tune.md` (each lever: measured, decided, why) and `tune.json` into `--out`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from hasten.bench.harness import TASKS
from hasten.bench.own import task_name
from hasten.bench.suites import load_suites
from hasten.cli import common
from hasten.core.config import option, settings_help
from hasten.core.errors import ConfigError
from hasten.levers import parse_levers
from hasten.tuning.tuner import tune

NAME = "tune"
HELP = "choose the levers that pay on a task, within a share of its budget"


@dataclass
class TuneCommand:
    """`hasten tune`: every setting, each default with its reason."""

    task: str = field(metadata={"reason": "required", "flag": True, "help":
                                "a registered task (hasten list tasks), FILE.py:FUNCTION or "
                                "MODULE:FUNCTION returning a Recipe"})
    budget: str = field(metadata={"reason": "required", "flag": True, "help":
                                  "the whole budget, tuning included: a number and a unit s, "
                                  "m, h (wall clock; not steps, ex, tok or flop: the pilot "
                                  "share is a share of time)"})
    out: str = field(metadata={"reason": "required", "flag": True,
                               "help": "folder for choices.json, tune.md and tune.json"})
    pilot_share: float = option(0.1, "a tenth of the budget: the rest trains with the "
                                "choice", help="the share of --budget spent choosing "
                                "(start-up, timings, pilots), in (0, 1)")
    levers: list[str] = option([], "every lever the task supports (hasten list levers)",
                               flag=False)
    seed: int = option(0, "the pilots' data order and held-out rows")
    quick: bool = option(False, "the task's full recipe; --quick tunes its smoke-test recipe")
    resume: bool = option(False, "start fresh unless asked to carry on a stopped tune")
    overwrite: bool = option(False, "a finished tune is never replaced unless asked")
    quiet: bool = option(False, "a line per measurement")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__, epilog=settings_help(TuneCommand),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_settings(p, TuneCommand)
    p.add_argument("--lever", dest="levers", action="append", metavar="SPEC",
                   default=argparse.SUPPRESS,
                   help="a lever to consider, with its settings (repeat for several); "
                        "default every lever the task supports")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    (c,) = common.settle([TuneCommand], args, NAME)
    parse_levers(c.levers)
    out = common.check_out(c.out, overwrite=c.overwrite or c.resume,
                           own=common.HASTEN_FOLDER)
    finished = out / "choices.json"
    if finished.exists() and not (c.overwrite or c.resume):
        raise ConfigError(f"--out {out} holds a finished tune (choices.json): choose another "
                          "folder, or pass --overwrite")
    load_suites()
    task = task_name(c.task)
    common.write_settings(out, c)
    say = (lambda line: None) if c.quiet else (lambda line: print(line, flush=True))
    choices = tune(TASKS[task], c.budget, levers=c.levers or None, pilot_share=c.pilot_share,
                   out=out, quick=c.quick, seed=c.seed, resume=c.resume, say=say, task=task)
    print(f"{task}: chose {', '.join(choices['levers']) or 'the baseline'}; train with "
          f"`hasten train --task {c.task} --choices {finished}` (budget "
          f"{choices['train_budget']}); wrote {out}")
    return 0
