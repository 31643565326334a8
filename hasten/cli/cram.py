"""`hasten cram`: pretrain a BERT-style encoder from text under a budget (the Cramming
recipe, or the original BERT's) and export it as a transformers model folder. By default the
model is sized to the budget and the machine (`hasten.pretrain.objectives.sizing`); `--set` sets any
shape or recipe value (`--set lr=3e-4`, `--set hidden=256`: they go to the recipe's
`changes`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hasten.cli import common
from hasten.core.budget import Budget
from hasten.core.config import CONFIG_FILE, coerce, load_config_file, parse_set, settings_help
from hasten.core.distributed import resolve_device
from hasten.core.errors import ConfigError
from hasten.core.stop import EXIT_CODES
from hasten.pretrain.cram import CramConfig, cram
from hasten.pretrain.objectives.recipes import RECIPE_KEYS, CrammedRecipe, typed_changes
from hasten.text.read import check_corpus

NAME = "cram"
# one flag name per idea: a cache folder is --cache-dir on every command (--cache still works)
RENAME = {"cache": "cache-dir"}
WHAT = {
    "budget": "how much to pretrain: a number and a unit: s, m, h (wall clock), steps, tok "
              "(tokens) or flop (FLOPs)",
    "out": "the folder for the model, checkpoints, metrics.jsonl, loss.png and summary.json",
    "min_steps": "sizing: the fewest optimizer steps the chosen model gets",
    "step_fraction": "sizing: the most of a wall-clock budget one step may take",
    "eval_rows": "held-out rows scored at each evaluation",
}
HELP = "pretrain a BERT-style encoder from text under a budget (Cramming recipe)"
RECIPE_FLAGS = ("arch", "vocab_size", "seq_len", "cutoff", "dedup")  # the recipe's own flags
FILTER_ON = 0.3  # `--set filter=true`: Cramming's bookcorpus/Wikipedia cutoff


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(CramConfig) + "\n\nrecipe " +
                       settings_help(CrammedRecipe).replace(
                           "settings (--set KEY=VALUE or --config FILE)",
                           "values, crammed's (--set KEY=VALUE or changes.KEY in --config)"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=argparse.SUPPRESS, metavar="PATH",
                   help="text files or folders (.txt, .md, .jsonl, optionally .gz) "
                        "(required)")
    common.add_settings(p, CramConfig, skip=("corpus",), rename=RENAME,
                        aliases={"--cache": "cache"}, what=WHAT)
    for name in RECIPE_FLAGS:
        kind: dict[str, Any] = {"action": argparse.BooleanOptionalAction} if name == "dedup" \
            else {"metavar": name.upper()}
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                       help=f"the recipe's {name} (also --set {name}=...); default the "
                            "recipe's own value", **kind)
    p.set_defaults(run=run)
    return p


def _add_command(out: Path) -> None:
    """The command line into the config.json `cram` wrote (its resolved settings)."""
    path = out / CONFIG_FILE
    if path.is_file() and common.is_main_process():
        common.write_settings(out, json.loads(path.read_text(encoding="utf-8")))


def recipe_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe values the command line sets (its recipe flags and `--set` items naming a
    recipe key), taken off `args` so the rest settles into `CramConfig`. The old switch
    `--set filter=false` still works: it sets the recipe's cutoff to None (true: 0.3). Recipe
    keys at the top of a `--config` file are refused with one line naming the `[changes]`
    table they belong in."""
    changes: dict[str, Any] = {}
    for name in RECIPE_FLAGS:
        if name in vars(args):
            value = vars(args).pop(name)
            if name == "cutoff" and str(value).lower() in ("none", "off", "no"):
                value = None
            changes[name] = value
    keep, filter_on = [], None
    for item in getattr(args, "set", None) or []:
        key, value = parse_set(item)
        if key == "filter":  # the old switch: the filter is the recipe's cutoff now
            filter_on = coerce(value, bool, "filter")
        elif key in RECIPE_KEYS:
            changes[key] = value
        else:
            keep.append(item)
    if filter_on is not None and "cutoff" not in changes:
        changes["cutoff"] = FILTER_ON if filter_on else None
    if getattr(args, "set", None) is not None:
        args.set = keep
    if getattr(args, "config", None):
        moved = sorted(set(load_config_file(args.config, NAME)) & {*RECIPE_KEYS, "filter"})
        if moved:
            raise ConfigError(f"--config {args.config}: recipe values go in a [changes] "
                              f"table (or [cram.changes]) now: {', '.join(moved)}")
    return changes


def run(args: argparse.Namespace) -> int:
    fixed: dict[str, Any] = {"corpus": list(args.corpus)} if getattr(args, "corpus", None) \
        else {}
    changes = recipe_changes(args)
    (c,) = common.settle([CramConfig], args, NAME, fixed=fixed)
    if changes:
        c.changes = {**c.changes, **typed_changes(changes)}
    if not c.corpus:
        raise ConfigError("--corpus is required (text files or folders)")
    Budget(c.budget)
    if c.device is not None:
        resolve_device(c.device)
    common.check_out(c.out)
    check_corpus(c.corpus)  # missing, binary, empty: one line before sizing starts
    s = cram(c)
    _add_command(Path(c.out))
    if s["stopped"] != "budget":
        name = {"sigterm": "SIGTERM", "sigint": "SIGINT (Ctrl-C)"}.get(s["stopped"],
                                                                       s["stopped"])
        if s["stopped"] == "nonfinite":
            return common.nonfinite_exit(f"cram {c.out}")
        print(f"hasten: stopped by {name} after {s['steps']} steps; checkpoint in "
              f"{c.out}/checkpoints (continue with --resume); nothing exported",
              file=sys.stderr)
        return EXIT_CODES.get(s["stopped"], 1)
    loss = s["heldout_loss"]
    print(f"{s['recipe']['name']} / {s['arch']} / {s['objective']}: {s['steps']} steps, "
          f"{s['work']['tokens']:,} tokens, held-out loss "
          f"{'n/a' if loss is None else f'{loss:.3f}'}; wrote {c.out}")
    return 0
