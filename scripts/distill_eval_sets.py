"""Evaluate saved synthetic sets (e.g. a run's snapshots) with one protocol, into one JSON.

`hasten distill eval FILE` evaluates one set; this evaluates many with the same settings and
records each set's iterations, distillation seconds and (MTT) learned step size beside its
accuracy, so an accuracy-vs-iterations curve comes from a single distillation run
(`hasten distill ... --snapshot-every N`). `--lr learned` trains the fresh networks with the
step size MTT learned for that set (MTT's own evaluation); the default is the papers' 0.01.

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python scripts/distill_eval_sets.py \
        runs/mtt/syn-snapshots/*.safetensors --dsa --epochs 1000 --width 64 --out curve.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hasten.bench.harness import machine_description
from hasten.data.vision import holdout_split, load_vision
from hasten.distill.evaluate import evaluate
from hasten.distill.synthetic import SyntheticSet
from hasten.errors import ConfigError, HastenError


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--dsa", action="store_true", help="DSA augmentation while training")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", default="0.01", help="a number, or `learned` (MTT's syn_lr)")
    ap.add_argument("--validation", type=int, default=0, metavar="N",
                    help="score on N training images held out by `holdout_split` (seed 0) "
                         "instead of the test set: for choosing settings without the test set")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        sets = [SyntheticSet.load(f) for f in args.files]
        names = {s.meta.get("dataset") for s in sets}
        if len(names) != 1 or None in names:
            raise ConfigError(f"the sets must name one dataset; they name "
                              f"{sorted(map(str, names))}")
        data = load_vision(names.pop())
        if args.validation:
            data = holdout_split(data, args.validation)
        rows, start = [], time.time()
        for path, syn in zip(args.files, sets, strict=True):
            lr = syn.meta.get("syn_lr") if args.lr == "learned" else float(args.lr)
            if lr is None:
                raise ConfigError(f"{path}: --lr learned needs an MTT set (no syn_lr in it)")
            res = evaluate(syn, data, models=args.models, epochs=args.epochs, dsa=args.dsa,
                           lr=float(lr), width=args.width, seed=args.seed)
            row = {"file": str(path), "method": syn.meta.get("method"), "ipc": syn.ipc,
                   "iterations": syn.meta.get("iterations"),
                   "distill_seconds": syn.meta.get("train_seconds"),
                   "syn_lr": syn.meta.get("syn_lr"), "eval_lr": float(lr),
                   "accuracy_mean": res.mean, "accuracy_std": res.std,
                   "accuracies": res.accuracies}
            print(json.dumps(row), flush=True)
            rows.append(row)
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        return err.exit_code
    if args.out:
        args.out.write_text(json.dumps({
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_description(),
            "command": " ".join(shlex.quote(a) for a in sys.argv),
            "protocol": {"epochs": args.epochs, "dsa": args.dsa, "width": args.width,
                         "models": args.models, "seed": args.seed, "lr": args.lr,
                         "scored_on": data.name,
                         "optimizer": "SGD momentum 0.9, wd 5e-4, lr x0.1 at half"},
            "seconds": time.time() - start, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
