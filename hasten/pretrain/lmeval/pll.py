"""Pseudo-log-likelihood of a sentence under a masked language model (Salazar, Liang, Nguyen
& Kirchhoff 2020, "Masked Language Model Scoring"), in the word-level form PLL-word-l2r
(Kauf & Ivanova 2023, "A Better Way to Do Masked Language Model Scoring").

PLL(sentence) = sum over its tokens t of log P(t | the sentence with t masked). Salazar et
al. mask one token per copy. With a WordPiece vocabulary that inflates the score of a word
split into pieces: "souvenir" -> "so ##uven ##ir" is easy to complete when only one piece is
hidden. PLL-word-l2r masks, when scoring a piece, that piece and the later pieces of the same
word (left to right within the word), so the first piece is predicted without its
continuation and the last one with the earlier pieces visible; single-piece words are scored
as in the original. Word boundaries are the tokenizer's own (`word_ids()` of a fast HF
tokenizer: a BERT pre-tokenizer makes each punctuation mark a word). [CLS], [SEP] and other
special tokens are inputs, never scored.

Speed: every masked copy of a sentence goes into the same forward, sentences are grouped by
length into batches of about `batch_tokens` tokens (little padding), and the MLM head runs only
on the one scored row of each copy (`logits_at`). Departures: sentences longer than the
model's maximum length are truncated (BLiMP sentences never are). The results are shown in
docs/benchmarks.md, "Pretraining ladder: the Cramming ablation by held-out loss".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.loading import LM, attention_mask, length_batches, logits_at


def tokenize(tokenizer: Any, sentences: Sequence[str], max_len: int = 512
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(token ids, word index per token with -1 for special tokens) of each sentence, with
    the tokenizer's special tokens ([CLS] ... [SEP])."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{type(tokenizer).__name__} is not a fast tokenizer, so word "
                          "boundaries are unknown")
    if isinstance(sentences, str):
        raise ConfigError("sentences must be a list of strings, not one string")
    if not sentences:
        return []
    enc = tokenizer(list(sentences), truncation=True, max_length=max_len)
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        words = np.asarray([-1 if w is None else w for w in enc.word_ids(i)], dtype=np.int64)
        out.append((np.asarray(ids, dtype=np.int64), words))
    return out


def masked_copies(ids: np.ndarray, words: np.ndarray, mask_id: int, word_l2r: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The masked copies [n, L] of one tokenized sentence and the position [n] each one
    scores, one copy per non-special token in order. Copy k masks its scored position and,
    with `word_l2r`, every later position of the same word."""
    ids, words = np.asarray(ids), np.asarray(words)
    targets = np.flatnonzero(words >= 0)
    pos = np.arange(len(ids))
    hide = pos[None, :] == targets[:, None]
    if word_l2r:
        same_word = words[None, :] == words[targets][:, None]
        hide |= same_word & (pos[None, :] > targets[:, None])
    return np.where(hide, mask_id, ids[None, :]), targets


def _batch(items: list[tuple[np.ndarray, np.ndarray]], which: np.ndarray, mask_id: int,
           pad_id: int, word_l2r: bool) -> tuple[np.ndarray, ...]:
    """Inputs [R, L], attention mask [R, L], flat scored positions [R], their token ids [R]
    and the sentence each row belongs to [R], for the sentences `which`."""
    length = max(len(items[i][0]) for i in which)
    inputs, masks, positions, targets, owners = [], [], [], [], []
    rows = 0
    for i in which:
        ids, words = items[i]
        copies, scored = masked_copies(ids, words, mask_id, word_l2r)
        n = len(scored)
        if n == 0:
            continue
        padded = np.full((n, length), pad_id, dtype=np.int64)
        padded[:, :len(ids)] = copies
        attend = np.zeros((n, length), dtype=np.int64)
        attend[:, :len(ids)] = 1
        inputs.append(padded)
        masks.append(attend)
        positions.append((rows + np.arange(n)) * length + scored)
        targets.append(ids[scored])
        owners.append(np.full(n, i))
        rows += n
    if not rows:
        empty = np.zeros((0,), dtype=np.int64)
        return np.zeros((0, length), np.int64), np.zeros((0, length), np.int64), empty, \
            empty, empty
    return (np.concatenate(inputs), np.concatenate(masks), np.concatenate(positions),
            np.concatenate(targets), np.concatenate(owners))


def token_log_probs(lm: LM, inputs: np.ndarray, mask: np.ndarray, positions: np.ndarray,
                    targets: np.ndarray) -> np.ndarray:
    """log P(targets[k] | inputs) at flat `positions[k]`, float64 [K], one forward, no
    gradients, under the LM's precision (the log-softmax is always fp32)."""
    dev = lm.device
    with torch.no_grad(), lm.autocast():
        logits = logits_at(lm, torch.from_numpy(inputs).to(dev),
                           attention_mask(torch.from_numpy(mask).to(dev)),
                           torch.from_numpy(positions).to(dev))
    logp = logits.float().log_softmax(dim=-1)
    picked = logp.gather(1, torch.from_numpy(targets).to(dev)[:, None]).squeeze(1)
    return picked.double().cpu().numpy()


def pll_scores(lm: LM, sentences: Sequence[str], *, word_l2r: bool = True,
               batch_tokens: int = 8192) -> np.ndarray:
    """The pseudo-log-likelihood (natural log, summed over tokens) of each sentence, float64.
    `word_l2r=False` is Salazar et al.'s one-token-per-copy PLL."""
    if not lm.mlm:
        raise ConfigError(f"{lm.name} has no trained MLM head, so pseudo-log-likelihood does "
                          "not apply")
    items = tokenize(lm.tokenizer, sentences, lm.max_len)
    lengths = [len(ids) for ids, _ in items]
    counts = [max(1, int((words >= 0).sum())) for _, words in items]
    scores = np.zeros(len(items), dtype=np.float64)
    mask_id, pad_id = int(lm.tokenizer.mask_token_id), int(lm.tokenizer.pad_token_id)
    for which in length_batches(lengths, batch_tokens, rows=counts):
        inputs, mask, positions, targets, owners = _batch(items, which, mask_id, pad_id,
                                                          word_l2r)
        if len(targets):
            np.add.at(scores, owners, token_log_probs(lm, inputs, mask, positions, targets))
    if not np.all(np.isfinite(scores)):
        raise DataError(f"{lm.name}: non-finite pseudo-log-likelihood (the model's weights "
                        "hold NaN or inf)")
    return scores
