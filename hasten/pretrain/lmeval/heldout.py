"""Held-out masked-LM loss at one common masking rate with fixed masks, so recipes trained
at different rates (BERT, Devlin et al. 2019: 15%; Cramming, Geiping & Goldstein 2023: 25%)
are compared on the same task.

The rule: 15% of the non-special tokens of every row, exactly round(0.15 x eligible) per
row (`hasten.text.masking.mask_tokens` with `exact=True`), drawn once for all rows from a
fixed seed, so the masks do not depend on the batch size or on the model, and a prefix of the
rows gets the same masks as in the whole set. Every chosen token
becomes [MASK] (plain masking, not BERT's 80/10/10: the evaluation asks how well a token is
predicted from its context, and random replacements would add noise that depends on the
vocabulary). The loss is the mean cross-entropy (natural log) over all masked tokens of all
rows. Rows are packed token ids the caller gives ([N, S], e.g. the held-out rows of
`hasten cram`) or text that `pack_text` packs with the model's own tokenizer as
`hasten.text.corpus.pack` does ([CLS] first, [SEP] after each document); `read_documents`
reads text files, gzipped or not, as paragraphs. The results are shown in
docs/benchmarks.md, "Pretraining ladder: the Cramming ablation by held-out loss".
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.loading import LM, attention_mask, logits_at
from hasten.text.masking import IGNORE, mask_tokens
from hasten.text.read import expand_paths, normalize, split_documents, strip_gutenberg

MASK_RATE = 0.15
MASK_SEED = 1234  # the one seed of the fixed evaluation masks
TEXT_SUFFIXES = (".txt", ".text", ".md", ".gz")


def read_documents(paths: str | Path | Sequence[str | Path]) -> list[str]:
    """Paragraphs of UTF-8 text files (`.txt.gz` read through gzip; a folder means its text
    files, recursively), Gutenberg boilerplate dropped, whitespace normalised. A missing path,
    a folder without text files, undecodable bytes or no text at all raise a DataError."""
    docs: list[str] = []
    files = expand_paths(paths, TEXT_SUFFIXES)
    for f in files:
        try:
            raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
            text = raw.decode("utf-8").replace("\r\n", "\n")
        except (OSError, EOFError) as err:
            raise DataError(f"{f}: cannot read ({' '.join(str(err).split())})") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{f}: not valid UTF-8 (byte offset {err.start})") from None
        text, _ = strip_gutenberg(text)
        docs.extend(d for d in map(normalize, split_documents(text, "paragraph")) if d)
    if not docs:
        raise DataError(f"the corpus is empty: no text in {len(files)} file(s)")
    return docs


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens and without truncation (through the
    fast tokenizer's backend where there is one: no length warnings, no overhead)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch(list(texts), add_special_tokens=False)]
    return tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


def pack_text(docs: Sequence[str], tokenizer: Any, seq_len: int = 128,
              max_rows: int | None = None) -> torch.Tensor:
    """Documents packed into rows [N, seq_len] int64 with an HF tokenizer: [CLS] then the
    token stream, every document followed by [SEP]; the last partial row is dropped.
    `max_rows` keeps the first rows only."""
    if seq_len < 2:
        raise ConfigError(f"seq_len must be >= 2, got {seq_len}")
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else \
        tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else \
        tokenizer.eos_token_id
    if cls is None or sep is None:
        raise DataError("the tokenizer has no [CLS]/[SEP] (or BOS/EOS) tokens to pack with")
    body = seq_len - 1
    need = None if max_rows is None else max_rows * body
    stream: list[int] = []
    for start in range(0, len(docs), 1024):
        for ids in token_ids(tokenizer, docs[start:start + 1024]):
            if ids:
                stream.extend(ids)
                stream.append(sep)
        if need is not None and len(stream) >= need:
            break
    n = len(stream) // body if need is None else min(len(stream) // body, max_rows)
    if n == 0:
        raise DataError(f"the held-out text has {len(stream)} tokens, fewer than one row of "
                        f"{seq_len}")
    rows = torch.empty((n, seq_len), dtype=torch.long)
    rows[:, 0] = cls
    rows[:, 1:] = torch.tensor(stream[:n * body], dtype=torch.long).view(n, body)
    return rows


def fixed_masks(rows: torch.Tensor, tokenizer: Any, rate: float = MASK_RATE,
                seed: int = MASK_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of the fixed evaluation masks: labels hold the original token where
    one is predicted and -100 elsewhere; every predicted token is [MASK] in the inputs."""
    rows = torch.as_tensor(rows)
    if rows.dim() != 2 or rows.shape[0] == 0:
        raise DataError(f"rows must be a non-empty [N, seq_len] array, got shape "
                        f"{list(rows.shape)}")
    gen = torch.Generator().manual_seed(seed)
    return mask_tokens(rows.long(), rate, tokenizer.all_special_ids,
                       int(tokenizer.mask_token_id), len(tokenizer), rule=(1.0, 0.0, 0.0),
                       generator=gen, exact=True)


def mlm_loss(lm: LM, rows: torch.Tensor | np.ndarray, *, rate: float = MASK_RATE,
             seed: int = MASK_SEED, batch_rows: int = 64) -> dict[str, Any]:
    """{"loss": mean per-token cross-entropy over the masked tokens, "tokens", "rows"} of
    packed held-out rows under the fixed masks, in eval mode without gradients."""
    if not lm.mlm:
        raise ConfigError(f"{lm.name} has no trained MLM head, so the MLM loss does not apply")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
    inputs, labels = fixed_masks(torch.as_tensor(np.asarray(rows)), lm.tokenizer, rate, seed)
    pad = int(lm.tokenizer.pad_token_id)
    total, count = 0.0, 0
    for start in range(0, len(inputs), batch_rows):
        x = inputs[start:start + batch_rows].to(lm.device)
        y = labels[start:start + batch_rows].reshape(-1)
        positions = torch.nonzero(y != IGNORE).flatten()
        if len(positions) == 0:
            continue
        mask = attention_mask((x != pad).long())
        with torch.no_grad(), lm.autocast():
            logits = logits_at(lm, x, mask, positions.to(lm.device))
        loss = F.cross_entropy(logits.float(), y[positions].to(lm.device), reduction="sum")
        total += float(loss)
        count += len(positions)
    if count == 0:
        raise DataError("the held-out rows have no token to mask")
    if not np.isfinite(total):
        raise DataError(f"{lm.name}: non-finite held-out loss")
    return {"loss": total / count, "tokens": count, "rows": int(len(inputs)), "rate": rate,
            "seed": seed, "rule": "plain [MASK]"}
