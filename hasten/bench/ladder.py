"""`hasten bench pretrain-ladder`: Cramming's ablation and ELECTRA at a ladder of FLOP budgets.

Cramming's ablation table (Geiping & Goldstein 2023; the seed slide: crammed 78.6 GLUE,
+ original data 77.3, + original train 50.2, + original arch. 27.7, + minimal train mod. 78.1,
+ minimal arch. mod. 76.7) and ELECTRA vs MLM (Clark et al. 2020) are measured here at
budgets a CPU can afford, as rungs of training FLOPs (generator included for ELECTRA), so the
result does not drift with the machine's load. Each row changes one part of the crammed
recipe (`ROWS`, with its source):

    control         no pretraining: the initialised crammed model (Cramming's table has BERT
                    without pretraining at 45.5 GLUE)
    crammed         the final crammed recipe (bert-o4 on crammed-bert)
    original-data   + original data: the same books without the tokens-per-character filter
    original-setup  + original training setup: BERT's lr 1e-4, 1% warmup then linear decay,
                    betas (0.9, 0.999), eps 1e-6, clip 1.0, 15% masking, full head, no batch
                    ramp; the crammed architecture and filtered data
    original-arch   + original architecture: HF BertForMaskedLM (post-norm, biases, dropout
                    0.1, learned positions, full head) under the crammed training setup
    minimal-train   + minimal train mod.: the original training setup with the slide's first
                    training modification, the high learning rate (1e-3), and the budget-tied
                    triangle schedule that carries it. The paper's table does not spell the
                    minimal set out in what we could read; this is our reading of the slide
                    ("High learning rate; Big batches; Drop dropout")
    minimal-arch    + minimal arch. mod.: the original architecture with the layer norm moved
                    inside the residual (pre-norm, Xiong et al. 2020; `hasten.models.bert`),
                    as the slide names it, under the crammed training setup
    electra         ELECTRA (generator 1/4 wide, 15% masking, loss MLM + 50 x RTD)
    electra@0.5     ELECTRA at half of the rung's FLOPs
    electra@0.25    ELECTRA at a quarter of them

Every row of a rung has the same shape, fixed by a FLOP rule (`rung_size`: the sizing rule of
`hasten.pretrain.objectives.sizing` at the rung's FLOPs, 20 tokens per non-embedding
parameter, at least `min_steps` steps; no timing, so a rung's shape is the same on any
machine), the same tokenizer (one per corpus, `hasten.text.prepare`) and the same held-out
books (authors W-Z of gutenberg-large). Every row is scored on the same held-out rows: those
of the filtered corpus (the filter never touches held-out books, and `original-data` is
scored on them too), in one fixed shuffled order (`hasten.bench.pretrain.order_heldout`).
Seeds: 3 for every row; every row at every rung (`large_rows` can restrict the largest).

Rows run through `hasten.bench.pretrain`'s folders: a finished row is reused, one row per
process splits the ladder over cores. Metrics per row: `mlm_loss_15` (the decision metric:
held-out MLM loss at 15% with fixed masks, averaged over `mask_seeds`, with the loss at every
`loss_grid_rows` x `mask_seeds` kept in the record), `blimp`, `probe_sst2`, `probe_stsb`
(`hasten.pretrain.lmeval`, through `evaluate_checkpoint`). The plan and its decision rules:
benchmarks/plans/pretrain-verdicts.md; `hasten.bench.ladder_verdicts` applies them.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasten.bench import ladder_verdicts
from hasten.bench import pretrain as runner
from hasten.bench.harness import Suite, register_suite
from hasten.core.budget import parse_budget
from hasten.core.config import option, resolve, to_dict
from hasten.core.distributed import default_device
from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root
from hasten.core.trainer import train
from hasten.pretrain.cram import LossRng
from hasten.pretrain.objectives import Vocab, get_objective
from hasten.pretrain.objectives.flops import count_parameters
from hasten.pretrain.objectives.recipes import (
    CrammedRecipe,
    native_precision,
    resolve_recipe,
    train_config,
)
from hasten.pretrain.objectives.sizing import Shape, Size, choose_size
from hasten.text.prepare import PrepareSpec, content_hash, prepare_corpus
from hasten.text.read import expand_paths
from hasten.text.tokenizer import CRAM

SUITE = "pretrain-ladder"
TITLE = "hasten bench pretrain-ladder: Cramming's ablation and ELECTRA at FLOP budgets"
LADDER_SHAPES = ((2, 128), (3, 192), (4, 256), (6, 384), (8, 512))
TINY_SHAPES = ((1, 32),)


@dataclass(frozen=True)
class Row:
    """One row: recipe changes from the crammed recipe, and where they come from."""

    name: str
    description: str
    recipe: str = "crammed"
    changes: tuple[tuple[str, Any], ...] = ()
    objective: str = "mlm"
    fraction: float = 1.0
    filtered: bool = True
    trains: bool = True


_ORIGINAL_ON_CRAMMED = (("arch", "crammed"), ("dropout", 0.0))
ROWS: dict[str, Row] = {r.name: r for r in (
    Row("control", "no pretraining (the initialised model)", trains=False),
    Row("crammed", "crammed recipe"),
    Row("original-data", "+ original data (no filter)", filtered=False),
    Row("original-setup", "+ original training setup", recipe="original",
        changes=_ORIGINAL_ON_CRAMMED),
    Row("original-arch", "+ original architecture (HF BERT, post-norm)",
        changes=(("arch", "bert"), ("sparse", None), ("dropout", 0.1))),
    Row("minimal-train", "+ minimal train mod. (original setup, lr 1e-3, triangle)",
        recipe="original", changes=(*_ORIGINAL_ON_CRAMMED, ("lr", 1e-3),
                                    ("schedule", "triangle"),
                                    ("schedule_params", {"start": 0.25, "peak_at": 0.75,
                                                         "final": 0.0}))),
    Row("minimal-arch", "+ minimal arch. mod. (original architecture, pre-norm)",
        changes=(("arch", "bert-prenorm"), ("sparse", None), ("dropout", 0.1))),
    Row("electra", "ELECTRA, equal FLOPs", objective="electra"),
    Row("electra@0.5", "ELECTRA at 50% of the FLOPs", objective="electra", fraction=0.5),
    Row("electra@0.25", "ELECTRA at 25% of the FLOPs", objective="electra", fraction=0.25),
)}


@dataclass
class LadderOptions:
    """Settings of the pretraining ladder."""

    corpus: list[str] = option([], "empty: shared/data/gutenberg-large (193 books, 13.5M "
                               "words)")
    heldout: str = option("authors:W-Z", "whole books: the data README's held-out split")
    rungs: list[float] = option([1e13, 4e13], "training FLOPs per row, 4x apart: about 3 "
                                "and 12 core-minutes of training a row, so 3 seeds of every "
                                "row fit a plan of about 9 core-hours")
    large_rows: list[str] = option([], "empty: every row at every rung; else only these at "
                                   "the largest")
    seeds_per_row: int = option(3, "3 seeds of every row: a verdict needs a seed interval")
    seeds: dict = option({}, "per-row seed counts over seeds_per_row, e.g. {\"control\": 1}")
    vocab_size: int = option(8192, "one WordPiece tokenizer for every row and rung; 8192 "
                             "suits the small shapes (sizing rule)")
    seq_len: int = option(128, "Cramming's rows")
    cutoff: float = option(0.3, "Cramming's bookcorpus/Wikipedia filter cutoff")
    min_steps: int = option(200, "the sizing rule's minimum optimizer steps per row")
    micro_batch: int = option(64, "rows per micro-batch (speed only: the batch is the rule's)")
    precision: str = option("auto", "as cram: bf16 autocast where the device computes bf16 "
                            "natively, else fp32", choices=("auto", "bf16", "fp32"))
    metric: str = option("mlm_loss_15", "the decision metric of the recipe rows (held-out "
                         "loss, one tokenizer, the same rows and masks); the others are "
                         "report rows", choices=("mlm_loss_15", "blimp", "probe_sst2",
                                                 "probe_stsb"))
    eval_rows: int = option(4096, "held-out rows of mlm_loss_15 (about 78k masked tokens)")
    mask_seeds: list[int] = option([1234, 1235, 1236], "mlm_loss_15 is the mean over three "
                                   "fixed maskings of the same rows")
    loss_grid_rows: list[int] = option([256, 1024, 4096], "the loss is also kept at these "
                                       "row counts x every mask seed, to see its noise")
    only_rungs: list[float] = option([], "empty: run every rung; else only these (one "
                                     "process per rung or row, the same out folder)")
    lmeval: dict = option({}, "EvalLMConfig settings over the ladder's own (see "
                          "lmeval_settings)")
    full_blimp_at_largest: bool = option(False, "BLiMP is a report row: 100 pairs per "
                                         "paradigm at every rung, comparable across rungs")
    blimp_vocab_filter: bool = option(True, "BabyLM's rule: only pairs whose words the "
                                      "training corpus holds")
    checkpoints: int = option(10, "checkpoints per row, so an interrupted row resumes")
    tiny: bool = option(False, "a ladder for tests: one 1 x 32 shape, fp32", flag=False)
    device: str | None = option(None, "None: cuda when available, else cpu")
    compile: bool = option(False, "torch.compile: pays off on a GPU, not on a CPU")
    cache: str | None = option(None, "None: $HASTEN_CACHE/corpora or ~/.cache/hasten/corpora")
    out: str = option("runs/bench-pretrain-ladder", "rows and results.json go here")
    plan: str = option("benchmarks/plans/pretrain-verdicts.md", "the plan its rows follow: "
                       "`hasten report` shows whether it was committed before they ran")


@dataclass
class Ladder:
    """A resolved ladder: options, the prepared corpora (filtered and not) and the plan."""

    options: LadderOptions
    prepared: dict[bool, Any] = field(default_factory=dict)
    corpus_keys: dict[str, str] = field(default_factory=dict)
    scored: torch.Tensor | None = None  # the held-out rows every row is scored on


def menu(options: LadderOptions) -> tuple[Shape, ...]:
    shapes = TINY_SHAPES if options.tiny else LADDER_SHAPES
    return tuple(Shape(layers, hidden, options.vocab_size) for layers, hidden in shapes)


def precision_of(options: LadderOptions) -> str:
    """The options' precision, "auto" made concrete for their device (`native_precision`)."""
    if options.precision != "auto":
        return options.precision
    return native_precision(options.device or default_device())


def rung_size(rung: float, options: LadderOptions) -> Size:
    """The rung's shape and batch by the FLOP rule (no timing, no machine in it)."""
    return choose_size(f"{rung:g}flop", seq_len=options.seq_len,
                       micro_batch=options.micro_batch, min_steps=options.min_steps,
                       precision=options.precision, free_bytes=float("inf"),
                       menu=menu(options))


def task_name(rung: float) -> str:
    return f"ladder@{rung:.2g}flop".replace("+", "")


def seeds_of(options: LadderOptions, row: str) -> int:
    """How many seeds `row` runs: its entry in `options.seeds`, else `seeds_per_row`."""
    return int(options.seeds.get(row, options.seeds_per_row))


def plan(options: LadderOptions, rows: list[str] | None = None,
         rungs: list[float] | None = None) -> list[tuple[float, Row, int]]:
    """(rung, row, seed) of every run: every row at every rung (`large_rows`, when set, at
    the largest); rung by rung, seed by seed."""
    names = rows or list(ROWS)
    for name in names:
        if name not in ROWS:
            raise ConfigError(f"unknown row {name!r}; known: {', '.join(ROWS)}")
    all_rungs = sorted(float(r) for r in options.rungs)
    if not all_rungs or min(all_rungs) <= 0:
        raise ConfigError(f"rungs must be positive FLOP counts, got {options.rungs}")
    out = []
    for rung in sorted(float(r) for r in (rungs or all_rungs)):
        at_top = rung == all_rungs[-1] and len(all_rungs) > 1 and bool(options.large_rows)
        for seed in range(max(seeds_of(options, name) for name in names)):
            for name in names:
                if at_top and name not in options.large_rows:
                    continue
                if seed < seeds_of(options, name):
                    out.append((rung, ROWS[name], seed))
    return out


def row_recipe(row: Row, rung: float, options: LadderOptions) -> tuple[CrammedRecipe, Size]:
    """The resolved recipe of a row at a rung: the rung's shape and batch, the row's
    changes, the options' precision, the filter's cutoff (none for `original-data`)."""
    size = rung_size(rung, options)
    obj = get_objective(row.objective)
    cutoff = options.cutoff if row.filtered and not options.tiny else None
    changes = {**size.shape.as_recipe(), "micro_batch": size.micro_batch, "batch": size.batch,
               "seq_len": options.seq_len, "precision": precision_of(options), "cutoff": cutoff,
               **dict(row.changes)}
    return resolve_recipe(row.recipe, getattr(obj, "recipe_values", None), **changes), size


def prepare(ladder: Ladder, filtered: bool, say: runner.Say) -> Any:
    """The prepared corpus, filtered or not (one tokenizer for both; cached)."""
    if filtered not in ladder.prepared:
        o = ladder.options
        spec = PrepareSpec(tokenizer=replace(CRAM, vocab_size=o.vocab_size),
                           seq_len=o.seq_len, cutoff=o.cutoff if filtered and not o.tiny
                           else None, heldout=o.heldout)
        ladder.prepared[filtered] = prepare_corpus(corpus_paths(o), spec, o.cache, say=say)
    return ladder.prepared[filtered]


def heldout_rows(ladder: Ladder, prep: Any, say: runner.Say) -> torch.Tensor:
    """The rows every row is scored on: the filtered corpus's held-out rows, in the fixed
    order of `order_heldout`. A DataError if `prep` (a row's own corpus) was tokenized
    differently, since then its loss would not be comparable."""
    scored = prepare(ladder, True, say)
    if prep.tokenizer.to_str() != scored.tokenizer.to_str():
        raise DataError("the unfiltered corpus has another tokenizer than the filtered one; "
                        "prepare both in one cache (--set cache=DIR)")
    if ladder.scored is None:
        ladder.corpus_keys["heldout"] = scored.summary.get("key", "")
        ladder.scored = runner.order_heldout(scored.heldout)
    return ladder.scored


def corpus_paths(options: LadderOptions) -> list[str]:
    if options.corpus:
        return list(options.corpus)

    return [str(data_root() / "gutenberg-large")]


def lmeval_settings(o: LadderOptions, rung: float) -> dict[str, Any]:
    """How a row is evaluated: BLiMP on the pairs whose words the corpus holds (BabyLM's
    filter), 100 per paradigm (all of them at the largest rung with
    `full_blimp_at_largest`), fp32 (exact pair decisions), then `o.lmeval` on top. A tiny
    ladder (tests) scores 2 pairs per paradigm and no probes."""
    if o.tiny:
        return {"blimp_pairs": 2, "precision": "fp32", "evals": ["blimp"], **o.lmeval}
    base: dict[str, Any] = {"blimp_pairs": 100, "precision": "fp32",
                            "blimp_full": o.full_blimp_at_largest and rung == max(o.rungs)}
    paths = corpus_paths(o)
    if o.blimp_vocab_filter and len(paths) == 1:
        base["vocab_corpus"] = str(paths[0])
    return {**base, **o.lmeval}


def row_settings(row: Row, rung: float, seed: int, ladder: Ladder) -> dict[str, Any]:
    """Everything a row's result depends on (its key is their hash)."""
    o = ladder.options
    if "content" not in ladder.corpus_keys:
        ladder.corpus_keys["content"] = content_hash(expand_paths(corpus_paths(o)))
    r, _ = row_recipe(row, rung, o)
    return {"row": row.name, "objective": row.objective, "fraction": row.fraction,
            "trains": row.trains, "rung": rung, "seed": seed, "recipe": r.to_dict(),
            "corpus": ladder.corpus_keys["content"], "heldout": o.heldout,
            "scored_on": "filtered held-out rows, order_heldout(seed 0)",
            "vocab_size": o.vocab_size, "eval_rows": o.eval_rows,
            "mask_seeds": list(o.mask_seeds), "loss_grid_rows": list(o.loss_grid_rows),
            "lmeval": lmeval_settings(o, rung), "metric": o.metric}


def _train_row(row: Row, rung: float, seed: int, r: CrammedRecipe, size: Size, prep: Any,
               model: torch.nn.Module, folder: Path, ladder: Ladder) -> Any:
    """Train a row's model for its FLOPs, checkpointing into `folder/train`."""
    o = ladder.options
    obj = get_objective(row.objective)
    loss_fn = obj.make_loss(r, Vocab.from_tokenizer(prep.tokenizer), seed)
    every = max(1, size.steps // o.checkpoints) if o.checkpoints else 0
    tcfg = train_config(r, f"{rung * row.fraction:g}flop", seed=seed,
                        out_dir=str(folder / "train"), quiet=True, device=o.device,
                        checkpoint_every=every, compile=o.compile,
                        resume=(folder / "train" / "checkpoints" / "latest").is_file())
    rows = torch.from_numpy(prep.train.astype(np.int64))
    return train(model, torch.utils.data.TensorDataset(rows), loss_fn, tcfg,
                 hooks=[LossRng(getattr(loss_fn, "generator", None))],
                 tokens_fn=lambda b: int(b[0].numel()))


def _loss_curve(folder: Path) -> list[list[float]]:
    path = folder / "train" / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [[r["step"], r["loss"]] for r in rows if r.get("kind") == "train" and "loss" in r]


def run_row(rung: float, row: Row, seed: int, ladder: Ladder,
            say: runner.Say = runner.say_nothing) -> dict[str, Any] | None:
    """Run (or reuse) one row; its record, or None when a stop signal ended its training
    (a checkpoint is kept and the next call resumes it)."""
    o = ladder.options
    task, method = task_name(rung), row.name
    folder = Path(o.out) / task / f"{method}-seed{seed}"
    settings = row_settings(row, rung, seed, ladder)
    key = runner.row_key(settings)
    done = runner.load_record(folder, key)
    if done is not None:
        say(f"{task} / {method} / seed {seed}: reusing {folder}")
        return done
    if (folder / "key").is_file() and (folder / "key").read_text() != key:
        shutil.rmtree(folder)  # another setting's partial run: start over
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key").write_text(key)
    prep = prepare(ladder, row.filtered, say)
    r, size = row_recipe(row, rung, o)
    torch.manual_seed(seed)
    model = get_objective(row.objective).build_model(r, Vocab.from_tokenizer(prep.tokenizer))
    result = None
    if row.trains:
        say(f"{task} / {method} / seed {seed}: training for {rung * row.fraction:.3g} FLOPs")
        result = _train_row(row, rung, seed, r, size, prep, model, folder, ladder)
        if result.stopped != "budget":
            say(f"{task} / {method} / seed {seed}: stopped ({result.stopped}); it resumes")
            return None
    else:
        model.to(o.device or default_device())
    metrics = runner.evaluate_checkpoint(model, prep.tokenizer,
                                         heldout_rows(ladder, prep, say), rows=o.eval_rows,
                                         mask_seeds=o.mask_seeds,
                                         grid_rows=o.loss_grid_rows,
                                         precision=precision_of(o),
                                         lmeval=lmeval_settings(o, rung))
    details = metrics.pop("details")
    items = details.pop("items", None)  # per-item results: beside the record, not in it
    if items:
        (folder / "items.json").write_text(json.dumps(_jsonable(items)))
    record = runner.make_record(
        task=task, method=method, seed=seed, metric=o.metric, metrics=metrics, result=result,
        key=key, notes={"description": row.description, "loss_curve": _loss_curve(folder)},
        extra={"rung_flops": rung, "budget": f"{rung * row.fraction:g}flop",
               "parameters": count_parameters(model), "shape": size.shape.as_recipe(),
               "batch": size.batch, "micro_batch": size.micro_batch,
               "recipe": r.to_dict(), "corpus_key": prep.summary.get("key"),
               "scored_on_key": ladder.corpus_keys.get("heldout"),
               "eval_details": _jsonable(details)})
    runner.write_record(folder, record)
    say(f"{task} / {method} / seed {seed}: " + ", ".join(
        f"{k} {v:.4g}" for k, v in metrics.items() if v is not None))
    return record


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_ladder(options: LadderOptions, rows: list[str] | None = None,
               rungs: list[float] | None = None, say: runner.Say = runner.say_nothing,
               command: str | None = None) -> dict[str, Any]:
    """Run the planned rows (reusing finished ones), then assemble every finished row of the
    full plan found under `options.out` (rows other processes ran included) into the
    harness-layout results dict."""
    ladder = Ladder(options)
    todo = plan(options, rows, rungs or options.only_rungs or None)
    say(f"{len(todo)} row runs; shapes: " + "; ".join(
        f"{task_name(g)} {rung_size(g, options).shape.layers} x "
        f"{rung_size(g, options).shape.hidden}" for g in sorted(set(options.rungs))))
    stopped = False
    for rung, row, seed in todo:
        if run_row(rung, row, seed, ladder, say) is None:
            stopped = True
            break
    order = {runner.row_key(row_settings(row, g, s, ladder)): i
             for i, (g, row, s) in enumerate(plan(options))}
    records = sorted((r for r in runner.finished_records(Path(options.out))
                      if r.get("key") in order), key=lambda r: order[r["key"]])
    results = runner.assemble(SUITE, records, baseline="control", options=to_dict(options),
                              methods=list(ROWS), command=command)
    results["stopped"] = stopped
    results["planned"] = len(order)
    return results


def options_from_args(args: argparse.Namespace) -> tuple[LadderOptions, list[str] | None]:
    """The ladder's options from `hasten bench pretrain-ladder` flags (`--set`, `--config`,
    `--corpus`, `--out`, `--budget RUNGflop` for one rung, `--quick` for a tiny ladder),
    and the rows named by `--methods`."""
    flags: dict[str, Any] = {}
    if getattr(args, "corpus", None):
        flags["corpus"] = list(args.corpus)
    if getattr(args, "out", None):
        flags["out"] = args.out
    sets = [s if isinstance(s, str) else f"{s[0]}={json.dumps(s[1])}"
            for s in (getattr(args, "set", None) or [])]
    options = resolve(LadderOptions, file=getattr(args, "config", None), sets=sets,
                      flags=flags, section=SUITE)
    if getattr(args, "quick", False):
        options = replace(options, tiny=True, vocab_size=300, precision="fp32",
                          rungs=[2e10], seeds={}, seeds_per_row=1, min_steps=3, eval_rows=16,
                          loss_grid_rows=[16], mask_seeds=[1234])
    if getattr(args, "budget", None):
        unit, amount = parse_budget(args.budget)
        if unit != "flops":
            raise ConfigError(f"pretrain-ladder rungs are FLOPs (e.g. 1e14flop), got "
                              f"{args.budget!r}")
        declared = [float(r) for r in options.rungs]
        if not any(math.isclose(amount, r, rel_tol=1e-9) for r in declared):
            raise ConfigError(f"--budget {args.budget}: not one of the ladder's rungs "
                              f"({', '.join(f'{r:g}' for r in declared)}); change them with "
                              "--set rungs=[...]")
        # one rung of the declared ladder: which rows run there, and how they are scored,
        # stay what the whole ladder says
        options = replace(options, only_rungs=[amount])
    rows = args.methods.split(",") if getattr(args, "methods", None) else None
    return options, rows


def run(args: argparse.Namespace, say: runner.Say) -> tuple[dict[str, Any], Path, str, list]:
    """The suite as `hasten bench pretrain-ladder` runs it: (results, out dir, title, notes)."""
    options, rows = options_from_args(args)
    results = run_ladder(options, rows, say=say)
    return results, Path(options.out), TITLE, []


def _verdict(results: dict[str, Any]) -> tuple[int, list[str]]:
    """The plan's verdicts on the held-out loss, printed under the tables (exit status 0:
    a verdict of no difference is a result, not a failure)."""
    return 0, ladder_verdicts.report_lines(results)


register_suite(Suite(SUITE, tasks=[], methods=list(ROWS), own_rows=run, verdict=_verdict,
                     description="Cramming's ablation and ELECTRA at FLOP budgets, decided "
                                 "by held-out MLM loss (BLiMP and probes beside)"))
