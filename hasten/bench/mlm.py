"""`hasten bench mlm`: the Cramming benchmark on `$HASTEN_DATA/gutenberg`, in two parts.

(a) `throughput`: training tokens/s (forward, backward, clip, AdamW) of the crammed encoder
    vs HF `BertForMaskedLM` and HF `ModernBertForMaskedLM` at the same width, depth and
    vocabulary, side by side (`hasten.bench.mlm_throughput`).
(b) the ablation in the seed's style (Geiping & Goldstein 2022, Table: crammed 78.6 GLUE,
    original training setup 50.2, original architecture 27.7): every row pretrains for the
    same CPU budget and is scored on GLUE-small. Each row reverts one part of the crammed
    recipe to the original BERT's:
      crammed         the crammed recipe (`hasten.objectives.mlm.CRAMMED`) at the bench shape
      original-data   + original data: no tokens-per-character filter
      original-setup  + original training setup: lr 1e-4, warmup and linear decay, betas
                      (0.9, 0.999), eps 1e-6, clip 1, 15% masking, dense head, no batch ramp
                      (crammed architecture and filtered data, so only the setup changes)
      original-arch   + original architecture: HF BertForMaskedLM (post-norm, biases, dropout
                      0.1, full-vocabulary head) under the crammed training setup

Evidence: docs/benchmarks.md ("Pretraining"), from the command there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hasten.bench.pretrain import (
    Row,
    resolve_rows,
    rich_table,
    run_pretrain_suite,
    settings_from_args,
    write_results,
)
from hasten.objectives.mlm import CRAMMED

ROWS: dict[str, Row] = {r.name: r for r in (
    Row("crammed", {}, description="crammed recipe"),
    Row("original-data", {"cutoff": None}, description="+ original data (no filter)"),
    Row("original-setup", {"recipe": "original", "arch": "crammed", "dropout": 0.0,
                           "cutoff": CRAMMED["cutoff"]},
        description="+ original training setup"),
    Row("original-arch", {"arch": "bert", "sparse": None, "dropout": 0.1},
        description="+ original architecture (HF BERT)"),
)}
PARTS = ("throughput", *ROWS)
TITLE = "hasten bench mlm: crammed pretraining at an equal CPU budget"


def measure_throughput(quick: bool, say: Any) -> dict[str, Any]:
    """Part (a): tokens/s of each model, fp32 and bf16, interleaved."""
    from hasten.bench.mlm_throughput import Shape, ratios, standard_candidates, throughput

    shape = Shape(vocab=512, hidden=32, layers=1, heads=2, intermediate=64) if quick \
        else Shape(vocab=32768, hidden=256, layers=4, heads=4, intermediate=1024)
    batch, steps, repeats = (4, 1, 1) if quick else (32, 2, 3)
    rows = throughput(standard_candidates(shape), seq_len=32 if quick else 128, batch=batch,
                      steps=steps, repeats=repeats, vocab=shape.vocab, log=say)
    return {"shape": vars(shape), "batch": batch, "rows": rows,
            "ratios_vs_hf_bert_wall": ratios(rows, key="tokens_per_s"),
            "ratios_vs_hf_bert_cpu": ratios(rows, key="tokens_per_cpu_s")}


def run(args: argparse.Namespace, say: Any) -> tuple[dict[str, Any], Path, str, list[str]]:
    """The suite as `hasten bench mlm` runs it: (results, out dir, title, notes)."""
    names = args.methods.split(",") if args.methods else list(PARTS)
    rows = resolve_rows(ROWS, [n for n in names if n != "throughput"])
    s = settings_from_args(args)
    out = Path(args.out or "runs/bench-mlm")
    extra: dict[str, Any] = {}
    if "throughput" in names:
        say("throughput: our encoder vs HF BERT and HF ModernBERT ...")
        extra["throughput"] = measure_throughput(s.quick, say)
    results = run_pretrain_suite("mlm", rows, s, out, say, extra)
    return results, out, TITLE, throughput_notes(results)


def throughput_notes(results: dict[str, Any]) -> list[str]:
    tp = results.get("throughput")
    if not tp:
        return []
    lines = ["## Throughput (tokens/s, forward + backward + clip + AdamW)", "",
             "| model | precision | tokens/s | x HF BERT |", "|---|---|---|---|"]
    ratio = tp["ratios_vs_hf_bert_wall"]
    for r in tp["rows"]:
        x = ratio.get(f"{r['model']}/{r['precision']}")
        lines.append(f"| {r['model']} | {r['precision']} | {r['tokens_per_s']:.0f} | "
                     f"{'n/a' if x is None else f'{x:.2f}'} |")
    return lines


__all__ = ["ROWS", "PARTS", "run", "rich_table", "write_results"]
