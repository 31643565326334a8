"""BLiMP zero-shot (Warstadt et al. 2020, "BLiMP: The Benchmark of Linguistic Minimal Pairs
for English"): 67 paradigms of 1,000 minimal pairs; a masked LM gets a pair right when the
pseudo-log-likelihood of the good sentence is higher than that of the bad one
(`hasten.pretrain.lmeval.pll`, PLL-word-l2r by default; a tie counts as wrong).

- Overall = the mean over paradigms of each paradigm's accuracy (the BLiMP convention; with
  1,000 pairs everywhere it equals the mean over pairs, and after filtering it still weighs
  every paradigm alike), in percent, with a 95% percentile bootstrap interval that resamples
  pairs within paradigms (`hasten.pretrain.lmeval.bootstrap`).
- Fast mode: `per_paradigm` pairs from each paradigm, a fixed choice (a permutation seeded by
  the paradigm's name, so it does not depend on which other paradigms are read), optionally
  only pairs whose words all occur in a word set (BabyLM's filtering of BLiMP to its training
  vocabulary; `corpus_words` builds the set from a corpus). The full set is `per_paradigm=None`.
- `blimp_control` scores an untrained copy of the model: not 50%, because a random model's
  pseudo-log-likelihood is roughly -(tokens) x log(vocabulary), so in paradigms where the good
  and bad sentences differ in length the shorter one wins regardless of grammar.

Words are lower-cased runs of letters and digits (an apostrophe splits "doesn't" into
"doesn" and "t"), the same rule for BLiMP and the corpus. The data is
`data_root()/blimp/<paradigm>.jsonl.gz`. The results are shown in docs/benchmarks.md,
"Pretraining ladder: the Cramming ablation by held-out loss".
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root
from hasten.pretrain.lmeval.bootstrap import bootstrap_interval
from hasten.pretrain.lmeval.loading import LM, untrained_like
from hasten.pretrain.lmeval.pll import pll_scores

_WORD = re.compile(r"[^\W_]+")
SUFFIXES = (".jsonl.gz", ".jsonl")


@dataclass(frozen=True)
class Pair:
    paradigm: str
    index: int  # the file's pairID
    good: str
    bad: str


def blimp_root() -> Path:
    return data_root() / "blimp"


def _paradigm_name(path: Path) -> str:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[:-len(suffix)]
    return path.stem


def _lines(path: Path) -> Iterable[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            yield from fh
    except (OSError, EOFError, zlib.error) as err:  # not gzip, truncated or damaged gzip
        raise DataError(f"{path}: cannot read ({' '.join(str(err).split())})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason})") from None


def read_paradigm(path: str | Path) -> list[Pair]:
    """The pairs of one BLiMP file (JSON lines, optionally gzipped). A line that is not a JSON
    object with string `sentence_good` and `sentence_bad` raises a one-line DataError naming
    the file and the line number; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"BLiMP file not found: {path}")
    paradigm = _paradigm_name(path)
    pairs = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{path} line {number}: not valid JSON") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: not a JSON object")
        for key in ("sentence_good", "sentence_bad"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"{path} line {number}: no {key}")
        try:
            index = int(row.get("pairID", len(pairs)))
        except (TypeError, ValueError):
            raise DataError(f"{path} line {number}: pairID is not an integer") from None
        pairs.append(Pair(paradigm, index, row["sentence_good"], row["sentence_bad"]))
    if not pairs:
        raise DataError(f"{path}: no pairs")
    return pairs


def read_blimp(root: str | Path | None = None,
               paradigms: Sequence[str] | None = None) -> dict[str, list[Pair]]:
    """Every paradigm's pairs under `root` (default `data_root()/blimp`), by paradigm name in
    sorted order; `paradigms` picks some (an unknown name is a ConfigError)."""
    root = Path(root) if root is not None else blimp_root()
    if not root.is_dir():
        raise DataError(f"BLiMP folder not found: {root}")
    files = {}
    for f in sorted(root.iterdir()):
        if f.is_file() and f.name.endswith(SUFFIXES):
            files.setdefault(_paradigm_name(f), f)
    if not files:
        raise DataError(f"no BLiMP files (*.jsonl.gz) in {root}")
    names = sorted(files) if paradigms is None else list(dict.fromkeys(paradigms))
    unknown = [n for n in names if n not in files]
    if unknown:
        raise ConfigError(f"unknown BLiMP paradigm(s) {', '.join(unknown[:3])} in {root}")
    return {n: read_paradigm(files[n]) for n in names}


def sentence_words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits."""
    return _WORD.findall(text.lower())


def corpus_words(docs: Iterable[str]) -> set[str]:
    """The word set of a corpus (documents as strings), for `select_pairs(words=...)`."""
    words: set[str] = set()
    for doc in docs:
        words.update(sentence_words(doc))
    return words


def select_pairs(blimp: Mapping[str, Sequence[Pair]], per_paradigm: int | None = 100,
                 words: set[str] | None = None) -> tuple[dict[str, list[Pair]], dict[str, Any]]:
    """A fixed subset of each paradigm: its pairs in an order seeded by the paradigm's name,
    those whose words are all in `words` (if given), the first `per_paradigm` of them (None:
    all), sorted by pairID. Paradigms left empty are dropped. Returns (pairs, counts) where
    counts says how many pairs each paradigm had, kept after the word filter and selected."""
    if per_paradigm is not None and per_paradigm < 1:
        raise ConfigError(f"pairs per paradigm must be >= 1 (or all), got {per_paradigm}")
    chosen: dict[str, list[Pair]] = {}
    counts: dict[str, Any] = {"per_paradigm": per_paradigm, "filtered": words is not None,
                              "paradigms": {}}
    for name, pairs in blimp.items():
        order = np.random.default_rng(zlib.crc32(name.encode())).permutation(len(pairs))
        kept = [pairs[i] for i in order
                if words is None or set(sentence_words(pairs[i].good + " " + pairs[i].bad))
                <= words]
        picked = sorted(kept[:per_paradigm], key=lambda p: p.index)
        counts["paradigms"][name] = {"pairs": len(pairs), "in_vocabulary": len(kept),
                                     "selected": len(picked)}
        if picked:
            chosen[name] = picked
    counts["selected"] = sum(len(p) for p in chosen.values())
    counts["in_vocabulary"] = sum(c["in_vocabulary"] for c in counts["paradigms"].values())
    counts["empty_paradigms"] = sorted(set(blimp) - set(chosen))
    if not chosen:
        raise DataError("no BLiMP pair left after the vocabulary filter")
    return chosen, counts


def score_pairs(lm: LM, pairs: Mapping[str, Sequence[Pair]], *, word_l2r: bool = True,
                batch_tokens: int = 8192) -> dict[str, dict[str, Any]]:
    """Per paradigm: pair ids, PLL of good and bad sentences and whether good > bad. All
    sentences are scored in one length-sorted pass."""
    flat = [p for name in pairs for p in pairs[name]]
    scores = pll_scores(lm, [p.good for p in flat] + [p.bad for p in flat], word_l2r=word_l2r,
                        batch_tokens=batch_tokens)
    good, bad = scores[:len(flat)], scores[len(flat):]
    out, at = {}, 0
    for name in pairs:
        n = len(pairs[name])
        out[name] = {"ids": [p.index for p in pairs[name]], "pll_good": good[at:at + n],
                     "pll_bad": bad[at:at + n], "correct": good[at:at + n] > bad[at:at + n]}
        at += n
    return out


def summarize(scored: Mapping[str, Mapping[str, Any]], n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """`blimp` (mean over paradigms, %), `blimp_by_paradigm` (%), `blimp_interval` (95%
    bootstrap over pairs within paradigms, %) and compact per-item results (`items`: per
    paradigm the pair ids and a string of 0/1, one character per pair)."""
    correct = {name: np.asarray(s["correct"], dtype=np.float64) for name, s in scored.items()}
    interval = bootstrap_interval(correct, n_boot=n_boot, seed=seed)
    return {"blimp": 100 * interval["mean"],
            "blimp_by_paradigm": {n: 100 * float(c.mean()) for n, c in correct.items()},
            "blimp_interval": [100 * interval["low"], 100 * interval["high"]],
            "items": {n: {"ids": list(map(int, s["ids"])),
                          "correct": "".join("1" if c else "0" for c in s["correct"])}
                      for n, s in scored.items()}}


def items_to_arrays(items: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-item correctness (0/1 floats) from the compact `items` of `summarize`, ready for
    `bootstrap_interval` (stack several seeds' arrays for a [seeds, items] bootstrap)."""
    return {n: np.frombuffer(s["correct"].encode(), dtype=np.uint8).astype(np.float64) - 48
            for n, s in items.items()}


def seed_matrix(runs: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, np.ndarray]:
    """Per paradigm, the [seeds, pairs] correctness of several runs (the `items` of each,
    e.g. one per pretraining seed) that scored the same pairs, for `bootstrap_interval` over
    seeds and pairs. Runs that scored different pairs raise a DataError."""
    if not runs:
        raise DataError("no runs to stack")
    first = runs[0]
    for k, run in enumerate(runs[1:], start=1):
        if run.keys() != first.keys() or any(run[n]["ids"] != first[n]["ids"] for n in first):
            raise DataError(f"run {k} scored other BLiMP pairs than run 0")
    arrays = [items_to_arrays(run) for run in runs]
    return {n: np.stack([a[n] for a in arrays]) for n in first}


def evaluate_blimp(lm: LM, pairs: Mapping[str, Sequence[Pair]], *, word_l2r: bool = True,
                   batch_tokens: int = 8192, n_boot: int = 1000, seed: int = 0
                   ) -> dict[str, Any]:
    """`score_pairs` then `summarize`."""
    return summarize(score_pairs(lm, pairs, word_l2r=word_l2r, batch_tokens=batch_tokens),
                     n_boot=n_boot, seed=seed)


def blimp_control(lm: LM, pairs: Mapping[str, Sequence[Pair]], *, init_seed: int = 0,
                  word_l2r: bool = True, batch_tokens: int = 8192, n_boot: int = 1000
                  ) -> dict[str, Any]:
    """BLiMP of an untrained copy of `lm` (same architecture and tokenizer, initialised with
    `init_seed`): the floor a trained model has to beat, paradigm by paradigm."""
    return evaluate_blimp(untrained_like(lm, init_seed), pairs, word_l2r=word_l2r,
                          batch_tokens=batch_tokens, n_boot=n_boot)
