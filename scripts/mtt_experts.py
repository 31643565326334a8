"""Train MTT expert trajectories in parallel processes (one per core), ready for `distill`.

MTT's first stage trains expert networks on the real data and saves their parameters after
every epoch. `hasten distill --method mtt` trains missing experts itself, one after another;
on a 2-core machine this script splits them across cores instead (each process trains experts
FIRST..FIRST+COUNT-1 into the same folder, which `--option expert_dir=DIR` then reads):

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python scripts/mtt_experts.py DIR --first 0 \
        --count 2 --epochs 12 --width 64 &
    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/mtt_experts.py DIR --first 2 \
        --count 2 --epochs 12 --width 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hasten.core.errors import ConfigError, run_script
from hasten.data.vision import load_vision
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import default_model_fn, real_set
from hasten.distill.methods import class_tensors
from hasten.distill.mtt import save_trajectory, train_expert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="expert folder")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--first", type=int, default=0, help="index (and seed) of the first expert")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=22, help="max_start_epoch + expert_epochs")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--no-dsa", action="store_true")
    args = ap.parse_args()
    if args.count < 1 or args.epochs < 1 or args.first < 0:
        raise ConfigError("--count and --epochs must be >= 1, --first >= 0")
    data = load_vision(args.data)
    x, y = real_set(class_tensors(data))
    model_fn = default_model_fn(tuple(data.input_shape), data.num_classes, args.width)
    dsa = None if args.no_dsa else DSA(dsa_strategy(data.name))
    for k in range(args.first, args.first + args.count):
        start = time.perf_counter()
        traj = train_expert(model_fn, x, y, args.epochs, lr=args.lr, batch_size=args.batch,
                            dsa=dsa, generator=torch.Generator().manual_seed(k))
        path = save_trajectory(args.out / f"expert-{k:03d}.safetensors", traj)
        print(json.dumps({"expert": k, "path": str(path), "epochs": args.epochs,
                          "width": args.width, "seconds": round(time.perf_counter() - start, 1)}),
              flush=True)


if __name__ == "__main__":
    run_script(main)
