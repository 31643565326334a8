"""Training throughput of the crammed encoder vs HF BERT and HF ModernBERT (Cramming, Geiping &
Goldstein 2023): tokens/s of forward + backward + clip + AdamW, fp32 and bf16 autocast.

    taskset -c 1 env OMP_NUM_THREADS=1 python scripts/mlm_throughput.py

Writes benchmarks/results/mlm-throughput-<YYYYMMDD>.json (machine, command, date, commit, torch
and transformers versions, every per-repeat number) and prints a table of medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hasten.bench.harness import cpu_model  # noqa: E402
from hasten.bench.mlm_throughput import (  # noqa: E402
    Shape,
    ratios,
    standard_candidates,
    throughput,
)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--models", default="", help="comma list of candidate names (default all)")
    ap.add_argument("--out", default="")
    ap.add_argument("--note", default="", help="free text stored in the report (e.g. load)")
    args = ap.parse_args(argv)

    import transformers

    shape = Shape(vocab=args.vocab, hidden=args.hidden, layers=args.layers, heads=args.heads,
                  intermediate=args.intermediate)
    cands = standard_candidates(shape)
    if args.models:
        keep = args.models.split(",")
        cands = [c for c in cands if c.name in keep]
    now = datetime.now(timezone.utc)
    rows = throughput(cands, seq_len=args.seq_len, batch=args.batch, steps=args.steps,
                      repeats=args.repeats, warmup=args.warmup,
                      precisions=args.precisions.split(","), vocab=args.vocab,
                      log=lambda m: print(m, flush=True))
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    dirty = bool(_git("status", "--porcelain", "--", "hasten", "scripts"))
    report = {
        "suite": "mlm-throughput",
        "created": now.isoformat(timespec="seconds"),
        "date": now.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                    "affinity": affinity, "torch_threads": torch.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "python": platform.python_version(), "os": platform.system()},
        "commit": _git("rev-parse", "--short", "HEAD"),
        "commit_note": "working tree had uncommitted changes" if dirty else "clean",
        "command": " ".join([f"taskset -c {','.join(map(str, affinity))}" if affinity else "",
                             f"env OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}",
                             "python", *sys.argv]).strip(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "shape": vars(shape), "batch": args.batch, "seq_len": args.seq_len,
        "step": "forward + backward + clip_grad_norm(0.5) + AdamW (wd 0.01 off 1-d params)",
        "note": args.note,
        "rows": rows,
        "ratios_vs_hf_bert_wall": ratios(rows, key="tokens_per_s"),
        "ratios_vs_hf_bert_cpu": ratios(rows, key="tokens_per_cpu_s"),
    }
    out = Path(args.out) if args.out else \
        ROOT / "benchmarks" / "results" / f"mlm-throughput-{now:%Y%m%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    base = {r["precision"]: r for r in rows if r["model"] == "hf-bert"}
    print(f"\n{'model':22s} {'prec':5s} {'tok/s':>8s} {'tok/cpu-s':>10s} {'x bert':>7s} "
          f"{'x bert(cpu)':>11s}")
    for r in rows:
        b = base.get(r["precision"])
        rw = r["tokens_per_s"] / b["tokens_per_s"] if b else float("nan")
        rc = r["tokens_per_cpu_s"] / b["tokens_per_cpu_s"] if b else float("nan")
        print(f"{r['model']:22s} {r['precision']:5s} {r['tokens_per_s']:8.0f} "
              f"{r['tokens_per_cpu_s']:10.0f} {rw:7.2f} {rc:11.2f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
