"""Re-evaluate cached distilled / coreset sets with the DSA/DM/MTT papers' protocol.

The `hasten bench distill` rows train each fresh ConvNet-3 for 300 epochs without
augmentation (DC-BENCH's default). The DSA, DM and MTT papers train for 1000 epochs with DSA
augmentation on. This script takes sets from the bench's cache folder and evaluates them
that way, so both protocols can be compared on the same sets:

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/distill_dsa_eval.py \
        fashion-mnist-dm-ipc10-10m-w64-s0-6ea28bf9ab fashion-mnist-random-ipc10-s0 \
        --out benchmarks/results/distill-dsa-eval-20261128.json

Prints one line per fresh network and one JSON line per set; with --out, writes them all.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hasten.bench.distill import _data
from hasten.bench.harness import machine_description
from hasten.distill.evaluate import evaluate
from hasten.distill.synthetic import SyntheticSet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sets", nargs="+", help="names of .safetensors files in --cache")
    ap.add_argument("--cache", default="runs/distill-cache")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--no-dsa", action="store_true")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    data = _data("fashion-mnist")
    rows = []
    for name in args.sets:
        syn = SyntheticSet.load(Path(args.cache) / f"{name}.safetensors")
        start = time.time()
        r = evaluate(syn, data, models=args.models, epochs=args.epochs, dsa=not args.no_dsa,
                     width=args.width, seed=args.seed, progress=print)
        row = {"set": name, "epochs": args.epochs, "dsa": not args.no_dsa, "mean": r.mean,
               "std": r.std, "accs": r.accuracies, "sec": time.time() - start}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_description(),
            "command": " ".join(shlex.quote(a) for a in sys.argv), "width": args.width,
            "models": args.models, "seed": args.seed, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
