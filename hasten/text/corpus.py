"""Corpus to token shards, the data side of Cramming (Geiping & Goldstein 2023, "Cramming:
Training a Language Model on a Single GPU in One Day").

    docs = read_corpus("shared/data/gutenberg", unit="paragraph")
    tok = train_wordpiece(docs, vocab_size=32768)
    rows = pack(docs, tok, seq_len=128)          # [N, 128] uint16: [CLS] doc [SEP] doc [SEP] ...
    save_shards(rows, "runs/tokens"); rows = load_shards("runs/tokens")

- `read_corpus` reads UTF-8 text files or folders of *.txt files, splits them into documents
  (lines or paragraphs) and normalises each one (`normalize`: NFKC, whitespace runs collapsed to
  one space). A non-UTF-8 file raises one `DataError` naming the file, line and byte offset; a
  corpus without any non-blank document raises a `DataError` too.
- `train_wordpiece` trains a WordPiece tokenizer with HF `tokenizers` (Cramming trains its own
  WordPiece, vocabulary 32768 = 2^15), lowercasing by default, with a [CLS] x [SEP] template so
  the same tokenizer serves fine-tuning.
- `pack` concatenates the documents, each closed by [SEP] (so a [SEP] lies between any two),
  cuts the stream into rows of `seq_len - 1` tokens and puts [CLS] in front of each row (Cramming
  packs without [CLS]; a leading [CLS] gives fine-tuning its pooling token at no cost).
- `save_shards` / `load_shards` store rows as plain `.npy` files (never pickled) plus a JSON
  index; loading memory-maps each shard and copies it into one array in RAM, as 24h-BERT reads
  whole shards into memory so training never waits on disk.
- `prepare_corpus` runs it all, with Cramming's tokens-per-character filter
  (`hasten.select.text.cramming_filter`) between tokenizer training and packing.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hasten.atomic import atomic_dir
from hasten.errors import ConfigError, DataError
from hasten.select.text import expand_paths

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]  # ids 0..4 in a tokenizer from train_wordpiece
TEXT_SUFFIXES = {".txt", ".text", ".md"}
_WS = re.compile(r"\s+")
_BATCH = 2048  # documents per encode_batch call


# -----------------------------------------------------------------------------
# reading and normalisation


def normalize(text: str) -> str:
    """NFKC (compatibility forms such as ligatures and full-width letters folded), whitespace
    runs (incl. line breaks and non-breaking spaces) collapsed to one space, ends stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    return expand_paths(paths, TEXT_SUFFIXES)


def read_corpus(paths: str | Path | Sequence[str | Path],
                unit: Literal["line", "paragraph"] = "paragraph",
                strip_boilerplate: bool = True) -> list[str]:
    """Documents of UTF-8 text files (a folder means its .txt/.text/.md files), normalised.

    `unit` is "paragraph" (blocks separated by blank lines; right for hard-wrapped books) or
    "line". Project Gutenberg headers and licence footers are dropped where their markers exist.
    Raises DataError on a non-UTF-8 file (file, line, byte offset) or an empty corpus.
    """
    from hasten.select.io import read_text, split_documents
    from hasten.select.text import strip_gutenberg

    if unit not in ("line", "paragraph"):
        raise ConfigError(f"unit must be 'line' or 'paragraph', got {unit!r}")
    files = _files(paths)
    docs: list[str] = []
    for f in files:
        text = read_text(f)  # DataError naming file, line and byte offset on bad UTF-8
        if strip_boilerplate:
            text, _ = strip_gutenberg(text)
        docs.extend(d for d in map(normalize, split_documents(text, unit)) if d)
    if not docs:
        raise DataError(f"the corpus is empty: no non-blank text in {len(files)} file(s)")
    return docs


def check_docs(docs: Sequence[str]) -> list[str]:
    """`docs` as a list, or a DataError if it is one string, holds a non-str or has no text."""
    if isinstance(docs, str):
        raise ConfigError("docs must be a list of documents, not one string")
    docs = list(docs)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i} is a {type(d).__name__}, not a str")
    if not any(d.strip() for d in docs):
        raise DataError("the corpus is empty: no document holds any non-blank text")
    return docs


# -----------------------------------------------------------------------------
# tokenizer


def train_wordpiece(docs: Sequence[str], vocab_size: int = 32768, *, lowercase: bool = True,
                    min_frequency: int = 2, max_len: int = 512) -> Tokenizer:
    """Train a WordPiece tokenizer on `docs` (HF `tokenizers`), as Cramming does.

    Specials [PAD] [UNK] [CLS] [SEP] [MASK] get ids 0..4. Normaliser NFKC (+ lowercase);
    BERT pre-tokenizer (whitespace and punctuation); WordPiece decoder; post-processor
    "[CLS] A [SEP]" / "[CLS] A [SEP] B [SEP]" with type ids, truncation-free. `vocab_size` must
    exceed the number of special tokens (ConfigError otherwise).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    if not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size must be an int > {len(SPECIAL_TOKENS)} (the special "
                          f"tokens {' '.join(SPECIAL_TOKENS)}), got {vocab_size!r}")
    docs = check_docs(docs)
    tok = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=100))
    norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS),
                                        show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0", pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, ids[CLS]), (SEP, ids[SEP])])
    return tok


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of [PAD] [UNK] [CLS] [SEP] [MASK] by short name (pad, unk, cls, sep, mask)."""
    out = {}
    for name, tok in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS, strict=True):
        i = tokenizer.token_to_id(tok)
        if i is None:
            raise ConfigError(f"the tokenizer has no {tok} token")
        out[name] = int(i)
    return out


# -----------------------------------------------------------------------------
# packing


def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.int32)


def pack(docs: Sequence[str], tokenizer: Tokenizer, seq_len: int = 128, *,
         drop_last: bool = True) -> np.ndarray:
    """Pack documents into rows [N, seq_len]: [CLS] then the token stream, where every document
    is followed by [SEP]; documents run on across rows. uint16 when the vocabulary fits, else
    int32. The last partial row is dropped (`drop_last`) or padded with [PAD]. Documents that
    tokenize to nothing are skipped."""
    if seq_len < 2:
        raise ConfigError(f"seq_len must be >= 2 ([CLS] plus one token), got {seq_len}")
    docs = check_docs(docs)
    ids = special_ids(tokenizer)
    dtype = _dtype(tokenizer.get_vocab_size())
    pieces: list[np.ndarray] = []
    sep = np.array([ids["sep"]], dtype=dtype)
    for start in range(0, len(docs), _BATCH):
        for enc in tokenizer.encode_batch(docs[start:start + _BATCH], add_special_tokens=False):
            if enc.ids:
                pieces.append(np.asarray(enc.ids, dtype=dtype))
                pieces.append(sep)
    if not pieces:
        raise DataError("the corpus is empty: no document produced any token")
    stream = np.concatenate(pieces)
    body = seq_len - 1
    n_full = len(stream) // body
    rest = len(stream) - n_full * body
    if not drop_last and rest:
        stream = np.concatenate([stream, np.full(body - rest, ids["pad"], dtype=dtype)])
        n_full += 1
    if n_full == 0:
        raise DataError(f"the corpus has {len(stream)} tokens, fewer than one row of {seq_len} "
                        "(pass drop_last=False to pad it)")
    rows = np.empty((n_full, seq_len), dtype=dtype)
    rows[:, 0] = ids["cls"]
    rows[:, 1:] = stream[:n_full * body].reshape(n_full, body)
    return rows


# -----------------------------------------------------------------------------
# shards


def save_shards(rows: np.ndarray, out_dir: str | Path, shard_rows: int = 1 << 18,
                meta: dict | None = None) -> Path:
    """Write rows as `shard-00000.npy`, ... (at most `shard_rows` rows each) and `index.json`
    (shape, dtype, files, `meta`). Written into a temporary sibling and renamed into place, so
    `out_dir` is either absent, the old one, or complete."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise DataError(f"rows must be a non-empty [N, seq_len] array, got shape {rows.shape}")
    if rows.dtype not in (np.uint16, np.int32, np.int64):
        raise DataError(f"rows must hold integer token ids, got dtype {rows.dtype}")
    if shard_rows < 1:
        raise ConfigError(f"shard_rows must be >= 1, got {shard_rows}")
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        files = []
        for k, start in enumerate(range(0, len(rows), shard_rows)):
            name = f"shard-{k:05d}.npy"
            np.save(tmp / name, np.ascontiguousarray(rows[start:start + shard_rows]),
                    allow_pickle=False)
            files.append(name)
        index = {"rows": int(rows.shape[0]), "seq_len": int(rows.shape[1]),
                 "dtype": str(rows.dtype), "files": files, "meta": meta or {}}
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
    return out


def load_shards(path: str | Path) -> np.ndarray:
    """All rows of a folder written by `save_shards`, in one array in RAM (each shard is
    memory-mapped, checked against the index and copied)."""
    p = Path(path)
    index_file = p / "index.json"
    if not index_file.is_file():
        raise DataError(f"{p}: not a token-shard folder (no index.json)")
    try:
        index = json.loads(index_file.read_text())
        files, n, seq_len = index["files"], int(index["rows"]), int(index["seq_len"])
        dtype = np.dtype(index["dtype"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{index_file}: corrupt index ({e})") from None
    out = np.empty((n, seq_len), dtype=dtype)
    at = 0
    for name in files:
        try:
            shard = np.load(p / name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{p / name}: cannot read shard ({e})") from None
        if shard.ndim != 2 or shard.shape[1] != seq_len or shard.dtype != dtype \
                or at + len(shard) > n:
            raise DataError(f"{p / name}: shape {shard.shape} / dtype {shard.dtype} does not "
                            f"match the index ([*, {seq_len}] {dtype}, {n} rows)")
        out[at:at + len(shard)] = shard
        at += len(shard)
    if at != n:
        raise DataError(f"{p}: shards hold {at} rows, the index says {n}")
    return out


# -----------------------------------------------------------------------------
# the whole pipeline


def prepare_corpus(paths: str | Path | Sequence[str | Path], vocab_size: int = 32768,
                   seq_len: int = 128, *, cutoff: float | None = 0.3,
                   unit: Literal["line", "paragraph"] = "paragraph",
                   lowercase: bool = True) -> tuple[Tokenizer, np.ndarray, dict]:
    """Read and normalise, train WordPiece, apply Cramming's tokens-per-character filter
    (`cutoff`; None skips it), pack. Returns the tokenizer, the rows and a JSON-ready summary
    (documents, kept documents, tokens, rows, seconds)."""
    from hasten.select.text import cramming_filter

    t0 = time.perf_counter()
    docs = read_corpus(paths, unit=unit)
    t_read = time.perf_counter()
    tok = train_wordpiece(docs, vocab_size=vocab_size, lowercase=lowercase)
    t_tok = time.perf_counter()
    kept = docs
    if cutoff is not None:
        keep = cramming_filter(docs, tok, cutoff=cutoff)
        kept = [d for d, k in zip(docs, keep, strict=True) if k]
        if not kept:
            raise DataError(f"the tokens-per-character filter (cutoff {cutoff}) removed all "
                            f"{len(docs)} documents")
    t_filter = time.perf_counter()
    rows = pack(kept, tok, seq_len=seq_len)
    t_pack = time.perf_counter()
    summary = {"documents": len(docs), "kept_documents": len(kept),
               "characters": sum(map(len, docs)), "vocab_size": tok.get_vocab_size(),
               "seq_len": seq_len, "rows": int(rows.shape[0]),
               "tokens": int(rows.size), "cutoff": cutoff,
               "seconds": {"read": round(t_read - t0, 3), "tokenizer": round(t_tok - t_read, 3),
                           "filter": round(t_filter - t_tok, 3),
                           "pack": round(t_pack - t_filter, 3)}}
    return tok, rows, summary
