"""`hasten glue MODEL_DIR`: fine-tune and score a transformers model folder on GLUE-small
(CoLA, SST-2, MRPC, STS-B, RTE); the median over fine-tuning seeds per task."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hasten.cli import common
from hasten.core.checks import check_model_folder
from hasten.core.config import option, settings_help
from hasten.core.errors import ConfigError
from hasten.pretrain.glue import GlueSettings, evaluate_glue, parse_tasks

NAME = "glue"
HELP = "fine-tune and score a model folder on GLUE-small (CoLA, SST-2, MRPC, STS-B, RTE)"
RESULTS_FILE = "glue.json"
WHAT = {
    "lr": "AdamW's learning rate",
    "betas": "AdamW's betas, two numbers",
    "eps": "AdamW's epsilon",
    "weight_decay": "AdamW's weight decay",
    "batch": "examples per optimizer step",
    "epochs": "passes over each task's training set",
    "warmup": "the fraction of the steps warming up before the cosine decay",
    "max_len": "tokens per example (longer ones are cut)",
    "pooling": "ModernBERT's head: cls or mean",
    "max_train_examples": "training examples per task (a fixed subsample)",
    "max_eval_examples": "dev examples per task (a fixed subsample)",
    "eval_batch": "examples per evaluation batch",
    "extra": "notes kept with the settings, a table",
}


@dataclass
class GlueCommand:
    """`hasten glue`: the settings beside `GlueSettings`' (one for every task)."""

    model_dir: str = field(metadata={"reason": "required", "flag": False,
                                     "help": "a transformers model folder (e.g. hasten cram's "
                                             "model/)"})
    tasks: str | None = option(None, "None: all five", help="the tasks to score, a comma "
                               "list of cola, sst2, mrpc, stsb, rte")
    seeds: int = option(5, "Cramming reports the median of 5 fine-tuning seeds",
                        help="fine-tuning runs per task (the median is reported)")
    jobs: int = option(1, "one task at a time: every core to each",
                       help="tasks fine-tuned at once, in parallel processes")
    out: str | None = option(None, "None: print the scores only",
                             help=f"a folder for {RESULTS_FILE} and config.json")
    overwrite: bool = option(False, "a folder holding anything is never replaced unless "
                             "asked", help="write into a non-empty --out folder")
    quiet: bool = option(False, "a line per task unless asked for silence",
                         help="no progress lines")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(GlueCommand) + "\n" + settings_help(GlueSettings),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="a transformers model folder (e.g. hasten cram's model/)")
    common.add_settings(p, GlueCommand, GlueSettings, skip=("model_dir",),
                        rename={"batch": "batch-size"}, aliases={"--batch": "batch"},
                        what=WHAT)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    c, s = common.settle([GlueCommand, GlueSettings], args, NAME,
                         fixed={"model_dir": args.model_dir})
    if c.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {c.seeds}")
    if c.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {c.jobs}")
    parse_tasks(c.tasks)
    s.validate()
    check_model_folder(c.model_dir)
    out = common.check_out(c.out, empty=True, overwrite=c.overwrite) if c.out else None
    settings = {k: v for k, v in dataclasses.asdict(s).items()
                if k not in ("epochs", "max_train_examples")}
    summary = evaluate_glue(c.model_dir, tasks=c.tasks, seeds=c.seeds, epochs=s.epochs,
                            max_train_examples=s.max_train_examples, jobs=c.jobs,
                            out=out / RESULTS_FILE if out else None, quiet=c.quiet,
                            **settings)
    if out is not None:
        common.write_settings(out, c, s)
    for task, r in summary["tasks"].items():
        print(f"{task:5s} {r['metric']:8s} {r['score']:6.2f}")
    print(f"average        {summary['average']:6.2f}  (median of {c.seeds} seed(s) per task)"
          + (f"; wrote {out}" if out else ""))
    return 0
