"""`hasten cram`: pretrain a BERT-style encoder from text under a budget (the Cramming
recipe, or the original BERT's) and export it as a transformers model folder. By default the
model is sized to the budget and the machine (`hasten.pretrain.objectives.sizing`); `--set` sets any
shape or recipe value."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hasten.cli import common
from hasten.core.budget import Budget
from hasten.core.config import CONFIG_FILE, settings_help
from hasten.core.distributed import resolve_device
from hasten.core.errors import ConfigError
from hasten.core.stop import EXIT_CODES
from hasten.pretrain.cram import CramConfig, cram
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


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       epilog=settings_help(CramConfig),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=argparse.SUPPRESS, metavar="PATH",
                   help="text files or folders (.txt, .md, .jsonl, optionally .gz) "
                        "(required)")
    common.add_settings(p, CramConfig, skip=("corpus",), rename=RENAME,
                        aliases={"--cache": "cache"}, what=WHAT)
    p.set_defaults(run=run)
    return p


def _add_command(out: Path) -> None:
    """The command line into the config.json `cram` wrote (its resolved settings)."""
    path = out / CONFIG_FILE
    if path.is_file() and common.is_main_process():
        common.write_settings(out, json.loads(path.read_text(encoding="utf-8")))


def run(args: argparse.Namespace) -> int:
    fixed: dict[str, Any] = {"corpus": list(args.corpus)} if getattr(args, "corpus", None) \
        else {}
    if str(getattr(args, "cutoff", "")).lower() in ("none", "off", "no"):  # no filter
        del args.cutoff
        fixed["filter"] = False
    (c,) = common.settle([CramConfig], args, NAME, fixed=fixed)
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
