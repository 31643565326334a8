"""Cramming's "hard to compress" filter, and a report of what cleaning a corpus removes.

Geiping & Goldstein 2023, "Cramming: Training a Language Model on a Single GPU in One Day"
(github JonasGeiping/cramming, `remove_trash`): tokenize every raw document with the run's
own tokenizer and keep it only if `tokens < cutoff * characters` (cutoff 0.3 in Cramming's
default/bookcorpus/Wikipedia configs, 0.25 for C4, OpenWebText and the Pile). Text that
tokenizes badly (code, tables, foreign scripts, junk, lists of numbers) has many tokens per
character. Characters are Python code points; the inequality is strict, so an empty
document is always dropped.

`filter_corpus` runs the cleaning on text files and reports it: train the scorer tokenizer
(`hasten.text.tokenizer.SCORER`) unless one is given, apply the filter, then exact and
MinHash near deduplication (`hasten.text.dedup`), with counts before and after each rule,
examples of what each removed, and per-file tallies. A tokenizer here is an HF
`tokenizers.Tokenizer` or any callable str -> sequence of tokens (`str.split`, ...).
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hasten.core.errors import ConfigError, DataError
from hasten.text.dedup import first_copy, near_duplicates
from hasten.text.read import TEXT_SUFFIXES, Book, expand_paths, read_book
from hasten.text.tokenizer import SCORER, train_tokenizer

_BATCH = 2048  # documents per encode_batch call: bounds memory on large corpora


def tokenize(docs: Sequence[str], tokenizer: Any) -> Iterator[Sequence]:
    """Each document's tokens: ids for an HF Tokenizer (no special tokens added), whatever a
    callable returns otherwise."""
    if hasattr(tokenizer, "encode_batch"):
        for start in range(0, len(docs), _BATCH):
            batch = list(docs[start:start + _BATCH])
            for enc in tokenizer.encode_batch(batch, add_special_tokens=False):
                yield enc.ids
    elif callable(tokenizer):
        for d in docs:
            yield tokenizer(d)
    else:
        raise ConfigError("tokenizer must be a tokenizers.Tokenizer or a callable "
                          f"str -> tokens, got {type(tokenizer).__name__}")


def check_documents(docs: Sequence[str]) -> None:
    """ConfigError for one string instead of a list, DataError for a non-str document."""
    if isinstance(docs, str):
        raise ConfigError("docs must be a list of documents, not one string")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i} is a {type(d).__name__}, not a str")


def token_counts(docs: Sequence[str], tokenizer: Any) -> np.ndarray:
    """Number of tokens of each document (no special tokens added)."""
    return np.fromiter((len(t) for t in tokenize(docs, tokenizer)), dtype=np.int64,
                       count=len(docs))


def char_counts(docs: Sequence[str]) -> np.ndarray:
    return np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))


def cramming_filter(docs: Sequence[str], tokenizer: Any, cutoff: float = 0.3) -> np.ndarray:
    """Keep mask of Cramming's filter: True iff tokens < cutoff * characters."""
    if not 0.0 < cutoff:
        raise ConfigError(f"cutoff must be > 0, got {cutoff}")
    check_documents(docs)
    return token_counts(docs, tokenizer) < cutoff * char_counts(docs)


def _short(doc: str, width: int = 120) -> str:
    flat = " ".join(doc.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def _length_buckets(chars: np.ndarray, removed: np.ndarray) -> list[dict]:
    """Documents and removed documents per length bucket (characters)."""
    out = []
    gone = np.zeros(len(chars), dtype=bool)
    gone[removed] = True
    for lo, hi in ((0, 20), (20, 50), (50, 200), (200, None)):
        m = (chars >= lo) & (chars < hi if hi is not None else True)
        out.append({"characters": f"{lo}-{hi - 1}" if hi else f"{lo}+",
                    "documents": int(m.sum()), "removed": int((m & gone).sum())})
    return out


class _Cleaning:
    """The documents of a `filter_corpus` call and what each rule removed from them."""

    def __init__(self, books: list[Book]) -> None:
        self.files = [b.name for b in books]
        self.docs = [d for b in books for d in b.docs]
        self.file_of = np.asarray([i for i, b in enumerate(books) for _ in b.docs], dtype=int)
        self.chars = char_counts(self.docs)
        self.alive = np.arange(len(self.docs))
        self.removed: dict[str, np.ndarray] = {}
        self.duplicate_of: dict[int, int] = {}
        self.ratio = np.zeros(len(self.docs))
        self.near_groups = 0

    def cramming(self, tokenizer: Any, cutoff: float) -> None:
        tokens = token_counts(self.docs, tokenizer)
        self.tokens = int(tokens.sum())
        self.ratio = tokens / np.maximum(self.chars, 1)
        keep = tokens < cutoff * self.chars
        self.removed["cramming"] = np.flatnonzero(~keep)
        self.alive = np.flatnonzero(keep)

    def exact(self) -> None:
        first = first_copy([self.docs[i] for i in self.alive])
        drop = np.flatnonzero(first != np.arange(len(self.alive)))
        self.removed["exact"] = self.alive[drop]
        self.duplicate_of.update({int(self.alive[d]): int(self.alive[first[d]]) for d in drop})
        self.alive = np.setdiff1d(self.alive, self.alive[drop])

    def near(self, threshold: float, num_perm: int, shingle: int, seed: int) -> None:
        drop, groups = near_duplicates([self.docs[i] for i in self.alive], threshold=threshold,
                                       num_perm=num_perm, shingle=shingle, seed=seed)
        self.removed["near"] = self.alive[drop]
        self.near_groups = len(groups)
        for g in groups:
            for m in g[1:]:
                self.duplicate_of[int(self.alive[m])] = int(self.alive[g[0]])
        self.alive = np.setdiff1d(self.alive, self.alive[drop])

    def example(self, i: int, rule: str) -> dict[str, Any]:
        ex: dict[str, Any] = {"index": int(i), "file": self.files[self.file_of[i]],
                              "text": _short(self.docs[i])}
        if rule == "cramming":
            ex["tokens_per_char"] = round(float(self.ratio[i]), 4)
        else:
            ex["duplicate_of"] = _short(self.docs[self.duplicate_of[int(i)]])
        return ex

    def rules(self, examples: int) -> dict[str, dict]:
        """Per rule: documents and characters before and after, examples of removals."""
        out: dict[str, dict] = {}
        docs_before, chars_before = len(self.docs), int(self.chars.sum())
        for rule, idx in self.removed.items():
            gone = int(self.chars[idx].sum())
            entry = {"documents_before": docs_before, "characters_before": chars_before,
                     "removed": int(len(idx)), "characters_removed": gone,
                     "documents_after": docs_before - int(len(idx)),
                     "characters_after": chars_before - gone,
                     "examples": [self.example(i, rule) for i in idx[:examples]]}
            if rule == "cramming":
                entry["by_length"] = _length_buckets(self.chars, idx)
                longest = idx[np.argsort(-self.chars[idx], kind="stable")[:examples]]
                entry["longest_removed"] = [
                    {**self.example(i, rule), "characters": int(self.chars[i])} for i in longest]
            if rule == "near":
                entry["groups"] = self.near_groups
            out[rule] = entry
            docs_before, chars_before = entry["documents_after"], entry["characters_after"]
        return out

    def per_file(self, books: list[Book]) -> list[dict]:
        out = []
        for fi, b in enumerate(books):
            in_file = self.file_of == fi
            chars = self.chars[in_file]
            out.append({"file": b.name, "stripped_boilerplate": b.stripped_boilerplate,
                        "documents": len(b.docs), "characters": int(chars.sum()),
                        "removed_by": {r: int(in_file[i].sum()) for r, i in self.removed.items()},
                        "kept": int(in_file[self.alive].sum()),
                        "kept_characters": int(self.chars[self.alive][in_file[self.alive]].sum())})
        return out


def filter_corpus(paths: str | Path | Sequence[str | Path], cutoff: float = 0.3,
                  near_dup_threshold: float = 0.8, vocab_size: int = 8192, *,
                  kind: Literal["wordpiece", "bpe"] = "wordpiece",
                  unit: Literal["paragraph", "line"] = "paragraph",
                  strip_boilerplate: bool = True, tokenizer: Any = None,
                  exact: bool = True, near: bool = True, num_perm: int = 128,
                  shingle: int = 5, seed: int = 1, examples: int = 3,
                  ) -> tuple[list[str], dict]:
    """Clean a text corpus the Cramming way: filter, then exact and near deduplication.

    Reads the files (a folder means its .txt/.text/.md files, gzipped or not), strips Project
    Gutenberg boilerplate where the markers exist, splits into documents (paragraphs or
    lines, not normalised), trains the scorer tokenizer on all of them unless one is given,
    keeps documents with tokens < cutoff * characters, then drops exact duplicates (after
    lowercasing and whitespace normalisation) and MinHash-LSH near duplicates of earlier kept
    documents. Returns the kept documents, in corpus order, and a JSON-ready summary:
    documents and characters before/after each rule, per-file counts, the first `examples`
    removed documents of each rule (120 characters), the highest tokens/char documents, and
    seconds.
    """
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    books = [read_book(f, unit, strip_boilerplate, normalise=False)
             for f in expand_paths(paths, TEXT_SUFFIXES)]
    c = _Cleaning(books)
    if not c.docs:
        raise DataError(f"filter_corpus: no documents in {len(books)} file(s)")
    seconds["read"] = time.perf_counter() - t_all
    t0 = time.perf_counter()
    if tokenizer is None:
        tokenizer = train_tokenizer(c.docs, SCORER, vocab_size=vocab_size, kind=kind)
    seconds["tokenizer_training"] = time.perf_counter() - t0
    for name, run, on in (("cramming_filter", lambda: c.cramming(tokenizer, cutoff), True),
                          ("exact_dedup", c.exact, exact),
                          ("near_dedup", lambda: c.near(near_dup_threshold, num_perm,
                                                        shingle, seed), near)):
        t0 = time.perf_counter()
        if on:
            run()
        seconds[name] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all
    settings = {"cutoff": cutoff, "near_dup_threshold": near_dup_threshold,
                "vocab_size": vocab_size, "kind": kind, "unit": unit,
                "strip_boilerplate": strip_boilerplate, "exact": exact, "near": near,
                "num_perm": num_perm, "shingle": shingle, "seed": seed,
                "tokenizer": describe_tokenizer(tokenizer)}
    return [c.docs[i] for i in c.alive], _summary(c, books, settings, examples, seconds)


def _summary(c: _Cleaning, books: list[Book], settings: dict, examples: int,
             seconds: dict[str, float]) -> dict[str, Any]:
    total_chars, kept_chars = int(c.chars.sum()), int(c.chars[c.alive].sum())
    q = np.quantile(c.ratio, [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0])
    order = np.argsort(-c.ratio, kind="stable")
    return {
        "settings": settings, "files": len(books),
        "documents": len(c.docs), "characters": total_chars, "tokens": c.tokens,
        "kept_documents": len(c.alive), "kept_characters": kept_chars,
        "kept_fraction_documents": len(c.alive) / len(c.docs),
        "kept_fraction_characters": kept_chars / max(total_chars, 1),
        "rules": c.rules(examples),
        "tokens_per_char_quantiles": {k: round(float(v), 4) for k, v in zip(
            ["min", "p01", "p10", "p50", "p90", "p99", "max"], q, strict=True)},
        "highest_tokens_per_char": [c.example(i, "cramming") for i in order[:examples * 3]],
        "per_file": c.per_file(books),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def describe_tokenizer(tokenizer: Any) -> str:
    """A short name for a tokenizer: `WordPiece(vocab=8192)`, or a callable's name."""
    if hasattr(tokenizer, "get_vocab_size") and hasattr(tokenizer, "model"):
        return f"{type(tokenizer.model).__name__}(vocab={tokenizer.get_vocab_size()})"
    return getattr(tokenizer, "__qualname__", type(tokenizer).__name__)
