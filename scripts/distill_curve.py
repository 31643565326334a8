"""Accuracy vs distillation iterations for one method and ipc on Fashion-MNIST.

When the CPU forces fewer iterations than the papers run, the curve of accuracy against
iterations shows what more iterations would buy. This distils once, resuming, to each
checkpoint (iteration counts, so a busy machine changes the time, not the result) and
evaluates each intermediate set with `hasten bench distill`'s settings (width 64),
optionally under the DSA/DM/MTT papers' protocol (1000 epochs, DSA on):

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/distill_curve.py dm 10 \
        300 600 1200 2400 --dsa-protocol --out benchmarks/results/distill-curve-dm-ipc10.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import hasten.bench.distill as bench
from hasten.bench.records import machine_description, write_record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("method", choices=bench.DISTILLERS)
    ap.add_argument("ipc", type=int)
    ap.add_argument("checkpoints", type=int, nargs="+", help="iteration counts, increasing")
    ap.add_argument("--dsa-protocol", action="store_true",
                    help="evaluate with 1000 epochs and DSA on (default: the bench's 300, off)")
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.checkpoints != sorted(set(args.checkpoints)) or args.checkpoints[0] < 1:
        ap.error("checkpoints must be increasing positive iteration counts")
    s = bench.settings_for(quick=False)
    if args.dsa_protocol:
        s = replace(s, epochs=1000, eval_dsa=True)
    start = time.time()
    rows = bench.iteration_curve(args.method, args.ipc, args.checkpoints, models=args.models,
                                 settings=s)
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        write_record({
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_description(),
            "command": " ".join(shlex.quote(a) for a in sys.argv),
            "method": args.method, "ipc": args.ipc, "width": s.width, "epochs": s.epochs,
            "eval_dsa": s.eval_dsa, "batch_real": s.batch_real, "seconds": time.time() - start,
            "rows": rows}, args.out)


if __name__ == "__main__":
    main()
