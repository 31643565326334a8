"""Feasibility of DM (Zhao & Bilen, WACV 2023) on Fashion-MNIST on this machine's CPU.

Times DM for a wall-clock budget and evaluates, with the papers' protocol (fresh ConvNet-3,
SGD 0.01 / momentum 0.9 / wd 5e-4, lr x0.1 at half), the random real subset DM starts from
and the DM result. Run pinned to one core:

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/distill_feasibility.py \
        --ipc 10 --minutes 8 --width 64 --batch-real 128 --eval-epochs 300

Prints one JSON line per ipc and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hasten.data.vision import load_vision
from hasten.distill import distill, evaluate, random_subset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ipc", type=int, nargs="+", default=[10])
    ap.add_argument("--minutes", type=float, nargs="+", default=[8.0],
                    help="DM wall clock per ipc (one value, or one per ipc)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-real", type=int, default=128)
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--eval-models", type=int, default=3)
    ap.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=True,
                    help="DSA during distillation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/distill-feasibility.jsonl")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    data = load_vision("fashion-mnist")
    minutes = args.minutes * len(args.ipc) if len(args.minutes) == 1 else args.minutes
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for ipc, mins in zip(args.ipc, minutes, strict=False):
        kw = dict(models=args.eval_models, epochs=args.eval_epochs, width=args.width,
                  seed=args.seed + 1, progress=lambda s: print("   ", s, flush=True))
        t0 = time.perf_counter()
        base = random_subset(data, ipc, seed=args.seed)  # the same images DM starts from
        r_rand = evaluate(base, data, **kw)
        print(f"ipc {ipc} random subset: {r_rand}  ({time.perf_counter() - t0:.0f}s)",
              flush=True)
        cpu0 = time.process_time()
        syn = distill("dm", data, ipc, f"{mins * 60:.0f}s", width=args.width,
                      batch_real=args.batch_real, dsa=args.dsa, seed=args.seed, progress=False)
        cpu = time.process_time() - cpu0  # below wall time when the core is shared
        its = syn.meta["iterations"]
        secs = syn.meta["train_seconds"]
        print(f"ipc {ipc} DM: {its} iterations in {secs:.0f}s = {its / secs:.3f} it/s "
              f"({cpu / its:.2f} CPU s/it); loss "
              f"{syn.meta['loss_first']:.4g} -> {syn.meta['loss_last']:.4g}", flush=True)
        t0 = time.perf_counter()
        r_dm = evaluate(syn, data, **kw)
        print(f"ipc {ipc} DM result: {r_dm}  ({time.perf_counter() - t0:.0f}s)", flush=True)
        row = {"ipc": ipc, "width": args.width, "batch_real": args.batch_real,
               "dsa": args.dsa, "dm_iterations": its, "dm_seconds": secs,
               "it_per_s": its / secs, "cpu_s_per_it": cpu / its, "eval_epochs": args.eval_epochs,
               "random": r_rand.as_dict(), "dm": r_dm.as_dict(),
               "gain_points": r_dm.mean - r_rand.mean}
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        syn.save(out.with_name(f"dm-ipc{ipc}.safetensors"))


if __name__ == "__main__":
    main()
