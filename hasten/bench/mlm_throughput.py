"""Training throughput of masked-language models: tokens per second of forward, backward,
gradient clipping and an AdamW step (the Cramming recipe's step, Geiping & Goldstein 2023).

Compares the crammed encoder (`hasten.models.encoder`, with and without sparse token
prediction) against HF `BertForMaskedLM` (Devlin et al. 2019; post-norm, biases, dropout 0.1,
head on every position) and HF `ModernBertForMaskedLM` (Warner et al. 2024) of the same
hidden size, depth, heads and vocabulary, in fp32 and under bf16 autocast.

Width convention: BERT's `intermediate` is its FFN width (H -> I -> H). The crammed encoder's
`intermediate` is the width of its fused value+gate projection (H -> I, then I/2 -> H), the
Cramming convention of not widening the GLU; the HF ModernBERT gets `intermediate_size = I/2`,
so it is exactly our architecture run by HF code.

Candidates are measured interleaved (A B C ... A B C ...) after a warm-up of each, so drifts
of the machine (thermal, other jobs) hit every candidate alike; each repeat times `steps`
steps on a fixed batch, and every per-repeat number is kept.

    taskset -c 1 env OMP_NUM_THREADS=1 python -m hasten.bench.mlm_throughput

writes benchmarks/results/mlm-throughput-<YYYYMMDD>.json (machine, command, date, commit,
torch and transformers versions, every per-repeat number) and prints medians and ratios.
Results: docs/benchmarks.md ("Sparse MLM head: where the encoder's speed over HF BERT comes from").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hasten.bench.harness import cpu_model
from hasten.core.errors import ConfigError
from hasten.core.trainer import param_groups, precision_context
from hasten.models.bert import original_bert
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.models.export_hf import hf_config
from hasten.pretrain.objectives.mlm import mlm_loss
from hasten.text.masking import mask_tokens


@dataclass
class Candidate:
    """One model to time: `build()` returns it, `loss(model, batch)` a scalar, `mask_rate`
    sets the share of predicted tokens in its batch."""

    name: str
    build: Callable[[], nn.Module]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    mask_rate: float = 0.25
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shape:
    """The shared model shape of the comparison."""

    vocab: int = 32768
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 1024
    max_len: int = 512


SPECIALS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def standard_candidates(shape: Shape) -> list[Candidate]:
    """Our encoder (static sparse head; dense head), HF BERT, HF ModernBERT (dense; sparse)."""
    cfg = EncoderConfig(vocab_size=shape.vocab, hidden=shape.hidden, layers=shape.layers,
                        heads=shape.heads, intermediate=shape.intermediate,
                        max_len=shape.max_len, pad_id=SPECIALS["pad"],
                        cls_id=SPECIALS["cls"], sep_id=SPECIALS["sep"],
                        mask_id=SPECIALS["mask"])

    def hf_modernbert(sparse: bool) -> nn.Module:
        from transformers import ModernBertForMaskedLM

        hc = hf_config(cfg)
        hc.sparse_prediction = sparse
        hc._attn_implementation = "sdpa"
        return ModernBertForMaskedLM(hc)

    def hf_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], labels=batch["labels"]).loss

    return [
        Candidate("ours-sparse-static", lambda: CrammedEncoder(cfg),
                  lambda m, b: mlm_loss(m, b, sparse="static").mean(), 0.25,
                  {"head": "masked rows only (static count)", "mask_rate": 0.25}),
        Candidate("ours-dense", lambda: CrammedEncoder(cfg),
                  lambda m, b: mlm_loss(m, b, sparse=None).mean(), 0.25,
                  {"head": "every position", "mask_rate": 0.25}),
        Candidate("hf-bert", lambda: original_bert(shape.vocab, shape.hidden, shape.layers,
                                                   shape.heads, shape.intermediate,
                                                   shape.max_len),
                  hf_loss, 0.15,
                  {"head": "every position", "mask_rate": 0.15, "dropout": 0.1,
                   "intermediate": shape.intermediate}),
        Candidate("hf-modernbert", lambda: hf_modernbert(False), hf_loss, 0.25,
                  {"head": "every position", "intermediate_size": shape.intermediate // 2}),
        Candidate("hf-modernbert-sparse", lambda: hf_modernbert(True), hf_loss, 0.25,
                  {"head": "masked rows only (boolean selection)",
                   "intermediate_size": shape.intermediate // 2}),
    ]


def _batch(vocab: int, batch: int, seq_len: int, rate: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIALS), vocab, (batch, seq_len), generator=g)
    ids[:, 0] = SPECIALS["cls"]
    inputs, labels = mask_tokens(ids, rate, list(SPECIALS.values()), SPECIALS["mask"], vocab,
                                 generator=g, exact=True)
    return {"input_ids": inputs, "labels": labels}


def throughput(candidates: Sequence[Candidate], seq_len: int = 128, batch: int = 32,
               steps: int = 3, repeats: int = 3, warmup: int = 1,
               precisions: Sequence[str] = ("fp32", "bf16"), vocab: int = 32768,
               seed: int = 0, clip: float = 0.5,
               log: Callable[[str], None] | None = None) -> list[dict]:
    """Tokens/s of train steps (forward, backward, clip, AdamW) per candidate and precision.

    Wall-clock tokens/s (`tokens_per_s`) and tokens per second of process CPU time
    (`tokens_per_cpu_s`, robust to a shared core when the run uses one thread) are both kept.

    Every (candidate, precision) gets its own model and optimizer (same seed), `warmup` steps,
    then `repeats` rounds in which each times `steps` steps in turn. Returns one row per
    (candidate, precision): the per-repeat seconds and tokens/s, their median, parameters.
    """
    for p in precisions:
        if p not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {p!r}")
    if steps < 1 or repeats < 1 or warmup < 0:
        raise ConfigError("steps and repeats must be >= 1, warmup >= 0")
    runs = []
    for c in candidates:
        data = _batch(vocab, batch, seq_len, c.mask_rate, seed)
        for p in precisions:
            torch.manual_seed(seed)
            model = c.build().train()
            opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, betas=(0.9, 0.98),
                                    eps=1e-12)
            runs.append({"c": c, "precision": p, "model": model, "opt": opt, "data": data,
                         "seconds": [], "cpu_seconds": [], "loss": None})

    def step(r: dict) -> None:
        with precision_context(r["precision"], torch.device("cpu")):
            loss = r["c"].loss(r["model"], r["data"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(r["model"].parameters(), clip)
        r["opt"].step()
        r["opt"].zero_grad(set_to_none=True)
        r["loss"] = float(loss.detach())

    for r in runs:
        for _ in range(warmup):
            step(r)
    for rep in range(repeats):
        for r in runs:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step(r)
            r["seconds"].append(time.perf_counter() - t0)
            r["cpu_seconds"].append(time.process_time() - c0)
            if log:
                log(f"repeat {rep + 1}/{repeats} {r['c'].name:22s} {r['precision']}: "
                    f"{steps * batch * seq_len / r['seconds'][-1]:9.0f} tokens/s")
    rows = []
    tokens = steps * batch * seq_len
    for r in runs:
        tps = [tokens / s for s in r["seconds"]]
        cpu_tps = [tokens / s for s in r["cpu_seconds"]]
        params = {id(p): p.numel() for p in r["model"].parameters()}
        rows.append({"model": r["c"].name, "precision": r["precision"],
                     "tokens_per_s": statistics.median(tps), "tokens_per_s_repeats": tps,
                     "tokens_per_cpu_s": statistics.median(cpu_tps),
                     "tokens_per_cpu_s_repeats": cpu_tps, "seconds_repeats": r["seconds"],
                     "cpu_seconds_repeats": r["cpu_seconds"], "steps_per_repeat": steps,
                     "tokens_per_step": batch * seq_len, "parameters": sum(params.values()),
                     "last_loss": r["loss"], **r["c"].info})
    return rows




def ratios(rows: Sequence[dict], baseline: str = "hf-bert",
           key: str = "tokens_per_s") -> dict[str, float]:
    """Median `key` of each (model, precision) over the baseline's in the same precision,
    plus over the baseline's fp32 (key suffix `/vs-fp32`)."""
    base = {r["precision"]: r[key] for r in rows if r["model"] == baseline}
    out: dict[str, float] = {}
    for r in rows:
        if r["precision"] in base:
            out[f"{r['model']}/{r['precision']}"] = r[key] / base[r["precision"]]
        if "fp32" in base:
            out[f"{r['model']}/{r['precision']}/vs-fp32"] = r[key] / base["fp32"]
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True,
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
        Path("benchmarks") / "results" / f"mlm-throughput-{now:%Y%m%d}.json"
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
