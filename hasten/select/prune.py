"""`prune`: score a dataset, keep a fraction of it, write the kept examples and the scores.

The engine behind `hasten prune`, usable from Python:

    summary = prune("train.npz", "el2n", keep=0.5, out="runs/pruned")

Pipeline: load the input (`hasten.select.io.load_prune_input`: .npz, x.npy/y.npy, JSONL, text,
an HF dataset folder or a vision dataset name) -> for text, optionally drop exact and near
duplicates (`dedup`) and apply Cramming's filter (`cutoff`) -> score every example (or load
saved scores) -> select round(keep * m) of the m remaining examples with an explicit direction
-> `write_pruned` (atomic: the output folder is either absent, the old one, or complete).

Classification scorers (`hasten.select.scorers.SCORERS`) need (x, y) data; text scorers
(`TEXT_SCORERS`) need documents; `random` works on both. Under torchrun every rank scores its
shard and selects the same subset; only rank 0 writes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from hasten.errors import ConfigError, DataError
from hasten.select.scores import Scores

CLASSIFICATION_SCORERS = ("random", "loss", "el2n", "grand", "entropy", "margin", "prototypes",
                          "forgetting", "aum")
# CLI name -> the `Scores.name` the scorer writes
TEXT_SCORERS = {"tokens-per-char": "tokens_per_char", "length": "length_chars",
                "rarity": "unigram_rarity"}
SELECT_METHODS = ("hardest", "easiest", "random", "ccs", "offset", "balanced")
MODELS = ("auto", "mlp", "cnn1d", "convnet3")
PROXY_WIDTH = 32  # channels of the convnet3 / cnn1d proxies


def default_select(scorer: str | None) -> str:
    """The selector used when none is given: `easiest` for tokens-per-char (drop the text
    that is hard to compress, as Cramming does), `hardest` for everything else."""
    return "easiest" if scorer in ("tokens-per-char", "tokens_per_char") else "hardest"


def _known_scorers() -> str:
    return ", ".join(list(CLASSIFICATION_SCORERS) + list(TEXT_SCORERS))


def _check_options(scorer: str | None, keep: float, select: str | None, scores: Any,
                   model: str, cutoff: float | None) -> None:
    """ConfigErrors for options that are wrong whatever the data."""
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ConfigError(f"keep must be a fraction in (0, 1], got {keep}")
    if scorer is None and scores is None:
        raise ConfigError("give a scorer (--scorer) or saved scores (--scores)")
    if scorer is not None and scorer not in CLASSIFICATION_SCORERS and scorer not in TEXT_SCORERS:
        raise ConfigError(f"unknown scorer {scorer!r}; known: {_known_scorers()}")
    if select is not None and select not in SELECT_METHODS:
        raise ConfigError(f"unknown selector {select!r}; known: {', '.join(SELECT_METHODS)}")
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if cutoff is not None and not cutoff > 0:
        raise ConfigError(f"cutoff must be > 0, got {cutoff}")


def _selection(select: str, balance: bool, beta: float | None, offset: float | None,
               strata: int | None, seed: int, labels: np.ndarray | None
               ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(SELECTORS method, its options, a JSON-ready description) for a `select` name."""
    if beta is not None and select != "ccs":
        raise ConfigError(f"beta (--beta) applies only to the ccs selector, not {select!r}")
    if strata is not None and select != "ccs":
        raise ConfigError(f"strata (--strata) applies only to the ccs selector, not {select!r}")
    if offset is not None and select != "offset":
        raise ConfigError(f"offset (--offset) applies only to the offset selector, "
                          f"not {select!r}")
    if select == "balanced" or balance:
        if select not in ("hardest", "easiest", "balanced"):
            raise ConfigError(f"class balance (--balance) applies to the hardest and easiest "
                              f"selectors, not {select!r}")
        if labels is None:
            raise ConfigError("class-balanced selection needs class labels (x, y data)")
        which = "easiest" if select == "easiest" else "hardest"
        return "class_balanced", {"labels": labels, "which": which}, {
            "method": "class_balanced", "which": which}
    if select in ("hardest", "easiest"):
        return select, {}, {"method": select}
    if select == "random":
        return "random", {"seed": seed}, {"method": "random", "seed": seed}
    if select == "ccs":
        kw = {"beta": 0.0 if beta is None else beta, "strata": 50 if strata is None else strata,
              "seed": seed}
        return "ccs", kw, {"method": "ccs", **kw}
    kw = {"offset": 0.0 if offset is None else offset}
    return "offset", kw, {"method": "offset", **kw}


# -----------------------------------------------------------------------------
# classification: data and proxy model


def classification_data(inp: Any) -> tuple[Any, int]:
    """The input's (x, y) as a float32/int64 TensorDataset for scoring, and the class count.

    Integer x becomes float32 (uint8 is divided by 255); y must be integer labels >= 0."""
    import torch
    from torch.utils.data import TensorDataset

    x, y = inp.data.tensors
    if y.ndim != 1:
        raise DataError(f"{inp.source}: y must be one class label per example, "
                        f"got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataError(f"{inp.source}: classification scorers need integer labels y, "
                        f"got {y.dtype}")
    y = y.long()
    if int(y.min()) < 0:
        raise DataError(f"{inp.source}: labels must be >= 0, got {int(y.min())}")
    if not x.dtype.is_floating_point:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    num_classes = int(inp.details.get("num_classes") or int(y.max()) + 1)
    return TensorDataset(x, y), num_classes


def proxy_model(name: str, input_shape: tuple[int, ...], num_classes: int
                ) -> tuple[str, Callable[[], Any]]:
    """(resolved name, factory) of a small proxy model for examples of `input_shape`.

    `auto`: (C, H, W) images -> convnet3 (width 32, depth 3, less for images under 8x8);
    (C, L) signals with C <= 4 -> cnn1d (32 channels); other 2-D examples are one-channel
    (H, W) images -> convnet3; flat features -> mlp (256, 256)."""
    from torch import nn

    from hasten.models.vision import build_model

    shape = tuple(int(s) for s in input_shape)
    image_2d = len(shape) == 2 and shape[0] > 4
    if name == "auto":
        if len(shape) == 3 or (image_2d and min(shape) >= 2):
            name = "convnet3"
        elif len(shape) == 2:
            name = "cnn1d"
        else:
            name = "mlp"
    chw = (1, *shape) if len(shape) == 2 and name == "convnet3" else shape
    spec = SimpleNamespace(input_shape=chw, num_classes=num_classes)
    kw: dict[str, Any] = {}
    if name == "convnet3":
        side = min(chw[1:]) if len(chw) == 3 else 0
        kw = {"width": PROXY_WIDTH, "depth": max(1, min(3, int(math.log2(max(side, 1)))))}
    elif name == "cnn1d":
        kw = {"channels": PROXY_WIDTH}
    build_model(name, spec, **kw)  # fail now (ConfigError) if the shape does not fit

    def make() -> nn.Module:
        model = build_model(name, spec, **kw)
        if chw != shape:
            return nn.Sequential(nn.Unflatten(1, (1, shape[0])), model)
        return model
    return name, make


# -----------------------------------------------------------------------------
# text


def _text_prefilter(docs: list[str], dedup: bool, cutoff: float | None, need_tokenizer: bool,
                    vocab_size: int, progress: Callable[[str], None]
                    ) -> tuple[np.ndarray, Any, float, dict[str, Any]]:
    """(alive mask, tokenizer or None, tokenizer seconds, summary) after dedup and cutoff."""
    from hasten.text.dedup import dedup as dedup_docs
    from hasten.text.filter import cramming_filter
    from hasten.text.tokenizer import SCORER, train_tokenizer

    alive = np.ones(len(docs), dtype=bool)
    info: dict[str, Any] = {"documents": len(docs)}
    if dedup:
        progress(f"deduplicating {len(docs)} documents (exact, then MinHash near duplicates)")
        alive, d = dedup_docs(docs)
        info["dedup"] = {k: d[k] for k in ("exact_removed", "near_removed", "near_groups",
                                           "seconds", "settings")}
    tokenizer, tok_seconds = None, 0.0
    if need_tokenizer or cutoff is not None:
        t0 = time.perf_counter()
        progress(f"training a WordPiece tokenizer (vocab {vocab_size}) on "
                 f"{int(alive.sum())} documents")
        tokenizer = train_tokenizer([docs[i] for i in np.flatnonzero(alive)], SCORER,
                                    vocab_size=vocab_size)
        tok_seconds = time.perf_counter() - t0
        info["tokenizer_seconds"] = tok_seconds
    if cutoff is not None:
        t0 = time.perf_counter()
        idx = np.flatnonzero(alive)
        mask = cramming_filter([docs[i] for i in idx], tokenizer, cutoff)
        alive[idx[~mask]] = False
        info["cutoff"] = {"cutoff": cutoff, "removed": int((~mask).sum()),
                          "seconds": time.perf_counter() - t0}
    info["remaining"] = int(alive.sum())
    if not alive.any():
        raise DataError("no documents left after deduplication and the cutoff filter")
    return alive, tokenizer, tok_seconds, info


def _score_text(scorer: str, docs: list[str], tokenizer: Any, tok_seconds: float) -> Scores:
    from hasten.select.text import length, tokens_per_char, unigram_rarity

    if scorer == "tokens-per-char":
        s = tokens_per_char(docs, tokenizer)
        # training the tokenizer is part of what this score costs
        s.seconds += tok_seconds
        s.meta["tokenizer_seconds"] = tok_seconds
        return s
    if scorer == "length":
        return length(docs, "chars")
    return unigram_rarity(docs)


# -----------------------------------------------------------------------------
# the pipeline


def _load_scores(path: str | Path | Scores, n: int, scorer: str | None) -> Scores:
    s = path if isinstance(path, Scores) else Scores.load(path)
    if len(s) != n:
        raise DataError(f"scores {path} have {len(s)} values but the input has {n} examples")
    if scorer is not None and TEXT_SCORERS.get(scorer, scorer) != s.name:
        raise ConfigError(f"scores {path} are {s.name!r} scores, but the scorer is {scorer!r}; "
                          "drop one of the two")
    return s


def prune(data: str | Path | Any, scorer: str | None, keep: float, select: str | None = None,
          *, out: str | Path, scores: str | Path | Scores | None = None,
          beta: float | None = None, offset: float | None = None, strata: int | None = None,
          balance: bool = False, epochs: float = 1.0, runs: int = 1, lr: float = 1e-3,
          batch_size: int = 128, model: str = "auto", seed: int = 0, device: str | None = None,
          precision: str = "fp32", text_unit: str = "line", text_field: str = "text",
          dedup: bool = False, cutoff: float | None = None, vocab_size: int = 8192,
          overwrite: bool = False, quiet: bool = True,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score `data`, keep the fraction `keep` with selector `select`, write it all to `out`.

    `data` is a path, a vision dataset name or a loaded `PruneInput`. `scorer` is a
    classification scorer (`CLASSIFICATION_SCORERS`) or a text scorer (`TEXT_SCORERS`);
    `scores` (a `Scores.save` file or a `Scores`) replaces scoring. `select` is hardest,
    easiest, random, ccs (options `beta`, `strata`), offset (option `offset`) or balanced
    (= hardest with `balance`); None means `default_select(scorer)`. For text, `dedup` and
    `cutoff` drop documents first and `keep` is a fraction of what remains.

    Returns the summary written to `out/summary.json` (on rank 0; other torchrun ranks write
    nothing and get the same fields, without `files`). User errors raise `HastenError`s before
    anything is written.
    """
    from hasten.select.io import PruneInput, _check_out_dir, load_prune_input, write_pruned
    from hasten.select.selectors import select as run_selector

    say = progress or (lambda _line: None)
    t_start = time.perf_counter()
    _check_options(scorer, keep, select, scores, model, cutoff)
    inp = data if isinstance(data, PruneInput) else load_prune_input(
        data, text_unit=text_unit, text_field=text_field)  # type: ignore[arg-type]
    t_loaded = time.perf_counter()
    is_text = inp.is_text
    if scorer in TEXT_SCORERS and not is_text:
        raise ConfigError(f"scorer {scorer!r} needs text input, but {inp.source} is "
                          f"{inp.kind} data; use one of: {', '.join(CLASSIFICATION_SCORERS)}")
    if scorer in CLASSIFICATION_SCORERS and scorer != "random":
        if is_text:
            raise ConfigError(f"scorer {scorer!r} needs classification data (x, y), but "
                              f"{inp.source} is text; use one of: {', '.join(TEXT_SCORERS)} "
                              "or random")
        if inp.data is None:
            raise DataError(f"{inp.source} has neither x/y columns nor a text field "
                            f"{text_field!r}; pass saved scores (--scores)")
    if scorer in TEXT_SCORERS and inp.docs is None:
        raise DataError(f"{inp.source} has no text field {text_field!r}")
    if (dedup or cutoff is not None) and not is_text:
        raise ConfigError("dedup (--dedup) and cutoff (--cutoff) apply only to text input")
    out_dir = Path(out).expanduser()
    _check_out_dir(out_dir, inp, overwrite)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from hasten import distributed

        # every rank has checked the output folder before rank 0 can write it
        distributed.barrier(distributed.init(device))

    saved = _load_scores(scores, inp.n, scorer) if scores is not None else None
    scorer_name = scorer or next((k for k, v in TEXT_SCORERS.items() if v == saved.name),
                                 saved.name)  # type: ignore[union-attr]
    chosen = select or default_select(scorer_name)

    labels = None
    if not is_text and inp.data is not None:
        labels = inp.data.tensors[1].numpy().reshape(-1)
    method, sel_kw, sel_info = _selection(chosen, balance, beta, offset, strata, seed,
                                          labels if labels is not None and labels.ndim == 1
                                          else None)

    # text: drop duplicates and hard-to-compress documents first
    alive = np.ones(inp.n, dtype=bool)
    tokenizer, tok_seconds, prefilter = None, 0.0, None
    if is_text and (dedup or cutoff is not None or
                    (scorer == "tokens-per-char" and saved is None)):
        alive, tokenizer, tok_seconds, prefilter = _text_prefilter(
            inp.docs, dedup, cutoff, scorer == "tokens-per-char" and saved is None,
            vocab_size, say)
    t_prefiltered = time.perf_counter()

    # score every example (so saved scores always match the input), or reuse saved ones
    scorer_options: dict[str, Any] = {}
    if saved is not None:
        sc = saved
        say(f"reusing {sc.name} scores from {scores} ({len(sc)} values)")
    elif scorer == "random":
        sc = _random(inp.n, seed)
    elif scorer in TEXT_SCORERS:
        say(f"scoring {inp.n} documents with {scorer}")
        sc = _score_text(scorer, inp.docs, tokenizer, tok_seconds)  # type: ignore[arg-type]
    else:
        from hasten.select.scorers import ScoringSpec
        from hasten.select.scorers import score as run_scorer

        dataset, num_classes = classification_data(inp)
        model_name, make = proxy_model(model, tuple(dataset.tensors[0].shape[1:]), num_classes)
        spec = ScoringSpec(make_model=make, epochs=epochs, lr=lr, batch_size=batch_size,
                           seed=seed, device=device, precision=precision, runs=runs,
                           quiet=quiet)
        spec.validate()
        scorer_options = {"model": model_name, "num_classes": num_classes, **spec.meta()}
        say(f"scoring {inp.n} examples with {scorer}: {runs} x {epochs:g} epoch(s) of a "
            f"{model_name} proxy")
        sc = run_scorer(scorer, dataset, spec)  # type: ignore[arg-type]
    t_scored = time.perf_counter()

    # select among the examples that survived the prefilter
    idx = np.flatnonzero(alive)
    sub = sc if len(idx) == inp.n else Scores(sc.values[idx], sc.name, sc.higher_is)
    if "labels" in sel_kw:
        sel_kw["labels"] = sel_kw["labels"][idx]
    kept = idx[run_selector(method, sub, keep, n=len(idx), **sel_kw)]
    t_selected = time.perf_counter()

    extra: dict[str, Any] = {
        "keep": keep, "select": chosen, "selection": sel_info,
        "scores_reused": str(scores) if scores is not None else None,
        "scorer_options": scorer_options,
        "prefilter": prefilter,
        "ranks": int(os.environ.get("WORLD_SIZE", "1")),
        "seconds": {"load": t_loaded - t_start, "prefilter": t_prefiltered - t_loaded,
                    "scoring": t_scored - t_prefiltered, "select": t_selected - t_scored,
                    "total": t_selected - t_start},  # writing excluded
    }
    if int(os.environ.get("RANK", "0")) != 0:
        return {"before": inp.n, "after": int(len(kept)), "removed": inp.n - int(len(kept)),
                "keep_fraction": len(kept) / inp.n, "scorer": sc.name,
                "direction": sc.higher_is, "scoring_seconds": sc.seconds,
                "output": str(out_dir), **extra}
    return write_pruned(inp, kept, out_dir, sc, overwrite=overwrite, extra=extra)


def _random(n: int, seed: int) -> Scores:
    from hasten.select.scorers import random_scores

    return random_scores(range(n), seed=seed)  # type: ignore[arg-type]
