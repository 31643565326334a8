"""`hasten distill`: distil a dataset into a few images per class, or evaluate distilled sets.

    hasten distill --data fashion-mnist --method dm --ipc 10 --budget 20m --out runs/dm10
    hasten distill eval runs/dm10/set.safetensors [MORE.safetensors ...] [--models 3]
        [--epochs 300] [--dsa] [--lr 0.01|learned] [--validation N] [--json results.json]

Distillation writes into the folder OUT: `set.safetensors` (images, labels and metadata),
`set.png` (a grid), `config.json`, and `checkpoints/` (every `--checkpoint-every`
iterations, and on SIGTERM or Ctrl-C: the same command with `--resume` continues).
`hasten train --task T --data OUT` trains a task's model on the set. `eval` trains fresh
networks on each set with one protocol and can gather the results, with the command and
the machine, into one JSON file. Methods: DC, DSA, DM, IDM, MTT (see `hasten.distill`); the
coreset baselines random, herding and k-center take no budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hasten.bench.records import provenance, write_record
from hasten.cli import common
from hasten.core import stop
from hasten.core.checkpoint import latest_checkpoint
from hasten.core.config import option, settings_help
from hasten.core.distributed import resolve_device
from hasten.core.errors import ConfigError
from hasten.data.vision import holdout_split, load_vision
from hasten.distill import coreset
from hasten.distill.evaluate import evaluate
from hasten.distill.formation import check_factor
from hasten.distill.methods import METHODS, DistillConfig, distill_budget, distill_with
from hasten.distill.synthetic import SyntheticSet

if TYPE_CHECKING:
    from hasten.distill.methods import DistillConfig

NAME = "distill"
HELP = "dataset distillation (DC, DSA, DM, IDM, MTT) or `distill eval FILE`"
BASELINES = ("random", "herding", "k-center")
SET_FILE = "set.safetensors"
WHAT = {
    "data": "the dataset: digits, fashion-mnist or mnist1d (eval: the one the sets name)",
    "out": "the folder for set.safetensors, set.png, config.json and checkpoints",
    "budget": "how much to distil: iterations (steps), wall clock (s, m, h) or examples (ex)",
    "eval_after": "evaluate the set once it is distilled",
    "models": "fresh networks trained on each set to evaluate it",
    "epochs": "epochs each evaluation network trains",
    "lr": "the evaluation networks' SGD step: a number, or learned (an MTT set's)",
    "validation": "score on this many held-out training images instead of the test set",
    "json": "eval: a JSON file for every set's result, the protocol and the machine",
    "method": "dm, idm, dc, dsa, mtt (hasten list distillers), or a coreset: random, "
              "herding, k-center",
    "ipc": "images per class in the set",
    "init": "the starting images: real (random ones of each class) or noise",
    "dsa": "DSA augmentation while matching and evaluating",
    "width": "the ConvNet-3's channels",
    "batch_real": "real images per class and match",
    "factor": "multi-formation: each stored image holds FACTOR x FACTOR smaller ones",
    "checkpoint_dir": "the folder for checkpoints (default OUT/checkpoints)",
    "checkpoint_every": "iterations between checkpoints",
    "snapshot_every": "iterations between snapshots of the set (0: none)",
}


@dataclass
class DistillCommand:
    """`hasten distill` (and `distill eval`): the settings beside `DistillConfig`'s."""

    data: str | None = option(None, "distill: required (digits, fashion-mnist, mnist1d); "
                                    "eval: None reads the dataset each set names")
    out: str | None = option(None, "distill: required; the folder for the set, its grid, "
                                   "config.json and checkpoints")
    overwrite: bool = option(False, "never replace a non-empty folder unless asked")
    eval_after: bool = option(False, "distil only; --eval also evaluates the set")
    models: int = option(3, "the papers train several fresh networks per set")
    epochs: int = option(300, "DC-BENCH's default; the DSA, DM and MTT papers use 1000 with "
                              "DSA on")
    lr: str = option("0.01", "the papers' SGD step; `learned` takes the step MTT learned")
    validation: int = option(0, "0: score on the test set; N scores on N held-out training "
                                "images, to choose settings without the test set")
    json: str | None = option(None, "eval: None prints only; a path also gets every set's "
                                    "result, the protocol, the command and the machine")
    quiet: bool = option(False, "progress lines unless asked for silence")


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(DistillCommand) + "\n" +
                       settings_help(DistillConfig),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["eval"], help="eval: evaluate FILE...")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="eval: synthetic sets (.safetensors), all of one dataset")
    common.add_settings(p, DistillCommand, DistillConfig, skip=("snapshot_dir",),
                        rename={"eval_after": "eval"}, what=WHAT)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method hyperparameter, e.g. lr_img=1 (same as --set "
                        "options.KEY=VALUE)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """`hasten distill ...` or `hasten distill eval FILE...`."""
    bad = _options_to_settings(args)
    if args.action == "eval":
        if not args.files:
            raise ConfigError("distill eval needs a FILE (a .safetensors synthetic set)")
        if bad:
            raise bad
        c, config = common.settle([DistillCommand, DistillConfig], args, NAME)
        _check_device(config.device)
        return _evaluate_files(args.files, c, config)
    if args.files:
        raise ConfigError(f"unexpected argument {args.files[0]!r}; did you mean "
                          f"`hasten distill eval {args.files[0]}`?")
    c, config = common.settle([DistillCommand, DistillConfig], args, NAME)
    _check_device(config.device)
    if c.validation or c.json:
        raise ConfigError("--validation and --json belong to `hasten distill eval`")
    if not c.out:
        raise ConfigError("distill needs --out DIR (a folder for the set)")
    if bad:
        raise bad
    if not c.data:
        raise ConfigError("distill needs --data (digits, fashion-mnist, mnist1d)")
    return _distill(c, config)


def _check_resume(out: Path, checkpoints: Path) -> None:
    """--resume: refused for a folder that does not exist; one line when there is nothing
    to resume yet (the run starts fresh)."""
    if not out.is_dir():
        raise ConfigError(f"cannot resume: {out} does not exist")
    if latest_checkpoint(checkpoints) is None:
        print(f"no checkpoint in {checkpoints} yet; starting fresh", file=sys.stderr)


def _check_device(device: str | None) -> None:
    """An unknown or missing device is one line before any data is read."""
    if device not in (None, "None"):
        resolve_device(device)


def _options_to_settings(args: argparse.Namespace) -> ConfigError | None:
    """`--option KEY=VALUE` items as `--set options.KEY=VALUE`; the error for a bad one (raised
    once the command has checked what it needs first)."""
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return ConfigError(f"--option needs KEY=VALUE, got {item!r}")
        args.set.append(f"options.{key.replace('-', '_')}={value}")
    return None


def _distill(c: DistillCommand, config: DistillConfig) -> int:
    out = common.check_out(str(c.out), empty=True, overwrite=c.overwrite or config.resume)
    if config.resume:
        _check_resume(out, Path(config.checkpoint_dir or out / "checkpoints"))
    method = config.method.lower()
    if method not in BASELINES:
        if method not in METHODS:
            raise ConfigError(f"unknown distillation method {config.method!r}; known: "
                              f"{', '.join([*METHODS, *BASELINES])}")
    if isinstance(config.ipc, bool) or config.ipc < 1:
        raise ConfigError(f"--ipc (images per class) must be an integer >= 1, got "
                          f"{config.ipc}")
    if method not in BASELINES:
        distill_budget(config.budget)  # a unit distillation cannot count: one line, now
    if c.eval_after:  # a bad --lr should fail now, not after the distillation
        if c.lr == "learned" and method != "mtt":
            raise ConfigError("--lr learned needs --method mtt (only MTT learns a step size)")
        if c.lr != "learned":
            _eval_lr(c.lr, None, "")
    config = replace(config, checkpoint_dir=config.checkpoint_dir or str(out / "checkpoints"),
                     snapshot_dir=str(out / "snapshots") if config.snapshot_every else None)
    data = load_vision(str(c.data))
    try:
        syn = _build(method, data, config, c.quiet)
    except stop.Stopped:
        common.write_settings(out, c, config)
        raise
    path = syn.save(out / SET_FILE)
    files = [str(path)]
    if len(syn.input_shape) == 3:
        files.append(str(syn.save_grid_png(out / "set.png")))
    common.write_settings(out, c, config)
    formed = f", each holding {syn.factor ** 2}" if syn.factor > 1 else ""
    print(f"wrote {len(syn)} images ({syn.ipc} per class{formed}): {', '.join(files)}")
    if c.eval_after:
        _report(syn, data, c, config, str(path), _eval_lr(c.lr, syn, str(path)))
    return 0


def _build(method: str, data: Any, config: DistillConfig, quiet: bool) -> Any:
    """A coreset baseline, or a distilled set."""
    factor = check_factor(config.factor, tuple(data.input_shape))
    if method in BASELINES:  # ipc * factor^2 real images, packed into ipc per class
        n = config.ipc * factor * factor
        if method == "random":
            syn = coreset.random_subset(data, n, seed=config.seed)
        else:
            syn = (coreset.herding if method == "herding" else coreset.k_center)(data, n)
        return coreset.formed(syn, factor)
    say = common.sayer(quiet)
    if say is not None:
        say(f"distilling {data.name} with {method}, ipc {config.ipc}, budget {config.budget}")
    syn = distill_with(data, replace(config, method=method),
                       progress=False if quiet else (True if common.on_terminal() else say))
    m = syn.meta
    if say is not None:
        say(f"{m['iterations']} iterations in {m['train_seconds']:.1f}s; loss "
            f"{m['loss_first']:.4g} -> {m['loss_last']:.4g}")
    return syn


def _evaluate_files(files: list[str], c: DistillCommand, config: DistillConfig) -> int:
    if c.json:
        common.check_out(Path(c.json).parent)
    # read every set (and check the options) before hours of training start
    sets = [SyntheticSet.load(f) for f in files]
    lrs = [_eval_lr(c.lr, syn, path) for path, syn in zip(files, sets, strict=True)]
    for path, syn in zip(files, sets, strict=True):
        if not c.data and not syn.meta.get("dataset"):
            raise ConfigError(f"{path} does not name its dataset; pass --data")
    names = {c.data} if c.data else {s.meta["dataset"] for s in sets}
    if len(names) != 1:
        raise ConfigError(f"the sets name different datasets ({', '.join(sorted(names))}); "
                          "evaluate them separately")
    data = load_vision(str(names.pop()))
    if c.validation:
        data = holdout_split(data, c.validation)
    start, rows = time.time(), []
    for path, syn, lr in zip(files, sets, lrs, strict=True):
        rows.append(_report(syn, data, c, config, path, lr))
    if c.json:
        _write_json(c, config, data.name, rows, time.time() - start)
    return 0


def _eval_lr(lr: str, syn: Any, path: str) -> float:
    """--lr as a number, or the step size an MTT set learned (`learned`)."""
    if lr == "learned":
        if syn is not None and syn.meta.get("syn_lr") is None:
            raise ConfigError(f"{path}: --lr learned needs an MTT set (it has no learned "
                              "step size)")
        return float(syn.meta["syn_lr"]) if syn is not None else 0.0
    try:
        value = float(lr)
    except ValueError:
        raise ConfigError(f"--lr must be a number or 'learned', got {lr!r}") from None
    if not value > 0:
        raise ConfigError(f"--lr must be > 0, got {lr}")
    return value


def _report(syn: Any, data: Any, c: DistillCommand, config: DistillConfig, path: str,
            lr: float) -> dict:
    """Evaluate one set by the protocol (at `lr`); print a summary and a JSON line."""
    result = evaluate(syn, data, models=c.models, epochs=c.epochs, dsa=bool(config.dsa),
                      lr=lr, width=config.width, seed=config.seed, device=config.device,
                      progress=common.sayer(c.quiet))
    formed = f" (factor {syn.factor})" if syn.factor > 1 else ""
    print(f"{syn.method} ipc {syn.ipc}{formed} on {data.name}: {result}")
    row = {"file": str(path), "method": syn.method, "ipc": syn.ipc, "factor": syn.factor,
           "iterations": syn.meta.get("iterations"),
           "distill_seconds": syn.meta.get("train_seconds"),
           "syn_lr": syn.meta.get("syn_lr"), **result.as_dict()}
    print(json.dumps(row), flush=True)
    return row


def _write_json(c: DistillCommand, config: DistillConfig, scored_on: str, rows: list[dict],
                seconds: float) -> None:
    record = {**provenance(common.command_text()),
              "protocol": {"epochs": c.epochs, "dsa": bool(config.dsa), "width": config.width,
                           "models": c.models, "seed": config.seed, "lr": c.lr,
                           "scored_on": scored_on,
                           "optimizer": "SGD momentum 0.9, wd 5e-4, lr x0.1 at half"},
              "seconds": seconds, "rows": rows}
    write_record(record, str(c.json))
    print(f"wrote {c.json}")
