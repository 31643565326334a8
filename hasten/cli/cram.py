"""`hasten cram`: pretrain a BERT-style encoder from text under a budget (the Cramming
recipe, or the original BERT's) and export it as a transformers model folder."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hasten.cli import common

NAME = "cram"
HELP = "pretrain a BERT-style encoder from text under a budget (Cramming recipe)"


def _recipe_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE of `--set`; VALUE parsed as JSON (numbers, null, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _cutoff(text: str) -> float | None:
    if text.lower() in ("none", "off", "no"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    cr = sub.add_parser(NAME, help=HELP, description=__doc__)
    cr.add_argument("--corpus", nargs="+", required=True,
                    help="UTF-8 text files or folders of .txt files")
    cr.add_argument("--budget", required=True, help="e.g. 30m, 24h, 3e9tok, 2000steps")
    cr.add_argument("--out", required=True, help="output folder (model/, loss.png, "
                                                 "summary.json, train/)")
    cr.add_argument("--recipe", choices=["crammed", "original"], default="crammed")
    cr.add_argument("--arch", choices=["crammed", "bert"],
                    help="model (default: the recipe's; original -> bert)")
    cr.add_argument("--objective", default="mlm", help="pretraining objective (mlm)")
    cr.add_argument("--vocab-size", type=int, help="WordPiece vocabulary (default 32768)")
    cr.add_argument("--seq-len", type=int, help="tokens per row (default 128)")
    cr.add_argument("--cutoff", type=_cutoff, default=argparse.SUPPRESS,
                    help="Cramming filter: keep iff tokens < CUTOFF * chars; 'none' to skip")
    cr.add_argument("--dedup", action="store_true", help="exact + MinHash near dedup first")
    cr.add_argument("--set", type=_recipe_value, action="append", metavar="KEY=VALUE",
                    help="override a recipe value, e.g. --set hidden=256 --set lr=5e-4")
    cr.add_argument("--seed", type=int, default=0)
    cr.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    cr.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    cr.add_argument("--quiet", action="store_true", help="no progress output")
    cr.set_defaults(run=run)
    return cr


def run(args: argparse.Namespace) -> int:
    from hasten.cram import cram

    common.check_out(args.out)
    overrides = dict(args.set or [])
    s = cram(args.corpus, args.budget, args.out, recipe=args.recipe, arch=args.arch,
             vocab_size=args.vocab_size, seq_len=args.seq_len,
             filter_cutoff=getattr(args, "cutoff", "recipe"),
             dedup=True if args.dedup else None, objective=args.objective, seed=args.seed,
             device=args.device, quiet=args.quiet, overwrite=args.overwrite, **overrides)
    loss = s["heldout_loss"]
    print(f"{s['recipe']['name']} / {s['arch']} / {s['objective']}: {s['steps']} steps, "
          f"{s['work']['tokens']:,} tokens, held-out loss "
          f"{'n/a' if loss is None else f'{loss:.3f}'}; wrote {args.out}")
    return 0
