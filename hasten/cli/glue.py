"""`hasten glue MODEL_DIR`: fine-tune and score a transformers model folder on GLUE-small
(CoLA, SST-2, MRPC, STS-B, RTE); the median over fine-tuning seeds per task."""

from __future__ import annotations

import argparse
from typing import Any

from hasten.cli import common
from hasten.pretrain.glue import evaluate_glue

NAME = "glue"
HELP = "fine-tune and score a model folder on GLUE-small (CoLA, SST-2, MRPC, STS-B, RTE)"
RESULTS_FILE = "glue.json"


def add_parser(sub: Any, argv: list[str]) -> argparse.ArgumentParser:
    gl = sub.add_parser(NAME, help=HELP, description=__doc__)
    gl.add_argument("model_dir", help="a transformers model folder (e.g. hasten cram's model/)")
    gl.add_argument("--tasks", help="comma-separated subset of cola,sst2,mrpc,stsb,rte")
    gl.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds (median reported)")
    gl.add_argument("--epochs", type=float, default=5.0)
    gl.add_argument("--max-train-examples", type=int, help="subsample each training set")
    gl.add_argument("--max-eval-examples", type=int, help="subsample each dev set")
    gl.add_argument("--jobs", type=int, default=1, help="tasks fine-tuned in parallel")
    gl.add_argument("--lr", type=float, help="default 4e-5 (Cramming GLUE_sane)")
    gl.add_argument("--batch-size", "--batch", dest="batch", type=int, help="default 16")
    gl.add_argument("--precision", choices=["fp32", "bf16"])
    gl.add_argument("--pooling", choices=["cls", "mean"], help="ModernBERT pooling (cls)")
    gl.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    gl.add_argument("--out", help=f"a folder for {RESULTS_FILE} and config.json")
    gl.add_argument("--quiet", action="store_true", help="no progress output")
    gl.set_defaults(run=run)
    return gl


def run(args: argparse.Namespace) -> int:
    out = common.check_out(args.out) if args.out else None
    settings = {k: getattr(args, k) for k in ("lr", "batch", "precision", "pooling", "device",
                                              "max_eval_examples")
                if getattr(args, k) is not None}
    s = evaluate_glue(args.model_dir, tasks=args.tasks, seeds=args.seeds, epochs=args.epochs,
                      max_train_examples=args.max_train_examples, jobs=args.jobs,
                      out=out / RESULTS_FILE if out else None, quiet=args.quiet, **settings)
    if out is not None:
        common.write_settings(out, {k: v for k, v in vars(args).items()
                                    if k not in ("run", "command")})
    for task, r in s["tasks"].items():
        print(f"{task:5s} {r['metric']:8s} {r['score']:6.2f}")
    print(f"average        {s['average']:6.2f}  (median of {args.seeds} seed(s) per task)"
          + (f"; wrote {out}" if out else ""))
    return 0

