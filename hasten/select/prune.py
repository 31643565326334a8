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
shard and selects the same subset; only rank 0 writes. A stop signal while scoring writes
nothing: a proxy cut short never produces a pruned set.

Results: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring costs more
than it saves".
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core import distributed, stop
from hasten.core.config import option
from hasten.core.distributed import is_main_process, resolve_device, world_size_from_env
from hasten.core.errors import ConfigError, DataError
from hasten.models.vision import build_model
from hasten.select import scorers
from hasten.select.amortise import amortisation, check_times
from hasten.select.io import PruneInput, _check_out_dir, load_prune_input, write_pruned
from hasten.select.per_example import Scores
from hasten.select.scorers import SCORERS, ScoringSpec, random_scores
from hasten.select.selectors import select as run_selector
from hasten.select.text import length, tokens_per_char, unigram_rarity
from hasten.text.dedup import dedup as dedup_docs
from hasten.text.filter import cramming_filter
from hasten.text.tokenizer import SCORER, train_tokenizer

CLASSIFICATION_SCORERS = ("random", "loss", "el2n", "el2n-first-epoch", "grand", "entropy",
                          "margin", "prototypes", "forgetting", "aum")
# CLI name -> the `Scores.name` the scorer writes
TEXT_SCORERS = {"tokens-per-char": "tokens_per_char", "length": "length_chars",
                "rarity": "unigram_rarity"}
SELECT_METHODS = ("hardest", "easiest", "random", "ccs", "offset", "balanced")
MODELS = ("auto", "mlp", "cnn1d", "convnet3")
PROXY_WIDTH = 32  # channels of the convnet3 / cnn1d proxies
NOTHING_WRITTEN = "nothing written: scores from a cut run never make a pruned set"


def default_select(scorer: str | None) -> str:
    """The selector used when none is given: `easiest` for tokens-per-char (drop the text
    that is hard to compress, as Cramming does), `hardest` for everything else."""
    return "easiest" if scorer in ("tokens-per-char", "tokens_per_char") else "hardest"


def classification_scorers() -> list[str]:
    """The built-in classification scorers, then any added to `scorers.SCORERS`."""
    return list(dict.fromkeys([*CLASSIFICATION_SCORERS, *SCORERS]))


def _known_scorers() -> str:
    return ", ".join(classification_scorers() + list(TEXT_SCORERS))


def _check_options(scorer: str | None, keep: float, select: str | None, scores: Any,
                   model: str, cutoff: float | None) -> None:
    """ConfigErrors for options that are wrong whatever the data (the training times are
    checked by `amortise.check_times`)."""
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ConfigError(f"keep must be a fraction in (0, 1], got {keep}")
    if scorer is None and scores is None:
        raise ConfigError("give a scorer (--scorer) or saved scores (--scores)")
    if scorer is not None and scorer not in classification_scorers() \
            and scorer not in TEXT_SCORERS:
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


def _needed(reason: str) -> Any:
    """A field with no default: the run cannot guess it."""
    return field(metadata={"reason": reason, "help": reason, "choices": None, "flag": True})


@dataclass
class PruneConfig:
    """What `hasten prune` does: every setting, each default with its reason."""

    data: str = _needed("a .npz/.npy/.jsonl/.txt file, a folder, an HF save_to_disk folder "
                        "or a dataset name (digits, fashion-mnist, mnist1d)")
    keep: float = _needed("the fraction of examples kept, in (0, 1]")
    out: str = _needed("the output folder: kept data, scores, kept.npy, summary.json")
    scorer: str | None = option(None, "None only with saved scores (--scores); else one of "
                                      "random, loss, el2n, el2n-first-epoch, grand, entropy, "
                                      "margin, prototypes, forgetting, aum; text: "
                                      "tokens-per-char, length, rarity")
    select: str | None = option(None, "None: hardest, or easiest for tokens-per-char (drop the "
                                      "text hard to compress, as Cramming does); also "
                                      "random, ccs, offset, balanced")
    scores: str | None = option(None, "None: score now; a scores.npy saved by an earlier run "
                                      "reuses it")
    beta: float | None = option(None, "ccs: None drops nothing first (beta 0)")
    strata: int | None = option(None, "ccs: None means 50 strata, as in the CCS paper")
    offset: float | None = option(None, "offset: None skips nothing (offset 0)")
    balance: bool = option(False, "keep each class's share only when asked")
    epochs: float = option(1.0, "a short proxy run: EL2N-style scores are read early in "
                                "training (Paul et al. 2021)")
    runs: int = option(1, "one proxy; more average out the proxy's noise at that cost")
    lr: float = option(1e-3, "AdamW's usual step for a small proxy")
    batch_size: int = option(128, "the proxy's global batch (split across torchrun ranks)")
    model: str = option("auto", "auto: convnet3 for images, cnn1d for signals, mlp for "
                                "features", choices=MODELS)
    seed: int = option(0, "one fixed draw of proxies and random choices")
    device: str | None = option(None, "None: CUDA when available, else the CPU")
    precision: str = option("fp32", "exact scores; bf16 is faster on recent hardware",
                            choices=("fp32", "bf16"))
    text_unit: str = option("line", "one document per line, as HF datasets' text loader "
                                    "reads text", choices=("line", "paragraph"))
    text_field: str = option("text", "the field HF datasets and JSONL corpora use")
    dedup: bool = option(False, "text: keep duplicates unless asked")
    cutoff: float | None = option(None, "text: None applies no filter; Cramming keeps a "
                                        "document iff tokens < CUTOFF * chars (0.3)")
    vocab_size: int = option(8192, "text: a WordPiece vocabulary large enough for English")
    full_time: float | None = option(None, "None: no break-even; the seconds a full-data "
                                           "training takes to its target: how many trainings "
                                           "on the kept subset repay the scoring")
    subset_time: float | None = option(None, "None: keep x full_time (the same epochs over "
                                             "the kept examples); else measured seconds")
    overwrite: bool = option(False, "never replace a non-empty folder unless asked")
    quiet: bool = option(False, "progress lines unless asked for silence")


def prune(data: str | Path | Any, scorer: str | None, keep: float, select: str | None = None,
          *, out: str | Path, progress: Callable[[str], None] | None = None,
          quiet: bool = True, **settings: Any) -> dict[str, Any]:
    """Score `data`, keep the fraction `keep` with selector `select`, write it all to `out`.

    `data` is a path, a vision dataset name or a loaded `PruneInput`. `scorer` is a
    classification scorer (`CLASSIFICATION_SCORERS`) or a text scorer (`TEXT_SCORERS`);
    `scores` (a `Scores.save` file or a `Scores`) replaces scoring. `select` is hardest,
    easiest, random, ccs (options `beta`, `strata`), offset (option `offset`) or balanced
    (= hardest with `balance`); None means `default_select(scorer)`. Other keywords are
    `PruneConfig` fields. See `prune_with`.
    """
    config = PruneConfig(data=data, keep=keep, out=str(out), scorer=scorer, select=select,
                         quiet=quiet, **settings)
    return prune_with(config, progress)


def prune_with(c: PruneConfig, progress: Callable[[str], None] | None = None,
               record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `c`: load, (text: dedup and filter,) score or reuse scores, select, write.

    Returns the summary written to `out/summary.json` (on rank 0; other torchrun ranks write
    nothing and get the same fields, without `files`). User errors raise `HastenError`s before
    anything is written. A stop signal (SIGTERM, SIGINT) during scoring raises
    `hasten.core.stop.Stopped` and writes nothing: scores from a proxy cut short never make a set.
    The settings (and `record`, e.g. the command line) go to `out/config.json`.
    """
    say = progress or (lambda _line: None)
    t = {"start": time.perf_counter()}
    _check_options(c.scorer, c.keep, c.select, c.scores, c.model, c.cutoff)
    check_times(c.full_time, c.subset_time)
    if c.device is not None:  # an unknown or missing device, whether scoring uses it or not
        resolve_device(c.device)
    inp = c.data if isinstance(c.data, PruneInput) else load_prune_input(
        c.data, text_unit=c.text_unit, text_field=c.text_field)  # type: ignore[arg-type]
    t["loaded"] = time.perf_counter()
    _check_input(c, inp)
    out_dir = _prepare_out(c, inp)
    saved = _load_scores(c.scores, inp.n, c.scorer) if c.scores is not None else None
    scorer_name = c.scorer or next((k for k, v in TEXT_SCORERS.items() if v == saved.name),
                                   saved.name)  # type: ignore[union-attr]
    chosen = c.select or default_select(scorer_name)
    labels = None
    if not inp.is_text and inp.data is not None:
        labels = inp.data.tensors[1].numpy().reshape(-1)
    method, sel_kw, sel_info = _selection(chosen, c.balance, c.beta, c.offset, c.strata, c.seed,
                                          labels if labels is not None and labels.ndim == 1
                                          else None)
    with stop.watch():
        try:
            alive, tokenizer, tok_seconds, prefilter = _prefilter(c, inp, saved, say)
            t["prefiltered"] = time.perf_counter()
            sc, scorer_options = _scores(c, inp, saved, tokenizer, tok_seconds, say)
            t["scored"] = time.perf_counter()
            stop.check(NOTHING_WRITTEN)
        except KeyboardInterrupt:
            raise stop.Stopped("sigint", NOTHING_WRITTEN) from None
        except stop.Stopped as err:
            raise stop.Stopped(err.signal, NOTHING_WRITTEN) from None
    kept = _select(sc, alive, inp.n, method, sel_kw, c.keep)
    t["selected"] = time.perf_counter()
    extra = _summary_extra(c, chosen, sel_info, scorer_options, prefilter, t)
    extra["amortisation"] = amortisation(sc, inp.n, len(kept), c.full_time, c.subset_time)
    if not is_main_process():
        return {"before": inp.n, "after": int(len(kept)), "removed": inp.n - int(len(kept)),
                "keep_fraction": len(kept) / inp.n, "scorer": sc.name,
                "direction": sc.higher_is, "scoring_seconds": sc.seconds,
                "output": str(out_dir), **extra}

    given = c.scores if c.scores is None or isinstance(c.scores, (str, Path)) else "a Scores"
    settings = {**dataclasses.asdict(replace(c, data=str(inp.source), scores=given)),
                **(record or {})}
    return write_pruned(inp, kept, out_dir, sc, overwrite=c.overwrite, extra=extra,
                        settings=settings)


def _check_input(c: PruneConfig, inp: Any) -> None:
    """ConfigErrors for a scorer or a text option that does not fit the data."""
    is_text = inp.is_text
    if c.scorer in TEXT_SCORERS and not is_text:
        raise ConfigError(f"scorer {c.scorer!r} needs text input, but {inp.source} is "
                          f"{inp.kind} data; use one of: {', '.join(classification_scorers())}")
    if c.scorer in classification_scorers() and c.scorer != "random":
        if is_text:
            raise ConfigError(f"scorer {c.scorer!r} needs classification data (x, y), but "
                              f"{inp.source} is text; use one of: {', '.join(TEXT_SCORERS)} "
                              "or random")
        if inp.data is None:
            raise DataError(f"{inp.source} has neither x/y columns nor a text field "
                            f"{c.text_field!r}; pass saved scores (--scores)")
    if c.scorer in TEXT_SCORERS and inp.docs is None:
        raise DataError(f"{inp.source} has no text field {c.text_field!r}")
    if (c.dedup or c.cutoff is not None) and not is_text:
        raise ConfigError("dedup (--dedup) and cutoff (--cutoff) apply only to text input")


def _prepare_out(c: PruneConfig, inp: Any) -> Path:
    """The output folder, checked (and, under torchrun, checked by every rank first)."""
    out_dir = Path(c.out).expanduser()
    _check_out_dir(out_dir, inp, c.overwrite)
    if world_size_from_env() > 1:
        # every rank has checked the output folder before rank 0 can write it
        distributed.barrier(distributed.init(c.device))
    return out_dir


def _prefilter(c: PruneConfig, inp: Any, saved: Scores | None, say: Callable[[str], None]
               ) -> tuple[np.ndarray, Any, float, dict[str, Any] | None]:
    """Text only: drop duplicates and hard-to-compress documents first."""
    needs_tokenizer = c.scorer == "tokens-per-char" and saved is None
    if inp.is_text and (c.dedup or c.cutoff is not None or needs_tokenizer):
        return _text_prefilter(inp.docs, c.dedup, c.cutoff, needs_tokenizer, c.vocab_size,
                               say)
    return np.ones(inp.n, dtype=bool), None, 0.0, None


def _scores(c: PruneConfig, inp: Any, saved: Scores | None, tokenizer: Any,
            tok_seconds: float, say: Callable[[str], None]) -> tuple[Scores, dict[str, Any]]:
    """Every example's score (so saved scores always match the input), or the saved ones."""
    if saved is not None:
        say(f"reusing {saved.name} scores from {c.scores} ({len(saved)} values)")
        return saved, {}
    if c.scorer == "random":
        return _random(inp.n, c.seed), {}
    if c.scorer in TEXT_SCORERS:
        say(f"scoring {inp.n} documents with {c.scorer}")
        return _score_text(c.scorer, inp.docs, tokenizer, tok_seconds), {}  # type: ignore

    dataset, num_classes = classification_data(inp)
    model_name, make = proxy_model(c.model, tuple(dataset.tensors[0].shape[1:]), num_classes)
    spec = ScoringSpec(make_model=make, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                       seed=c.seed, device=c.device, precision=c.precision, runs=c.runs,
                       quiet=c.quiet)
    spec.validate()
    say(f"scoring {inp.n} examples with {c.scorer}: {c.runs} x {c.epochs:g} epoch(s) of a "
        f"{model_name} proxy")
    sc = scorers.score(str(c.scorer), dataset, spec)
    return sc, {"model": model_name, "num_classes": num_classes, **spec.meta()}


def _select(sc: Scores, alive: np.ndarray, n: int, method: str, sel_kw: dict[str, Any],
            keep: float) -> np.ndarray:
    """The kept indices, chosen among the examples that survived the prefilter."""
    idx = np.flatnonzero(alive)
    sub = sc if len(idx) == n else Scores(sc.values[idx], sc.name, sc.higher_is)
    if "labels" in sel_kw:
        sel_kw = {**sel_kw, "labels": sel_kw["labels"][idx]}
    return idx[run_selector(method, sub, keep, n=len(idx), **sel_kw)]


def _summary_extra(c: PruneConfig, chosen: str, sel_info: dict[str, Any],
                   scorer_options: dict[str, Any], prefilter: dict[str, Any] | None,
                   t: dict[str, float]) -> dict[str, Any]:
    return {
        "keep": c.keep, "select": chosen, "selection": sel_info,
        "scores_reused": str(c.scores) if c.scores is not None else None,
        "scorer_options": scorer_options, "prefilter": prefilter,
        "ranks": world_size_from_env(),
        "seconds": {"load": t["loaded"] - t["start"],
                    "prefilter": t["prefiltered"] - t["loaded"],
                    "scoring": t["scored"] - t["prefiltered"],
                    "select": t["selected"] - t["scored"],
                    "total": t["selected"] - t["start"]},  # writing excluded
    }


def _random(n: int, seed: int) -> Scores:
    return random_scores(range(n), seed=seed)  # type: ignore[arg-type]
