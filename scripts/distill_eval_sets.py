"""Evaluate saved synthetic sets with one protocol, into one JSON: the earlier script form of
`hasten distill eval FILE... --json OUT`, kept so the commands in docs/benchmarks.md still run.

Its defaults differ from the CLI's: width 64 and evaluation seed 1 (the CLI's are 128 and 0).
`--out` is the CLI's `--json`. Since the CLI took this job over, each row holds the CLI's
fields (`mean`, `std`, `accuracies`, `meta.lr`, ...) rather than the older `accuracy_mean`,
`accuracy_std` and `eval_lr`.

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python scripts/distill_eval_sets.py \\
        runs/mtt/syn-snapshots/*.safetensors --dsa --epochs 1000 --width 64 --out curve.json
"""

from __future__ import annotations

import argparse
import sys

from hasten.cli import main as hasten_main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--dsa", action="store_true", help="DSA augmentation while training")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", default="0.01", help="a number, or `learned` (MTT's syn_lr)")
    ap.add_argument("--validation", type=int, default=0, metavar="N",
                    help="score on N held-out training images instead of the test set")
    ap.add_argument("--out", help="the JSON file (the CLI's --json)")
    args = ap.parse_args()
    argv = ["distill", "eval", *args.files, "--epochs", str(args.epochs), "--width",
            str(args.width), "--models", str(args.models), "--seed", str(args.seed),
            "--lr", args.lr, "--quiet"]
    argv += ["--dsa"] if args.dsa else []
    argv += ["--validation", str(args.validation)] if args.validation else []
    argv += ["--json", args.out] if args.out else []
    sys.argv = ["hasten", *argv]  # the JSON records the equivalent CLI command
    return hasten_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
