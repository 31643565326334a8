"""The CUDA check of the pretraining code, one short run (`scripts/gpu_check.sh` calls it):

1. throughput: training steps (forward, backward, clip, AdamW) of the crammed encoder
   (Geiping & Goldstein 2023; sparse prediction at 25%) against HF `BertForMaskedLM`
   (Devlin et al. 2019; dense head at 15%) at BERT-base size (12 x 768, 12 heads, FFN
   3072; vocabulary 32768; 128-token rows), bf16 autocast and SDPA, eager and
   `torch.compile`d. Each gets tokens/s, its FLOPs per step (torch's counter on one step)
   and MFU = achieved FLOP/s over the chip's dense bf16 peak (`PEAK_BF16`, datasheet values,
   or `--peak-flops`). Cramming's aim on a GPU is a large share of the peak; 30% is ours;
2. two rows of the pretraining ladder at equal FLOPs (`--rung`, default 1e16: crammed MLM
   and ELECTRA, generator included), with the ladder's shape rule, tokenizer, held-out books
   and evaluation (`hasten.bench.ladder`).

Everything goes to `--out` as it is made (`env.json`, `throughput.json` after each model,
`ladder.json` after each row, `summary.json` last); one attempt per part, and a part that
fails is recorded and the next one runs. Lines are printed unbuffered. `--dry-run` runs the
same code on the CPU at tiny sizes in seconds, so a test keeps it working.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hasten.bench.ladder import LadderOptions, run_ladder
from hasten.bench.mlm_throughput import Shape, _batch, standard_candidates
from hasten.core.atomic import atomic_write
from hasten.core.flops import flop_counter
from hasten.core.trainer import param_groups, precision_context

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12,
             "L4": 121e12, "RTX 4090": 165e12}  # dense bf16 FLOP/s, vendors' datasheets
BASE = {"vocab": 32768, "hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072}
TINY = {"vocab": 512, "hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def write_json(path: Path, body: Any) -> None:
    text = json.dumps(body, indent=1, default=str)
    atomic_write(path, lambda fh: fh.write(text.encode()))


def peak_flops(device: torch.device, given: float | None) -> float | None:
    """The dense bf16 peak of `device` (`given` wins; None on a CPU or an unknown chip)."""
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, build: Callable[[], torch.nn.Module], loss: Callable, batch: dict,
            *, device: torch.device, compile_model: bool, steps: int, warmup: int,
            precision: str, peak: float | None) -> dict[str, Any]:
    """Tokens/s, FLOPs per step and MFU of one model's training steps."""
    torch.manual_seed(0)
    model = build().to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, betas=(0.9, 0.98), eps=1e-12,
                            fused=device.type == "cuda")
    batch = {k: v.to(device) for k, v in batch.items()}
    counter = flop_counter()
    with counter, precision_context(precision, device):
        loss(model, batch).backward()
    flops = float(counter.get_total_flops())
    opt.zero_grad(set_to_none=True)
    run = torch.compile(model) if compile_model else model

    def step() -> float:
        with precision_context(precision, device):
            value = loss(run, batch)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(value.detach())

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        last = step()
    _sync(device)
    seconds = (time.perf_counter() - t1) / steps
    tokens = batch["input_ids"].numel()
    return {"model": name, "compiled": compile_model, "precision": precision,
            "rows": batch["input_ids"].shape[0], "seconds_per_step": seconds,
            "warmup_seconds": t1 - t0, "tokens_per_s": tokens / seconds,
            "flops_per_step": flops, "flops_per_s": flops / seconds,
            "mfu": flops / seconds / peak if peak else None, "last_loss": last,
            "parameters": sum(p.numel() for p in {id(p): p for p in model.parameters()
                                                   }.values())}


def throughput(out: Path, dry: bool, device: torch.device, peak: float | None,
               rows: int) -> list[dict]:
    """Our encoder and HF BERT, eager and compiled; `throughput.json` after each."""
    shape = Shape(**(TINY if dry else BASE), max_len=512)
    cands = {c.name: c for c in standard_candidates(shape)}
    seq = 32 if dry else 128
    results: list[dict] = []
    for name in ("ours-sparse-static", "hf-bert"):
        c = cands[name]
        batch = _batch(shape.vocab, rows, seq, c.mask_rate, 0)
        for compiled in ((False,) if dry else (False, True)):
            try:
                r = measure(name, c.build, c.loss, batch, device=device,
                            compile_model=compiled, steps=2 if dry else 20,
                            warmup=1 if dry else 5, precision="fp32" if dry else "bf16",
                            peak=peak)
                mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
                log(f"{name}{' compiled' if compiled else ''}: {r['tokens_per_s']:,.0f} "
                    f"tokens/s, {r['flops_per_s'] / 1e12:.1f} TFLOP/s, MFU {mfu}")
            except Exception as e:  # one attempt: record it, go on
                r = {"model": name, "compiled": compiled, "error": repr(e)[:500]}
                log(f"{name}{' compiled' if compiled else ''}: failed: {r['error']}")
            results.append(r)
            write_json(out / "throughput.json", {"shape": vars(shape), "seq_len": seq,
                                                 "peak_flops": peak, "rows": results})
    return results


def ladder_pair(out: Path, work: Path, dry: bool, rung: float, corpus: list[str] | None,
                micro_batch: int, device: torch.device) -> dict[str, Any]:
    """Crammed MLM and ELECTRA at `rung` FLOPs; `ladder.json` after each row."""
    options = LadderOptions(
        corpus=list(corpus or []), rungs=[rung], seeds_per_row=1,
        micro_batch=micro_batch, device=device.type, compile=device.type == "cuda",
        precision="fp32" if dry else "bf16", out=str(work), checkpoints=2,
        **({"tiny": True, "vocab_size": 300, "min_steps": 3, "eval_rows": 16,
            "loss_grid_rows": [16], "mask_seeds": [1234], "heldout": "hash:0.3"}
           if dry else {}))
    results: dict[str, Any] = {}
    for row in ("crammed", "electra"):
        t0 = time.perf_counter()
        results = run_ladder(options, [row], say=log)
        log(f"{row}: done in {time.perf_counter() - t0:.0f}s")
        write_json(out / "ladder.json", results)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu-check")
    ap.add_argument("--work", default=None, help="row folders (default OUT/../gpu-check-work)")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, seconds")
    ap.add_argument("--rung", type=float, default=None, help="FLOPs per ladder row "
                                                             "(default 1e16; dry run 5e9)")
    ap.add_argument("--corpus", nargs="+", help="default: $HASTEN_DATA/gutenberg-large")
    ap.add_argument("--rows", type=int, default=None, help="throughput micro-batch rows")
    ap.add_argument("--micro-batch", type=int, default=None, help="ladder micro-batch rows")
    ap.add_argument("--peak-flops", type=float, default=None)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: "
                                               "throughput,ladder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dry = args.dry_run
    device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")
    peak = peak_flops(device, args.peak_flops)
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "peak_bf16_flops": peak, "dry_run": dry,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(out / "env.json", env)
    log(f"device {env['device']}, peak {peak}, dry run {dry}")
    summary: dict[str, Any] = {"env": env}
    parts = {"throughput": lambda: throughput(out, dry, device, peak,
                                              args.rows or (4 if dry else 256)),
             "ladder": lambda: ladder_pair(
                 out, Path(args.work or out.parent / f"{out.name}-work"), dry,
                 args.rung or (5e9 if dry else 1e16), args.corpus,
                 args.micro_batch or (8 if dry else 512), device)}
    for name, part in parts.items():
        if name in args.skip.split(","):
            continue
        t0 = time.perf_counter()
        try:
            summary[name] = part()
        except Exception:  # one attempt: keep what the other part gives
            summary[name] = {"error": traceback.format_exc()[-2000:]}
            log(f"{name} failed:\n{summary[name]['error']}")
        summary[f"{name}_seconds"] = time.perf_counter() - t0
        write_json(out / "summary.json", summary)
    log(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
