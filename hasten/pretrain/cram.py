"""`hasten cram`: pretrain a BERT-style encoder from raw text under a budget.

The pipeline of Cramming (Geiping & Goldstein 2023, "Cramming: Training a Language Model on a
Single GPU in One Day"), with 24h BERT's (Izsak et al. 2021) in-RAM data and budget-tied
schedule:

    summary = cram(CramConfig(corpus=["shared/data/gutenberg"], budget="30m", out="runs/c"))

1. prepare the corpus once (`hasten.text.prepare`): read, hold out whole books, train the
   WordPiece tokenizer, apply Cramming's tokens-per-character filter, pack [N, seq_len] rows;
   cached by content and settings, so a second run starts in seconds. Preparation is
   reported apart and not charged to the budget (Cramming's rule);
2. size the model to the budget and the machine (`hasten.pretrain.objectives.sizing`, rule in its
   docstring): a short timing probe, the largest shape the budget trains compute-optimally,
   a batch giving at least `min_steps` steps, no step longer than 2% of a wall-clock budget.
   Any of it can be set by hand (`layers`, `hidden`, ... or `size="recipe"`);
3. train with `hasten.core.trainer.train` under the budget (wall clock "30m", tokens "3e9tok" or
   FLOPs "1e15flop"), the held-out loss evaluated every `eval_every` of the budget off the
   training clock, checkpoints in `out/checkpoints` (`resume=True` continues from the last);
4. export a folder `transformers` loads (`model/`), a loss plot (`loss.png`) and
   `summary.json`; `config.json` holds the settings and the resolved recipe.

A stop signal (SIGTERM, and SIGINT where the trainer handles it) ends training with a
checkpoint; `cram` then returns a summary with `stopped` set and exports nothing. The
objective (model, loss, export) is a plug-in: `hasten.pretrain.objectives`. Results:
docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small difference").
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from hasten.core.atomic import atomic_write
from hasten.core.budget import parse_budget
from hasten.core.config import option, to_dict, write_config
from hasten.core.distributed import default_device, resolve_device
from hasten.core.errors import ConfigError
from hasten.core.paths import cache_dir
from hasten.core.trainer import Hook, autocast_for, train
from hasten.pretrain.objectives import Vocab, get_objective
from hasten.pretrain.objectives.flops import count_parameters
from hasten.pretrain.objectives.recipes import (
    CrammedRecipe,
    resolve_recipe,
    train_config,
    with_precision,
)
from hasten.pretrain.objectives.sizing import (
    Shape,
    cached_probe,
    cap_step,
    choose_size,
    describe,
    shape_of,
)
from hasten.text.prepare import Prepared, PrepareSpec, prepare_corpus
from hasten.text.tokenizer import CRAM

HELDOUT_SEED = 1234  # masking seed of the held-out loss: the same masks at every evaluation
SHAPE_KEYS = ("layers", "hidden", "heads", "intermediate", "vocab_size", "micro_batch", "batch")


@dataclass
class CramConfig:
    """Settings of `hasten cram`. The recipe's own values (shape, optimizer, masking, ...)
    live in its dataclass (`hasten.pretrain.objectives.recipes`); `changes` holds the ones
    set by hand."""

    corpus: list[str] = option([], "no default corpus: text files, folders, .gz or .jsonl")
    budget: str = option("60s", "a one-minute run; real runs pass 30m, 24h or 1e15flop")
    out: str = option("runs/cram", "the output folder")
    recipe: str = option("crammed", "Cramming's final recipe (bert-o4 on crammed-bert); "
                         "original: BERT-base's", choices=("crammed", "original"))
    objective: str = option("mlm", "masked-language modelling; electra for ELECTRA")
    changes: dict = option({}, "no changes: recipe values set by hand, e.g. {\"lr\": 3e-4} "
                           "(`--set lr=3e-4` and the recipe's flags land here); a shape value "
                           "set here is not sized", flag=False)
    size: str = option("auto", "auto: size the shape and batch to the budget (sizing rule); "
                       "recipe: the recipe's full shape (16 x 768 crammed)",
                       choices=("auto", "recipe"))
    heldout: str = option("hash:0.01", "1% of the files by a hash of their name; one file: "
                          "its last 1%; authors:W-Z for gutenberg-large")
    unit: str = option("paragraph", "hard-wrapped books: paragraphs are the documents",
                       choices=("paragraph", "line"))
    min_steps: int = option(200, "sizing: enough optimizer steps for the schedule's rise and "
                            "fall to span many steps (our choice)", flag=False)
    step_fraction: float = option(0.02, "sizing: no step longer than 2% of a wall-clock "
                                  "budget, so a stop never waits long", flag=False)
    eval_every: float = option(0.1, "held-out loss ten times per run")
    log_every: int = option(10, "the training loss logged every 10 steps", flag=False)
    eval_rows: int = option(256, "held-out rows per evaluation (fixed, evenly spaced): "
                            "32k tokens, a second or two on a CPU core", flag=False)
    checkpoints: int = option(10, "checkpoints per run, evenly over the expected steps (and "
                              "one on a stop signal); 0: only on a stop signal")
    resume: bool = option(False, "continue from out/checkpoints with the saved shape")
    overwrite: bool = option(False, "replace a non-empty out folder")
    seed: int = option(0, "the seed of init, shuffling and masking")
    device: str | None = option(None, "None: cuda when available, else cpu")
    cache: str | None = option(None, "None: $HASTEN_CACHE/corpora or ~/.cache/hasten/corpora")
    probe_cache: str | None = option(None, "None: $HASTEN_CACHE/probes; a timing probe is "
                                     "measured once per shape and machine, so the same "
                                     "command sizes the same way", flag=False)
    compile: bool = option(False, "torch.compile pays off on a GPU, not on a CPU")
    quiet: bool = option(False, "no progress lines")


@dataclass(frozen=True)
class CramSetup:
    """Everything `cram` settles before the model exists: the budget (parsed once), the
    resolved and sized recipe, what sizing measured, and the prepared corpus."""

    budget: tuple[str, float]
    recipe: CrammedRecipe
    size: dict[str, Any]
    prep: Prepared
    prepare_seconds: float


def recipe_of(cfg: CramConfig) -> CrammedRecipe:
    """The named recipe with the objective's own values and `cfg.changes` applied."""
    obj = get_objective(cfg.objective)
    return resolve_recipe(cfg.recipe, getattr(obj, "recipe_values", None), **cfg.changes)


def _sized_by_hand(cfg: CramConfig, recipe: CrammedRecipe, budget: tuple[str, float],
                   measure: Callable[[Shape, int], float]) -> tuple[CrammedRecipe, dict]:
    """A shape set by hand (or the recipe's): only the batch of a wall-clock budget is cut,
    so no step takes over `step_fraction` of it."""
    info: dict[str, Any] = {"rule": "set by hand" if cfg.size == "auto"
                            else "the recipe's shape"}
    unit, amount = budget
    if unit == "seconds" and "batch" not in cfg.changes:
        probe = measure(shape_of(recipe), min(recipe.micro_batch, 16))
        micro, batch = cap_step(amount, probe, recipe.micro_batch, recipe.batch,
                                cfg.step_fraction)
        recipe = replace(recipe, micro_batch=micro, batch=batch)
        info.update(probe_seconds=probe, batch=batch, micro_batch=micro)
    return recipe, info


def size_recipe(cfg: CramConfig, recipe: CrammedRecipe, budget: tuple[str, float],
                say: Callable[[str], None]) -> tuple[CrammedRecipe, dict[str, Any]]:
    """The recipe with its shape and batch sized to the budget (`cfg.size == "auto"`): the
    sizing rule's choice, where `cfg.changes` does not set a value. Timing probes (wall-clock
    budgets) are read from the probe cache when measured before. Returns (recipe, size
    info, with every probe's seconds and whether it was cached)."""
    device = cfg.device or default_device()
    t0 = time.perf_counter()
    cache = cfg.probe_cache or str(cache_dir("probes"))
    probes: list[dict[str, Any]] = []

    def measure(shape: Shape, rows: int) -> float:
        seconds, cached = cached_probe(shape, rows, seq_len=recipe.seq_len,
                                       precision=recipe.precision, device=device,
                                       seed=cfg.seed, cache=cache)
        probes.append({"shape": f"{shape.layers}x{shape.hidden}", "rows": rows,
                       "seconds": seconds, "cached": cached})
        return seconds

    if cfg.size != "auto" or all(k in cfg.changes for k in SHAPE_KEYS):
        recipe, info = _sized_by_hand(cfg, recipe, budget, measure)
        return recipe, {**info, "probes": probes} if probes else info
    size = choose_size(budget, seq_len=recipe.seq_len, micro_batch=recipe.micro_batch,
                       min_steps=cfg.min_steps, step_fraction=cfg.step_fraction,
                       precision=recipe.precision, step_seconds=measure,
                       predicted_fraction=recipe.mask_rate)
    chosen = {**size.shape.as_recipe(), "micro_batch": size.micro_batch, "batch": size.batch}
    sized = {k: chosen[k] for k in SHAPE_KEYS if k not in cfg.changes}
    if "hidden" in cfg.changes:  # heads of 64 and GLU width 4 x hidden, unless set too
        for key, value in (("heads", max(1, recipe.hidden // 64)),
                           ("intermediate", 4 * recipe.hidden)):
            if key not in cfg.changes:
                sized[key] = value
    recipe = replace(recipe, **sized)
    say(describe(size, cfg.budget))
    info = {"rule": size.reason, "shape": chosen, "tokens": size.tokens,
            "expected_steps": size.steps, "probe_seconds": size.probe_seconds,
            "seconds": round(time.perf_counter() - t0, 3)}
    return recipe, {**info, "probes": probes} if probes else info


def prepare(cfg: CramConfig, recipe: CrammedRecipe, say: Callable[[str], None]) -> Prepared:
    """The prepared corpus for the recipe's tokenizer and packing settings (cached)."""
    spec = PrepareSpec(tokenizer=replace(CRAM, vocab_size=recipe.vocab_size,
                                         normalizer="nfkc-lower" if recipe.lowercase
                                         else "nfkc"),
                       seq_len=recipe.seq_len, cutoff=recipe.cutoff, unit=cfg.unit,
                       heldout=cfg.heldout, dedup=recipe.dedup)
    if not cfg.corpus:
        raise ConfigError("no corpus given (--corpus PATH ...)")
    prep = prepare_corpus(cfg.corpus, spec, cfg.cache, say=say)
    s = prep.summary
    say(f"corpus: {s['documents']:,} documents in {s['files']} file(s); held out "
        f"{s['heldout_documents']:,} ({s['heldout_note']}); filter kept "
        f"{s['kept_documents']:,}/{s['train_documents']:,}; {s['train_rows']:,} rows x "
        f"{recipe.seq_len} tokens; prepared in {prep.seconds:.1f}s"
        + (" (cached)" if prep.cached else "") + ", not charged to the budget")
    return prep


def heldout_loss(model: torch.nn.Module, loss_factory: Callable[[int], Any],
                 rows: torch.Tensor, batch: int = 64) -> float:
    """Mean per-token objective loss on `rows`, masks drawn from a fixed seed, eval mode, no
    gradients (batches weighted by their size). Callers choose the autocast."""
    if len(rows) == 0:
        return float("nan")
    loss_fn = loss_factory(HELDOUT_SEED)
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch].to(device)
            total += float(loss_fn(model, (chunk,)).float().sum())
            n += len(chunk)
    model.train(was_training)
    return total / max(n, 1)


def eval_rows(heldout: np.ndarray, train: np.ndarray, limit: int) -> torch.Tensor:
    """At most `limit` held-out rows, evenly spaced (the first 64 training rows when nothing
    is held out), as int64."""
    rows = heldout if len(heldout) else train[:64]
    if len(rows) > limit:
        rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return torch.from_numpy(rows.astype(np.int64))


class StartLoss(Hook):
    """Trainer hook: the held-out loss of the untrained model, on the training device and
    under the run's autocast, before the first step (off the training clock)."""

    def __init__(self, evaluate: Callable[[torch.nn.Module], dict[str, float]]) -> None:
        self.evaluate, self.loss = evaluate, float("nan")

    def on_start(self, state: Any) -> None:
        if state.step == 0:
            with torch.no_grad(), autocast_for(state.config, state.dist.device):
                self.loss = self.evaluate(state.raw_model)["heldout_loss"]

    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss = float(state.get("loss", float("nan")))


class LossRng(Hook):
    """Saves and restores the loss's masking generator with the trainer's checkpoints, so a
    resumed run draws the masks it would have drawn."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()} if self.generator is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is not None and "rng" in state:
            self.generator.set_state(state["rng"])


def check_out(out: Path, overwrite: bool, resume: bool) -> None:
    """ConfigError when `out` is a file, or a non-empty folder without overwrite/resume."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if resume:
        if not out.is_dir():
            raise ConfigError(f"cannot resume: {out} does not exist")
        if not (out / "config.json").is_file() and any(out.iterdir()):
            raise ConfigError(f"cannot resume: {out} holds no config.json of a cram run")
        return  # an empty folder starts fresh (the trainer says so)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty (pass overwrite / --overwrite, "
                          "or resume / --resume)")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _shape_from_saved(out: Path) -> dict[str, Any]:
    saved = json.loads((out / "config.json").read_text())
    if "recipe_resolved" not in saved:
        raise ConfigError(f"cannot resume: {out / 'config.json'} has no resolved recipe")
    return saved


def setup(cfg: CramConfig, say: Callable[[str], None]) -> CramSetup:
    """Checks, recipe, size and prepared corpus: everything before the model exists."""
    out = Path(cfg.out)
    budget = parse_budget(cfg.budget)  # the one parse, before any work
    if cfg.device is not None:  # an unknown or missing device, before the corpus
        resolve_device(cfg.device)
    check_out(out, cfg.overwrite, cfg.resume)
    recipe = with_precision(recipe_of(cfg), cfg.device or default_device())
    if cfg.resume and (out / "config.json").is_file():
        saved = _shape_from_saved(out)
        recipe = replace(recipe, **{k: saved["recipe_resolved"][k] for k in SHAPE_KEYS})
        size_info = saved.get("size", {})
        say("resuming with the saved shape and batch")
    else:
        recipe, size_info = size_recipe(cfg, recipe, budget, say)
    t0 = time.perf_counter()
    prep = prepare(cfg, recipe, say)
    if cfg.overwrite and not cfg.resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out, extra={"recipe_resolved": recipe.to_dict(), "size": size_info,
                                  "corpus_key": prep.summary.get("key")})
    return CramSetup(budget, recipe, size_info, prep, time.perf_counter() - t0)


def _say(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda line: None

    console = Console(stderr=True)
    return lambda line: console.print(f"[bold cyan]cram[/] {line}", highlight=False)


def train_model(cfg: CramConfig, ready: CramSetup, say: Callable[[str], None]
                ) -> tuple[Any, Any, StartLoss]:
    """Build the model and train it under the budget; returns (model, result, start loss)."""
    r, prep = ready.recipe, ready.prep
    obj = get_objective(cfg.objective)
    vocab = Vocab.from_tokenizer(prep.tokenizer)
    torch.manual_seed(cfg.seed)
    model = obj.build_model(r, vocab)
    say(f"model: {r.arch}, {count_parameters(model) / 1e6:.2f}M parameters, objective "
        f"{obj.name}, recipe {r.name}, budget {cfg.budget}")
    loss_fn = obj.make_loss(r, vocab, cfg.seed)
    rows = torch.from_numpy(prep.train.astype(np.int64))
    held = eval_rows(prep.heldout, prep.train, cfg.eval_rows)
    extra_eval = obj.make_eval(r, vocab, held, HELDOUT_SEED) if hasattr(obj, "make_eval") \
        else None

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        metrics = {"heldout_loss": heldout_loss(m, lambda s: obj.make_loss(r, vocab, s), held)}
        for k, v in (extra_eval(m) if extra_eval is not None else {}).items():
            metrics.setdefault(k, float(v))
        return metrics

    expected = ready.size.get("expected_steps") or 0
    every = max(1, expected // cfg.checkpoints) if cfg.checkpoints and expected else 0
    tcfg = train_config(r, cfg.budget, eval_every=cfg.eval_every, log_every=cfg.log_every,
                        seed=cfg.seed, out_dir=cfg.out, quiet=cfg.quiet, device=cfg.device,
                        checkpoint_every=every, resume=cfg.resume, compile=cfg.compile)
    start = StartLoss(evaluate)
    hooks = [start, LossRng(getattr(loss_fn, "generator", None)),
             *(obj.hooks(r) if hasattr(obj, "hooks") else [])]
    result = train(model, torch.utils.data.TensorDataset(rows), loss_fn, tcfg,
                   evaluate=evaluate, hooks=hooks, tokens_fn=lambda b: int(b[0].numel()))
    return model, result, start


def cram(cfg: CramConfig, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pretrain from text under `cfg.budget`; write `cfg.out`; return the summary dict.

    A run stopped by a signal returns its summary with `stopped` set (not "budget"), after
    the trainer saved a checkpoint, and exports nothing (`resume=True` continues it)."""
    say = say or _say(cfg.quiet)
    t_start = time.perf_counter()
    ready = setup(cfg, say)
    out, r, prep = Path(cfg.out), ready.recipe, ready.prep
    t0 = time.perf_counter()
    model, result, start = train_model(cfg, ready, say)
    seconds = {"prepare": ready.prepare_seconds, "size": ready.size.get("seconds", 0.0),
               "train_wall": time.perf_counter() - t0}
    summary = _summary(cfg, ready, result, start, model)
    if result.stopped != "budget":
        say(f"stopped by {result.stopped} after {result.steps} steps; checkpoint saved in "
            f"{out / 'checkpoints'} (resume with --resume)")
        summary["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        _write_summary(out, summary)
        return summary
    final = summary["heldout_loss"]
    say(f"trained {result.steps} steps, {result.work['tokens']:,} tokens in "
        f"{result.ledger['train']:.1f}s; held-out loss {start.loss:.3f} -> "
        f"{float('nan') if final is None else final:.3f}")
    t0 = time.perf_counter()

    model.to("cpu")
    model_dir = get_objective(cfg.objective).export(model, prep.tokenizer, out / "model", r)
    plot = plot_losses(out / "metrics.jsonl", out / "loss.png",
                       f"{r.name} / {r.arch} / {cfg.objective}, budget {cfg.budget}",
                       start.loss)
    seconds["export"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    summary["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    summary["files"] = {"model": str(model_dir), "plot": str(plot),
                        "metrics": str(out / "metrics.jsonl"),
                        "summary": str(out / "summary.json")}
    _write_summary(out, summary)
    say(f"wrote {model_dir}, {plot}, {out / 'summary.json'}")
    return summary


def _summary(cfg: CramConfig, ready: CramSetup, result: Any, start: StartLoss,
             model: torch.nn.Module) -> dict[str, Any]:
    prep = ready.prep
    final = result.metrics.get("heldout_loss", float("nan"))
    corpus = {k: prep.summary.get(k) for k in (
        "files", "documents", "characters", "dedup", "heldout_rule", "heldout_note",
        "heldout_files", "train_documents", "kept_documents", "heldout_documents",
        "train_rows", "heldout_rows", "train_tokens", "key")}
    corpus.update(paths=list(cfg.corpus), cached=prep.cached, folder=str(prep.folder))
    return {
        "config": to_dict(cfg), "recipe": ready.recipe.to_dict(), "size": ready.size,
        "objective": cfg.objective, "arch": ready.recipe.arch, "budget": cfg.budget,
        "seed": cfg.seed, "corpus": corpus, "vocab_size": prep.tokenizer.get_vocab_size(),
        "parameters": count_parameters(model), "steps": result.steps,
        "stopped": result.stopped, "work": result.work, "ledger": result.ledger,
        "epochs": result.work["tokens"] / max(1, prep.train.size),
        "heldout_loss_start": _finite(start.loss), "heldout_loss": _finite(final),
        "heldout_metrics": {k: _finite(v) for k, v in result.metrics.items()},
        "curve": [[c[0], c[1].get("tokens"), c[2]] for c in result.curve],
    }


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    atomic_write(out / "summary.json",
                 lambda fh: fh.write(json.dumps(summary, indent=1, default=str).encode()))


def plot_losses(metrics_file: Path, out_png: Path, title: str,
                start_loss: float | None = None) -> Path:
    """Training loss (logged every `log_every` steps) and held-out loss against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train: list[tuple[int, float]] = []
    held: list[tuple[int, float]] = []
    if start_loss is not None and math.isfinite(start_loss):
        held.append((0, start_loss))
    if metrics_file.is_file():
        for line in metrics_file.read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") == "train" and "loss" in row:
                train.append((row["step"], row["loss"]))
            elif row.get("kind") == "eval" and "heldout_loss" in row:
                held.append((row["step"], row["heldout_loss"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train", lw=1.2)
    if held:
        ax.plot(*zip(*held, strict=True), "o-", label="held-out", lw=1.2, ms=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("objective loss (per predicted token for MLM)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
