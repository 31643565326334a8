"""`hasten train`: one training run of a task (registered, or your own), resumable, under
torchrun too; optionally on data hasten wrote (`--data`: a pruned or distilled set)."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import save_model

from hasten.bench.harness import build_recipe, train_recipe
from hasten.bench.own import task_name, training_set, use_training_set
from hasten.bench.records import write_record
from hasten.bench.suites import load_suites
from hasten.cli import common
from hasten.core import stop
from hasten.core.atomic import atomic_write
from hasten.core.budget import parse_budget
from hasten.core.checkpoint import checkpoint_steps
from hasten.core.config import option, settings_help
from hasten.core.distributed import resolve_device, shutdown
from hasten.core.errors import ConfigError
from hasten.core.resume import CHECKPOINTS
from hasten.levers import apply_levers, parse_levers, read_choices

NAME = "train"
HELP = "one training run of a task (yours too: --task FILE.py:FUNCTION)"
WHAT = {
    "out": "the run's folder: checkpoints, metrics.jsonl, model.safetensors, result.json",
    "method": "the method applied to the task's recipe (hasten list methods)",
    "data": "train on this data instead of the task's own: a pruned data.npz (or its "
            "folder), a distilled .safetensors set (or its folder) or an HF save_to_disk "
            "folder",
    "quick": "train the task's smoke-test version (tiny data, a short budget)",
    "batch_size": "examples per forward pass per process (a micro-batch)",
    "lr": "the peak learning rate",
    "on_nonfinite": "what a NaN or Inf loss or gradient does: stop, skip (drop that step) or "
                    "rollback (reload the last checkpoint at half the LR)",
    "allow_budget_change": "let a --resume run to another --budget (the schedule reshapes; "
                           "the change is logged)",
}
# what a run writes in its folder (`--overwrite` replaces these, nothing else)
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINTS, "model.safetensors", "result.json",
             "tb")


@dataclass
class TrainCommand:
    """`hasten train`: every setting, each default with its reason."""

    task: str = field(metadata={"reason": "required", "flag": True, "help":
                                "a registered task (hasten list tasks), FILE.py:FUNCTION or "
                                "MODULE:FUNCTION returning a Recipe"})
    out: str = field(metadata={"reason": "required", "flag": True,
                               "help": "the run folder: checkpoints, logs, weights, result"})
    method: str = option("baseline", "the task's own recipe")
    choices: str | None = option(None, "no tuned levers", help="a choices.json from hasten "
                                 "tune: its levers are added and, without --budget, the run "
                                 "trains for the budget its tuning left")
    levers: list[str] = option([], "the task's own recipe", flag=False,
                               help="levers applied after --method, in list order")
    data: str | None = option(None, "None: the task's own training set; else a pruned "
                                    "data.npz (or its folder), a distilled .safetensors set "
                                    "(or its folder) or an HF save_to_disk folder")
    budget: str | None = option(None, "None: the task's own budget (in examples or steps: "
                                      "the same work on every machine)")
    seed: int = option(0, "one fixed draw; vary it to measure the spread")
    quick: bool = option(False, "the task's full recipe; --quick is a smoke test")
    resume: bool = option(False, "start fresh unless asked")
    overwrite: bool = option(False, "a folder holding a run (or anything else) is never "
                             "replaced unless asked")
    checkpoint_every: int = option(0, "0: checkpoint only on SIGTERM/SIGINT (and resume "
                                      "from there)")
    batch_size: int | None = option(None, "None: the task's examples per micro-batch per "
                                          "process")
    precision: str | None = option(None, "None: the task's", choices=(None, "fp32", "bf16"))
    lr: float | None = option(None, "None: the task's peak learning rate")
    compile: bool = option(False, "eager: compiling pays off only on long runs")
    on_nonfinite: str = option("stop", "a NaN/Inf loss or gradient stops the run with the "
                               "last good checkpoint; skip: drop that step; rollback: reload "
                               "the last checkpoint at half the LR",
                               choices=("stop", "skip", "rollback"))
    keep_checkpoints: int = option(2, "the newest and one to fall back on if it is damaged")
    allow_budget_change: bool = option(False, "a resume with another budget is refused "
                                       "unless asked for (the change is logged)")
    device: str | None = option(None, "None: CUDA when available, else the CPU")
    quiet: bool = option(False, "a progress bar on a terminal, a line every 30 s off one")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(TrainCommand),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_settings(p, TrainCommand, aliases={"--micro-batch": "batch_size"}, what=WHAT)
    p.add_argument("--lever", dest="levers", action="append", metavar="SPEC",
                   default=argparse.SUPPRESS,
                   help="a lever and its settings, e.g. infobatch:prune=0.3 or sb-topk "
                        "(repeat for a list; hasten list levers); default none: the task's "
                        "own recipe")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    (c,) = common.settle([TrainCommand], args, NAME)
    if c.choices:
        chosen = read_choices(c.choices)
        c.levers = [*chosen["levers"], *c.levers]
        c.budget = c.budget or chosen.get("train_budget")
    parse_levers(c.levers)  # a bad lever spec is refused before any work
    if c.device is not None:
        resolve_device(c.device)
    if c.budget is not None:
        parse_budget(c.budget)
    out = check_run_folder(c)
    load_suites()
    task = task_name(c.task)
    data = training_set(c.data) if c.data else None
    overrides: dict[str, Any] = {"out_dir": str(out), "resume": c.resume,
                                 "checkpoint_every": c.checkpoint_every,
                                 "progress_every": common.PROGRESS_EVERY}
    for key, value in (("micro_batch", c.batch_size), ("precision", c.precision),
                       ("lr", c.lr), ("device", c.device)):
        if value is not None:
            overrides[key] = value
    if c.compile:
        overrides["compile"] = True
    overrides.update(on_nonfinite=c.on_nonfinite, keep_checkpoints=c.keep_checkpoints,
                     allow_budget_change=c.allow_budget_change)
    try:
        recipe = build_recipe(task, c.method, c.seed, c.quick, c.budget, quiet=c.quiet)
        if c.levers:
            apply_levers(recipe, [s for spec in c.levers for s in spec.split("+")])
        if data is not None:
            recipe = use_training_set(recipe, data, str(c.data))
        label = "+".join([c.method] * (c.method != "baseline" or not c.levers) + c.levers)
        with common.replacing(out, () if c.resume else RUN_FILES):
            result, model = train_recipe(recipe, task, label,
                                         hooks=[common.progress_hook(c.quiet)], **overrides)
    finally:
        shutdown()
    return _finish(c, out, result, model)


def check_run_folder(c: TrainCommand) -> Path:
    """--out, checked before any work: a new or empty folder; with --resume, a run to
    continue; with --overwrite, anything (a run there is replaced once this one ends).
    Refused: another command's or a user's files, a finished run, a run that did not finish
    (without --resume), a finished run with no checkpoint to resume."""
    out = common.check_out(c.out, overwrite=c.overwrite, own=RUN_FILES)
    if c.overwrite or not out.is_dir():
        return out
    finished = (out / "result.json").is_file()
    saved = bool(checkpoint_steps(out / CHECKPOINTS))
    if c.resume:
        if finished and not saved:
            raise ConfigError(f"--out {out} holds a finished run with no checkpoint to resume "
                              "from; pass --overwrite to train it again")
        return out
    if finished:
        raise ConfigError(f"--out {out} holds a finished run (result.json); choose another "
                          "folder, or pass --overwrite to replace it")
    if any(p.name in RUN_FILES for p in out.iterdir()):
        raise ConfigError(f"--out {out} holds a run that did not finish; pass --resume to "
                          "continue it, or --overwrite to start over")
    return out


def _finish(c: TrainCommand, out: Path, result: dict[str, Any], model: Any) -> int:
    """Write the weights and the result (main process), print one line, choose the code."""
    if not common.is_main_process():
        return 0 if result["stopped"] == "budget" else 1
    common.write_settings(out, c)
    if result["stopped"] in stop.EXIT_CODES:
        raise stop.Stopped(result["stopped"], f"checkpoint after {result['steps']} steps in "
                                              f"{out / 'checkpoints'}; continue with the same "
                                              "command and --resume")
    if result["stopped"] == "nonfinite":
        write_record(result, out / "result.json")
        return common.nonfinite_exit(f"{result['task']} / {result['method']}")
    atomic_write(out / "model.safetensors",
                 lambda fh: fh.write(_weights(model, save_model)))
    write_record(result, out / "result.json")  # last: a result.json means a finished run
    final = "n/a" if result["final"] is None else f"{result['final']:.2f}"
    print(f"{result['task']} / {result['method']}: {result['metric']} {final} after "
          f"{result['steps']} steps, {result['train_seconds']:.1f}s train; wrote {out}")
    return 0


def _weights(model: Any, save_model: Any) -> bytes:
    """The model's weights as safetensors bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_model(model, str(path))
        return path.read_bytes()
