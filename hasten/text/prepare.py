"""Prepare a corpus once: read, split off held-out books, train the tokenizer, filter, pack,
and cache the token shards for every later run.

    prep = prepare_corpus(["shared/data/gutenberg-large"], PrepareSpec(heldout="authors:W-Z"))
    prep.train, prep.heldout      # [N, seq_len] uint16 rows in RAM; prep.tokenizer

Cramming's rules exempt preprocessing from the budget (Geiping & Goldstein 2023), and its
data is tokenized and packed once, ahead of training; 24h BERT does the same with shards
(Izsak et al. 2021). Here the shards are cached under a key made of the corpus's content
(a SHA-256 of every file's name and bytes), the tokenizer settings and the packing settings:
the same corpus and settings load in seconds, any change to a file or a setting prepares
anew. The tokenizer has its own key, without the packing settings, so runs that differ only
in the filter or the row length share one tokenizer (WordPiece training is not
deterministic, so sharing the saved file is what makes two runs' ids agree).

Held-out text is whole files, never paragraphs of a book that is also trained on:
- `hash:F` (default `hash:0.01`): a file is held out when a hash of its name falls below F,
  so the choice does not depend on the other files; at least one file is held out and one
  kept. A corpus of one file cannot spare a whole file: its last F of documents, one
  contiguous block, is held out instead (the summary says so).
- `authors:W-Z`: files whose name starts with a letter from W to Z (the `Author__Title`
  names of shared/data's gutenberg-large; its README suggests this split).
- `none`: nothing is held out.

Steps, in order: read (Gutenberg boilerplate stripped, NFKC), optional exact + MinHash
deduplication, held-out split, tokenizer on the training documents, Cramming's
tokens-per-character filter on the training documents (`cutoff`; None skips it), packing.
A lock file serialises two processes preparing the same key.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hasten.core.atomic import atomic_dir, atomic_write
from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import cache_dir
from hasten.text.dedup import dedup
from hasten.text.filter import cramming_filter
from hasten.text.pack import load_shards, pack, save_shards
from hasten.text.read import Book, expand_paths, read_book
from hasten.text.tokenizer import CRAM, TokenizerSpec, load_tokenizer, train_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FORMAT = 2  # bump when the cached layout or the preparation changes (2: WordPiece trained
#            deterministically, `hasten.text.tokenizer`)


@dataclass(frozen=True)
class PrepareSpec:
    """Everything besides the files that shapes the prepared rows."""

    tokenizer: TokenizerSpec = CRAM
    seq_len: int = 128
    cutoff: float | None = 0.3
    unit: str = "paragraph"
    heldout: str = "hash:0.01"
    dedup: bool = False
    strip_boilerplate: bool = True

    def tokenizer_part(self) -> dict[str, Any]:
        """The settings the tokenizer depends on (not the filter or the row length)."""
        return {"tokenizer": self.tokenizer.to_dict(), "unit": self.unit,
                "heldout": self.heldout, "dedup": self.dedup,
                "strip_boilerplate": self.strip_boilerplate}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokenizer": self.tokenizer.to_dict()}


@dataclass
class Prepared:
    """A prepared corpus: tokenizer, training and held-out rows, and how they were made."""

    tokenizer: Tokenizer
    train: np.ndarray
    heldout: np.ndarray
    summary: dict[str, Any]
    folder: Path
    cached: bool
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


def default_cache_dir() -> Path:
    """`$HASTEN_CACHE/corpora`, else `~/.cache/hasten/corpora` (`hasten.core.paths`)."""
    return cache_dir("corpora")


def content_hash(files: Sequence[Path]) -> str:
    """SHA-256 over every file's name and bytes, in order."""
    h = hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        h.update(f"{f.name}\0{len(data)}\0".encode())
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _key(*parts: Any) -> str:
    text = json.dumps([FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_heldout_rule(rule: str) -> None:
    """ConfigError for a held-out rule other than `hash:F` (0 < F < 1), `authors:A-B`, `none`."""
    kind, _, arg = rule.partition(":")
    if kind == "none" and not arg:
        return
    if kind == "hash":
        try:
            if 0.0 < float(arg) < 1.0:
                return
        except ValueError:
            pass
    if kind == "authors" and len(arg) == 3 and arg[1] == "-" and arg[0].isalpha() \
            and arg[2].isalpha():
        return
    raise ConfigError(f"held-out rule {rule!r}: use hash:F (0 < F < 1, e.g. hash:0.01), "
                      "authors:W-Z or none")


def _name_fraction(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16 ** 12


def split_heldout(books: Sequence[Book], rule: str) -> tuple[list[Book], list[Book], str]:
    """(training books, held-out books, a note) by `rule` (see the module docstring)."""
    check_heldout_rule(rule)
    kind, _, arg = rule.partition(":")
    books = [b for b in books if b.docs]
    if kind == "none":
        return list(books), [], "nothing held out"
    if kind == "authors":
        lo, hi = arg[0].upper(), arg[2].upper()
        held = [lo <= b.name[:1].upper() <= hi for b in books]
        if not any(held) or all(held):
            raise DataError(f"held-out rule {rule}: {sum(held)} of {len(books)} files match; "
                            "it must hold out some files and keep others")
        return ([b for b, h in zip(books, held, strict=True) if not h],
                [b for b, h in zip(books, held, strict=True) if h],
                f"files whose name starts with {lo}-{hi}")
    fraction = float(arg)
    if len(books) == 1:
        (b,) = books
        n = max(1, round(fraction * len(b.docs))) if len(b.docs) > 1 else 0
        cut = len(b.docs) - n
        return ([Book(b.name, b.path, b.docs[:cut], b.stripped_boilerplate)],
                [Book(b.name + " (tail)", b.path, b.docs[cut:], b.stripped_boilerplate)] if n
                else [], f"one file: its last {n} of {len(b.docs)} documents, one block")
    order = sorted(range(len(books)), key=lambda i: (_name_fraction(books[i].name), i))
    held_idx = {i for i in order if _name_fraction(books[i].name) < fraction} or {order[0]}
    if len(held_idx) == len(books):
        held_idx.discard(order[-1])
    return ([b for i, b in enumerate(books) if i not in held_idx],
            [b for i, b in enumerate(books) if i in held_idx],
            f"files whose name hashes below {fraction}")


@contextmanager
def _locked(cache: Path, key: str) -> Iterator[None]:
    (cache / "locks").mkdir(parents=True, exist_ok=True)
    with open(cache / "locks" / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dedup_books(books: list[Book], seed: int = 1) -> tuple[list[Book], dict[str, Any]]:
    docs = [d for b in books for d in b.docs]
    keep, info = dedup(docs, seed=seed)
    out, at = [], 0
    for b in books:
        k = keep[at:at + len(b.docs)]
        at += len(b.docs)
        out.append(Book(b.name, b.path, [d for d, x in zip(b.docs, k, strict=True) if x],
                        b.stripped_boilerplate))
    return out, {k: v for k, v in info.items() if k != "seconds"}


def _tokenizer(cache: Path, key: str, docs: list[str], spec: TokenizerSpec,
               say: Callable[[str], None]) -> tuple[Tokenizer, bool]:
    path = cache / "tokenizers" / key / "tokenizer.json"
    if path.is_file():
        return load_tokenizer(str(path)), True
    say(f"training a {spec.kind} tokenizer (vocabulary {spec.vocab_size}) on "
        f"{len(docs):,} documents")
    tok = train_tokenizer(docs, spec)
    atomic_write(path, lambda fh: fh.write(tok.to_str().encode()))
    return tok, False


def _build(files: list[Path], spec: PrepareSpec, cache: Path, tok_key: str,
           say: Callable[[str], None]) -> tuple[Tokenizer, np.ndarray, np.ndarray, dict]:
    """Read, dedup, split, tokenizer, filter, pack: the uncached path."""
    t = {"start": time.perf_counter()}
    books = [read_book(f, spec.unit, spec.strip_boilerplate) for f in files]  # type: ignore
    if not any(b.docs for b in books):
        raise DataError(f"the corpus is empty: no non-blank text in {len(files)} file(s)")
    n_docs, n_chars = sum(len(b.docs) for b in books), sum(len(d) for b in books for d in b.docs)
    dedup_info = None
    if spec.dedup:
        books, dedup_info = _dedup_books(books)
    train_books, held_books, note = split_heldout(books, spec.heldout)
    train_docs = [d for b in train_books for d in b.docs]
    held_docs = [d for b in held_books for d in b.docs]
    t["read"] = time.perf_counter()
    tok, tok_cached = _tokenizer(cache, tok_key, train_docs, spec.tokenizer, say)
    t["tokenizer"] = time.perf_counter()
    kept = train_docs
    if spec.cutoff is not None:
        mask = cramming_filter(train_docs, tok, spec.cutoff)
        kept = [d for d, k in zip(train_docs, mask, strict=True) if k]
        if not kept:
            raise DataError(f"the tokens-per-character filter (cutoff {spec.cutoff}) removed "
                            f"all {len(train_docs)} training documents")
    t["filter"] = time.perf_counter()
    say(f"packing {len(kept):,} documents into {spec.seq_len}-token rows")
    train = pack(kept, tok, seq_len=spec.seq_len)
    held = (pack(held_docs, tok, seq_len=spec.seq_len, drop_last=False) if held_docs
            else np.zeros((0, spec.seq_len), dtype=train.dtype))
    t["pack"] = time.perf_counter()
    summary = {
        "files": len(files), "documents": n_docs, "characters": n_chars, "dedup": dedup_info,
        "heldout_rule": spec.heldout, "heldout_note": note,
        "heldout_files": [b.name for b in held_books],
        "train_documents": len(train_docs), "kept_documents": len(kept),
        "heldout_documents": len(held_docs), "train_rows": int(len(train)),
        "heldout_rows": int(len(held)), "train_tokens": int(train.size),
        "vocab_size": tok.get_vocab_size(), "tokenizer_reused": tok_cached,
        "stage_seconds": {k: round(t[k] - t[p], 3) for p, k in
                          zip(["start", "read", "tokenizer", "filter"],
                              ["read", "tokenizer", "filter", "pack"], strict=True)},
    }
    return tok, train, held, summary


def prepare_corpus(paths: str | Path | Sequence[str | Path], spec: PrepareSpec = PrepareSpec(),
                   cache_dir: str | Path | None = None,
                   say: Callable[[str], None] = lambda line: None) -> Prepared:
    """The prepared corpus for `paths` and `spec`, from the cache when it holds it (see the
    module docstring). `cache_dir` defaults to `default_cache_dir()`."""
    t0 = time.perf_counter()
    check_heldout_rule(spec.heldout)
    spec.tokenizer.check()
    if spec.seq_len < 2:
        raise ConfigError(f"seq_len must be >= 2 ([CLS] plus one token), got {spec.seq_len}")
    if spec.cutoff is not None and spec.cutoff <= 0:
        raise ConfigError(f"cutoff must be > 0, got {spec.cutoff}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    files = expand_paths(paths)
    content = content_hash(files)
    tok_key = _key(content, spec.tokenizer_part())
    key = _key(content, spec.to_dict())
    folder = cache / "rows" / key
    with _locked(cache, key):
        cached = (folder / "summary.json").is_file()
        if not cached:
            tok, train, held, summary = _build(files, spec, cache, tok_key, say)
            summary.update(key=key, tokenizer_key=tok_key, content_sha256=content,
                           spec=spec.to_dict())
            with atomic_dir(folder) as tmp:
                (tmp / "tokenizer.json").write_text(tok.to_str())
                save_shards(train, tmp / "train")
                if len(held):
                    save_shards(held, tmp / "heldout")
                (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        summary = json.loads((folder / "summary.json").read_text())
        tok = load_tokenizer(str(folder / "tokenizer.json"))
        train = load_shards(folder / "train")
        held = (load_shards(folder / "heldout") if (folder / "heldout").is_dir()
                else np.zeros((0, spec.seq_len), dtype=train.dtype))
    seconds = time.perf_counter() - t0
    return Prepared(tok, train, held, summary, folder, cached, seconds,
                    dict(summary.get("stage_seconds", {})))
