"""Packing documents into fixed-length rows, and storing rows as token shards.

    rows = pack(docs, tok, seq_len=128)          # [N, 128] uint16: [CLS] doc [SEP] doc [SEP] ...
    save_shards(rows, "runs/tokens"); rows = load_shards("runs/tokens")

- `pack` concatenates the documents, each closed by [SEP] (so a [SEP] lies between any two),
  cuts the stream into rows of `seq_len - 1` tokens and puts [CLS] in front of each row
  (Cramming, Geiping & Goldstein 2023, packs 128-token rows with [SEP] between documents and
  no [CLS]; a leading [CLS] gives fine-tuning its pooling token at no cost).
- `save_shards` / `load_shards` store rows as plain `.npy` files (never pickled) plus a JSON
  index; loading memory-maps each shard and copies it into one array in RAM, as 24h-BERT
  (Izsak et al. 2021) reads whole shards into memory so training never waits on disk.
Results: docs/benchmarks.md ("Pretraining ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hasten.core.atomic import atomic_dir
from hasten.core.errors import ConfigError, DataError
from hasten.text.read import check_docs
from hasten.text.tokenizer import special_ids

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_BATCH = 2048  # documents per encode_batch call


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
