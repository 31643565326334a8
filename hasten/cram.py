"""`hasten cram`: pretrain a BERT-style encoder from raw text under a budget.

The pipeline of Cramming (Geiping & Goldstein 2022, "Cramming: Training a Language Model on a
Single GPU in One Day"), with 24h BERT's (Izsak et al. 2021) in-RAM data and budget-tied
schedule:

    summary = cram(["shared/data/gutenberg"], "30m", "runs/cram")

1. read UTF-8 text (Gutenberg boilerplate stripped), one document per paragraph;
2. optional exact + MinHash near deduplication (`hasten.select.dedup`);
3. hold out `holdout` of the documents (1% by default) for the held-out loss;
4. train a WordPiece tokenizer on the training documents;
5. Cramming's tokens-per-character filter (`cutoff`) with that tokenizer;
6. pack into [N, seq_len] rows kept in RAM ([CLS] first, [SEP] between documents);
7. train with `hasten.trainer.train` under the budget (wall clock "30m" or tokens "3e9tok"),
   the held-out loss evaluated every `eval_every` of the budget, off the training clock;
8. export a folder `transformers` loads (`model/`), a loss plot (`loss.png`) and
   `summary.json`; the trainer's log is `train/metrics.jsonl`.

The objective (what model, what loss, how it is exported) is a plug-in: see
`hasten.objectives`. Setup, tokenizer training and packing are not charged to the budget
(Cramming's rule: preprocessing is exempt).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasten.errors import ConfigError, DataError
from hasten.trainer import Hook

HELDOUT_SEED = 1234  # masking seed of the held-out loss: the same masks at every evaluation


def _say(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda line: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda line: console.print(f"[bold cyan]cram[/] {line}", highlight=False)


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


def split_documents(docs: Sequence[str], fraction: float, seed: int
                    ) -> tuple[list[str], list[str]]:
    """(train, held-out) documents: a random `fraction` of them (at least one, when the
    fraction is positive and there are two or more documents) is held out."""
    if fraction <= 0 or len(docs) < 2:
        return list(docs), []
    n = min(len(docs) - 1, max(1, round(fraction * len(docs))))
    rng = np.random.default_rng(seed)
    held = np.zeros(len(docs), dtype=bool)
    held[rng.choice(len(docs), size=n, replace=False)] = True
    return ([d for d, h in zip(docs, held, strict=True) if not h],
            [d for d, h in zip(docs, held, strict=True) if h])


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


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty (pass overwrite / --overwrite)")


def cram(corpus_paths: str | Path | Sequence[str | Path], budget: str, out_dir: str | Path,
         recipe: str = "crammed", arch: str | None = None, vocab_size: int | None = None,
         seq_len: int | None = None, filter_cutoff: float | None | str = "recipe",
         dedup: bool | None = None, objective: str = "mlm", seed: int = 0,
         unit: str = "paragraph", device: str | None = None, quiet: bool = False,
         overwrite: bool = False, **overrides: Any) -> dict[str, Any]:
    """Pretrain from text files under `budget`; write `out_dir`; return the summary dict.

    `recipe` is "crammed" or "original" (`hasten.objectives.mlm.RECIPES`); `arch` ("crammed"
    or "bert"), `vocab_size`, `seq_len`, `filter_cutoff` (None: no filter) and `dedup`
    override the recipe's values, as do `overrides` (any recipe key, e.g. hidden=256,
    layers=4, lr=5e-4, batch=1024). `objective` names a `hasten.objectives` plug-in.
    """
    from hasten.objectives import Vocab, get_objective
    from hasten.objectives.mlm import resolve_recipe, train_config
    from hasten.text.corpus import pack, read_corpus, train_wordpiece
    from hasten.trainer import train

    t_start = time.perf_counter()
    say = _say(quiet)
    obj = get_objective(objective)
    for key, value in (("arch", arch), ("vocab_size", vocab_size), ("seq_len", seq_len),
                       ("dedup", dedup)):
        if value is not None:
            overrides[key] = value
    if filter_cutoff != "recipe":
        overrides["cutoff"] = filter_cutoff
    r = resolve_recipe(recipe, getattr(obj, "defaults", None), getattr(obj, "recipe_values", None),
                       **overrides)
    if r["vocab_size"] <= 5:
        raise ConfigError(f"vocab_size must exceed the 5 special tokens ([PAD] [UNK] [CLS] "
                          f"[SEP] [MASK]), got {r['vocab_size']}")
    if r["cutoff"] is not None and r["cutoff"] <= 0:
        raise ConfigError(f"cutoff must be > 0, got {r['cutoff']}")
    from hasten.budget import Budget

    Budget(budget)  # parse the budget before any work
    out = Path(out_dir)
    _check_out(out, overwrite)
    torch.manual_seed(seed)
    seconds: dict[str, float] = {}

    # 1-3: read, dedup, split
    t0 = time.perf_counter()
    docs = read_corpus(corpus_paths, unit=unit)
    n_docs, n_chars = len(docs), sum(map(len, docs))
    dedup_info: dict[str, Any] | None = None
    if r["dedup"]:
        from hasten.select.dedup import dedup as run_dedup

        keep, dedup_info = run_dedup(docs, seed=seed + 1)
        docs = [d for d, k in zip(docs, keep, strict=True) if k]
        dedup_info = {k: v for k, v in dedup_info.items() if k != "seconds"}
    train_docs, held_docs = split_documents(docs, r["holdout"], seed)
    seconds["read"] = time.perf_counter() - t0
    say(f"read {n_docs} documents ({n_chars:,} characters)"
        + (f", {n_docs - len(docs)} duplicates dropped" if dedup_info else "")
        + f"; {len(held_docs)} held out")

    # 4-6: tokenizer, filter, pack
    t0 = time.perf_counter()
    tok = train_wordpiece(train_docs, vocab_size=r["vocab_size"], lowercase=r["lowercase"])
    seconds["tokenizer"] = time.perf_counter() - t0
    vocab = Vocab.from_tokenizer(tok)
    t0 = time.perf_counter()
    kept = train_docs
    if r["cutoff"] is not None:
        from hasten.select.text import cramming_filter

        mask = cramming_filter(train_docs, tok, cutoff=r["cutoff"])
        kept = [d for d, k in zip(train_docs, mask, strict=True) if k]
        if not kept:
            raise DataError(f"the tokens-per-character filter (cutoff {r['cutoff']}) removed "
                            f"all {len(train_docs)} training documents")
    seconds["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = torch.from_numpy(pack(kept, tok, seq_len=r["seq_len"]).astype(np.int64))
    held_rows = (torch.from_numpy(pack(held_docs, tok, seq_len=r["seq_len"], drop_last=False)
                                  .astype(np.int64)) if held_docs else rows[:0])
    seconds["pack"] = time.perf_counter() - t0
    say(f"tokenizer: {vocab.size} WordPiece tokens; filter kept {len(kept)}/{len(train_docs)} "
        f"documents; {len(rows):,} training rows x {r['seq_len']} tokens, "
        f"{len(held_rows)} held-out rows")

    # 7: train
    model = obj.build_model(r, vocab)
    n_params = int(sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()))
    say(f"model: {r['arch']} ({n_params / 1e6:.2f}M parameters), objective {obj.name}, "
        f"recipe {r['name']}, budget {budget}")
    loss_fn = obj.make_loss(r, vocab, seed)
    run_dir = out / "train"
    cfg = train_config(r, budget, seed=seed, out_dir=str(run_dir), quiet=quiet, device=device)
    cfg.validate()
    factory = lambda s: obj.make_loss(r, vocab, s)  # noqa: E731

    eval_rows = held_rows if len(held_rows) else rows[:64]
    # optional objective extras: more held-out metrics, and hooks (e.g. a health monitor)
    extra_eval = (obj.make_eval(r, vocab, eval_rows, HELDOUT_SEED)
                  if hasattr(obj, "make_eval") else None)
    extra_hooks = list(obj.hooks(r)) if hasattr(obj, "hooks") else []

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        metrics = {"heldout_loss": heldout_loss(m, factory, eval_rows)}
        if extra_eval is not None:
            for k, v in extra_eval(m).items():
                metrics.setdefault(k, float(v))
        return metrics

    start = _StartLoss(evaluate)
    if run_dir.exists():  # overwrite: the trainer appends to metrics.jsonl otherwise
        shutil.rmtree(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = train(model, torch.utils.data.TensorDataset(rows), loss_fn, cfg, evaluate=evaluate,
                   hooks=[start, *extra_hooks],
                   tokens_fn=lambda b: int(b[0].numel()))
    seconds["train_wall"] = time.perf_counter() - t0
    final = result.metrics.get("heldout_loss", float("nan"))
    start_loss = start.loss
    say(f"trained {result.steps} steps, {result.work['tokens']:,} tokens in "
        f"{result.ledger['train']:.1f}s; held-out loss {start_loss:.3f} -> {final:.3f}")

    # 8: export, plot, summary
    t0 = time.perf_counter()
    model.to("cpu")
    model_dir = obj.export(model, tok, out / "model", r)
    seconds["export"] = time.perf_counter() - t0
    plot = plot_losses(run_dir / "metrics.jsonl", out / "loss.png",
                       f"{r['name']} / {r['arch']} / {obj.name}, budget {budget}", start_loss)
    seconds["total"] = time.perf_counter() - t_start
    summary = {
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in r.items()},
        "objective": obj.name, "arch": r["arch"], "budget": budget, "seed": seed,
        "corpus": {"paths": [str(p) for p in ([corpus_paths] if isinstance(
                       corpus_paths, (str, Path)) else corpus_paths)],
                   "documents": n_docs, "characters": n_chars, "dedup": dedup_info,
                   "train_documents": len(train_docs), "kept_documents": len(kept),
                   "heldout_documents": len(held_docs), "train_rows": len(rows),
                   "heldout_rows": len(held_rows), "train_tokens": int(rows.numel())},
        "vocab_size": vocab.size, "parameters": n_params,
        "steps": result.steps, "stopped": result.stopped, "work": result.work,
        "ledger": result.ledger,
        "epochs": result.work["tokens"] / max(1, rows.numel()),
        "heldout_loss_start": _finite(start_loss), "heldout_loss": _finite(final),
        "heldout_metrics": {k: _finite(v) for k, v in result.metrics.items()},
        "curve": [[c[0], c[1].get("tokens"), c[2]] for c in result.curve],
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "files": {"model": str(model_dir), "plot": str(plot),
                  "metrics": str(run_dir / "metrics.jsonl"),
                  "summary": str(out / "summary.json")},
    }
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / "summary.json")
    say(f"wrote {model_dir}, {plot}, {out / 'summary.json'}")
    return summary


class _StartLoss(Hook):
    """Trainer hook: the held-out loss of the untrained model, on the training device and
    under the run's autocast, before the first step (off the training clock)."""

    def __init__(self, evaluate: Callable[[torch.nn.Module], dict[str, float]]) -> None:
        self.evaluate, self.loss = evaluate, float("nan")

    def on_start(self, state: Any) -> None:
        from hasten.trainer import autocast_for

        if state.step == 0:
            with autocast_for(state.config, state.dist.device):
                self.loss = self.evaluate(state.raw_model)["heldout_loss"]

    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss = float(state.get("loss", float("nan")))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
