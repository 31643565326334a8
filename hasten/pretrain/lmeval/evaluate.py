"""`eval_lm(config)`: the evaluations that can see small-compute pretraining, for one model
folder (or `evaluate_lm(lm, config)` for a model in memory), written to `eval.json`.

Metrics (None where not run or not applicable, with the reason under `not_run` or
`not_applicable`):

    blimp               BLiMP accuracy, %: mean over paradigms (PLL-word-l2r,
                        hasten.pretrain.lmeval.blimp)
    blimp_by_paradigm   per paradigm, %
    blimp_interval      95% bootstrap interval of `blimp` (pairs resampled within paradigms)
    probe_sst2          SST-2 dev accuracy x 100 of a linear probe on mean-pooled features
    probe_stsb          STS-B dev Spearman x 100 of a ridge probe ([|u-v|, u*v])
    mlm_loss_15         held-out MLM cross-entropy at 15% plain-[MASK] fixed masks

`items` holds the per-item results, compact, for bootstrapping over items and seeds: BLiMP
pair ids and a 0/1 string per paradigm, SST-2 a 0/1 string over dev, STS-B dev predictions.
With `controls`, `controls.untrained` repeats every evaluation on an untrained copy of the
model and `controls.bag_of_tokens` runs the probes on mean one-hot token vectors. An
encoder without a trained MLM head (an ELECTRA discriminator export) gets the probes only.
The results are shown in docs/benchmarks.md, "Pretraining ladder: the Cramming ablation by held-out
loss".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasten.core.atomic import atomic_write
from hasten.core.config import option, write_config
from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.blimp import (
    Pair,
    corpus_words,
    evaluate_blimp,
    read_blimp,
    select_pairs,
)
from hasten.pretrain.lmeval.glue_tasks import task_file
from hasten.pretrain.lmeval.heldout import mlm_loss, pack_text, read_documents
from hasten.pretrain.lmeval.loading import LM, describe, load_lm, untrained_like
from hasten.pretrain.lmeval.probes import bag_of_tokens, encoder_features, probe_sst2, probe_stsb

EVALS = ("blimp", "mlm_loss", "probes")
METRICS = ("blimp", "blimp_by_paradigm", "blimp_interval", "probe_sst2", "probe_stsb",
           "mlm_loss_15")
RESULTS_FILE = "eval.json"
Say = Callable[[str], None]


@dataclass
class EvalLMConfig:
    """Settings of `hasten eval-lm MODEL_DIR`."""

    model_dir: str = option("", "the model folder: any transformers masked LM or a hasten "
                            "export (required)")
    evals: list[str] = option(list(EVALS), "every evaluation; pick some to save time")
    blimp_pairs: int = option(100, "fast mode for checkpoint ladders: a fixed 100 pairs per "
                              "paradigm, a tenth of the full set's cost")
    blimp_full: bool = option(False, "fast mode for checkpoints; the full 67 x 1,000 pairs "
                              "for final numbers")
    word_l2r: bool = option(True, "PLL-word-l2r (Kauf & Ivanova 2023): fair to words that "
                            "WordPiece splits")
    vocab_corpus: str | None = option(None, "no word filter; a corpus path keeps the BLiMP "
                                      "pairs whose words all occur in it (BabyLM)")
    heldout_corpus: str | None = option(None, "held-out text for mlm_loss_15; without it the "
                                        "loss is not run (training text is not held out)")
    heldout_rows: int = option(256, "rows of seq_len tokens: 256 x 127 tokens at 15% is "
                               "about 4,900 masked tokens")
    seq_len: int = option(128, "the row length of hasten's pretraining")
    batch_tokens: int = option(8192, "tokens per forward (rows x length): sentences vary "
                               "from 5 to 128 tokens, so batches are sized in tokens")
    precision: str = option("fp32", "exact and reproducible; bf16 autocast is faster on "
                            "CPUs with bf16 units and GPUs", choices=("fp32", "bf16"))
    device: str | None = option(None, "cuda when available, else cpu")
    blimp_dir: str | None = option(None, "data_root()/blimp; another folder of BLiMP's "
                                   "<paradigm>.jsonl(.gz) files")
    glue_dir: str | None = option(None, "data_root()/glue; another copy of GLUE's SST-2 and "
                                  "STS-B files")
    controls: bool = option(False, "the controls cost as much again; the benchmark runs them "
                            "once per architecture")
    bootstrap: int = option(1000, "bootstrap resamples: the usual count for a 95% "
                            "percentile interval")
    out: str | None = option(None, "no files, only the returned dict; a folder gets eval.json "
                             "and config.json")


def check_config(config: EvalLMConfig) -> None:
    unknown = [e for e in config.evals if e not in EVALS]
    if unknown or not config.evals:
        raise ConfigError(f"evals: unknown evaluation(s) {', '.join(unknown) or '(none given)'}"
                          f"; known: {', '.join(EVALS)}")
    for name, low in (("blimp_pairs", 1), ("heldout_rows", 1), ("seq_len", 8),
                      ("batch_tokens", 1), ("bootstrap", 1)):
        if getattr(config, name) < low:
            raise ConfigError(f"{name} must be >= {low}, got {getattr(config, name)}")


@dataclass
class Inputs:
    """The data an evaluation needs, read before the model is loaded (bad data fails fast)."""

    pairs: dict[str, list[Pair]] | None = None
    pair_counts: dict[str, Any] | None = None
    heldout_docs: list[str] | None = None


def read_inputs(config: EvalLMConfig, say: Say = lambda line: None) -> Inputs:
    inputs = Inputs()
    if "blimp" in config.evals:
        words = None
        if config.vocab_corpus:
            words = corpus_words(read_documents(config.vocab_corpus))
            say(f"vocabulary filter: {len(words):,} words from {config.vocab_corpus}")
        per = None if config.blimp_full else config.blimp_pairs
        inputs.pairs, inputs.pair_counts = select_pairs(read_blimp(config.blimp_dir), per,
                                                        words)
    if "probes" in config.evals:
        for task in ("sst2", "stsb"):
            for split in ("train", "dev"):
                task_file(task, split, config.glue_dir)
    if "mlm_loss" in config.evals and config.heldout_corpus:
        inputs.heldout_docs = read_documents(config.heldout_corpus)
    return inputs


def _blimp(lm: LM, inputs: Inputs, config: EvalLMConfig, say: Say) -> dict[str, Any]:
    assert inputs.pairs is not None
    n = sum(len(p) for p in inputs.pairs.values())
    say(f"BLiMP: {n:,} pairs in {len(inputs.pairs)} paradigms ({lm.name})")
    res = evaluate_blimp(lm, inputs.pairs, word_l2r=config.word_l2r,
                         batch_tokens=config.batch_tokens, n_boot=config.bootstrap)
    lo, hi = res["blimp_interval"]
    say(f"BLiMP {res['blimp']:.2f}% (95% interval {lo:.2f} to {hi:.2f})")
    return res


def _probes(features: Any, root: str | None, say: Say, label: str) -> dict[str, Any]:
    say(f"probes: SST-2 and STS-B on {label}")
    sst2, stsb = probe_sst2(features, root), probe_stsb(features, root)
    say(f"probe SST-2 accuracy {sst2['accuracy']:.2f}, STS-B Spearman {stsb['spearman']:.2f} "
        f"(Pearson {stsb['pearson']:.2f})")
    return {"probe_sst2": sst2["accuracy"], "probe_stsb": stsb["spearman"],
            "probe_stsb_pearson": stsb["pearson"], "probe_stsb_alpha": stsb["alpha"],
            "items": {"probe_sst2": "".join("1" if c else "0" for c in sst2["correct"]),
                      "probe_stsb": [round(float(p), 4) for p in stsb["predictions"]]}}


def _mlm_loss(lm: LM, inputs: Inputs, config: EvalLMConfig, say: Say) -> dict[str, Any]:
    assert inputs.heldout_docs is not None
    rows = pack_text(inputs.heldout_docs, lm.tokenizer, min(config.seq_len, lm.max_len),
                     max_rows=config.heldout_rows)
    res = mlm_loss(lm, rows, batch_rows=max(1, config.batch_tokens // rows.shape[1]))
    say(f"held-out MLM loss at 15%: {res['loss']:.4f} over {res['tokens']:,} masked tokens")
    return {"mlm_loss_15": res["loss"], "mlm_loss_tokens": res["tokens"],
            "mlm_loss_rows": res["rows"]}


def _run(lm: LM, inputs: Inputs, config: EvalLMConfig, say: Say) -> dict[str, Any]:
    """Every selected evaluation of one model: metrics, items, reasons, seconds."""
    out: dict[str, Any] = {m: None for m in METRICS}
    out.update(items={}, not_run={}, not_applicable={}, seconds={})
    no_head = f"{lm.kind}: no trained MLM head"
    for name in config.evals:
        t0 = time.perf_counter()
        if name == "blimp" and not lm.mlm:
            out["not_applicable"]["blimp"] = no_head
        elif name == "blimp":
            res = _blimp(lm, inputs, config, say)
            out["items"]["blimp"] = res.pop("items")
            out.update(res)
        elif name == "mlm_loss" and not lm.mlm:
            out["not_applicable"]["mlm_loss_15"] = no_head
        elif name == "mlm_loss" and inputs.heldout_docs is None:
            out["not_run"]["mlm_loss_15"] = "no heldout_corpus given"
        elif name == "mlm_loss":
            out.update(_mlm_loss(lm, inputs, config, say))
        elif name == "probes":
            res = _probes(encoder_features(lm, 2 * config.batch_tokens), config.glue_dir, say,
                          lm.name)
            out["items"].update(res.pop("items"))
            out.update(res)
        out["seconds"][name] = round(time.perf_counter() - t0, 3)
    for name in EVALS:
        if name not in config.evals:
            out["not_run"][name] = "not selected (evals)"
    return out


def _controls(lm: LM, inputs: Inputs, config: EvalLMConfig, say: Say) -> dict[str, Any]:
    say("controls: an untrained copy of the model")
    untrained = _run(untrained_like(lm), inputs, config, say)
    controls: dict[str, Any] = {"untrained": untrained}
    if "probes" in config.evals:
        t0 = time.perf_counter()
        bag = _probes(bag_of_tokens(lm.tokenizer, lm.max_len), config.glue_dir, say,
                      "bag of tokens")
        bag.pop("items")
        controls["bag_of_tokens"] = {**bag, "seconds": round(time.perf_counter() - t0, 3)}
    return controls


def evaluate_lm(lm: LM, config: EvalLMConfig, say: Say = lambda line: None,
                inputs: Inputs | None = None) -> dict[str, Any]:
    """Every evaluation `config` selects on a loaded (or wrapped, in-memory) model; the
    result dict `eval_lm` writes. `config.model_dir` and `config.out` are not used."""
    check_config(config)
    inputs = inputs or read_inputs(config, say)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"model": describe(lm)}
    results.update(_run(lm, inputs, config, say))
    if inputs.pair_counts is not None and "blimp" in config.evals:
        results["blimp_pairs"] = inputs.pair_counts
    if config.controls:
        results["controls"] = _controls(lm, inputs, config, say)
    results["conventions"] = {
        "blimp": "accuracy %, mean over paradigms; a pair is right when PLL(good) > PLL(bad)"
                 + (" (PLL-word-l2r)" if config.word_l2r else " (PLL, one token per copy)"),
        "blimp_interval": f"95% percentile bootstrap, {config.bootstrap} resamples of the "
                          "pairs within each paradigm",
        "probe_sst2": "dev accuracy x 100, logistic regression on mean-pooled final states",
        "probe_stsb": "dev Spearman x 100, ridge regression on [|u-v|, u*v]",
        "mlm_loss_15": "mean cross-entropy (nats) per masked token, 15% plain [MASK], "
                       "fixed seed",
    }
    results["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    return results


def eval_lm(config: EvalLMConfig, say: Say = lambda line: None) -> dict[str, Any]:
    """Load `config.model_dir`, run the selected evaluations, and write `eval.json` and
    `config.json` to `config.out` (if set), each atomically. Returns the results."""
    check_config(config)
    if not config.model_dir:
        raise ConfigError("model_dir is required")
    out = Path(config.out) if config.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DataError(f"out is a file, not a folder: {out}")
    inputs = read_inputs(config, say)
    t0 = time.perf_counter()
    lm = load_lm(config.model_dir, config.device, config.precision)
    load_seconds = round(time.perf_counter() - t0, 3)
    say(f"loaded {lm.name}: {lm.kind}, {describe(lm)['parameters']:,} parameters")
    results = evaluate_lm(lm, config, say, inputs)
    results["seconds"]["load"] = load_seconds
    if out is not None:
        write_config(config, out)
        body = (json.dumps(results, indent=1) + "\n").encode()
        atomic_write(out / RESULTS_FILE, lambda fh: fh.write(body))
        say(f"wrote {out / RESULTS_FILE}")
    return results
