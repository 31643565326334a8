"""Frozen-encoder linear probes: how much of a task a linear model can read off the encoder's
sentence embeddings (Conneau et al. 2018, "What you can cram into a single vector"; SentEval,
Conneau & Kiela 2018), without fine-tuning noise.

- Embedding: the mean of the final hidden states over the real tokens of a sentence
  ([CLS] and [SEP] included, padding excluded), no gradients, sentences sorted by length and
  batched to about `batch_tokens` tokens, optional bf16 autocast. Nothing is cached.
- SST-2 (Socher et al. 2013): logistic regression (sklearn, L-BFGS, C = 1 on standardised
  features; with 67,349 training rows and a few hundred features the penalty barely matters,
  so it is not tuned) on the full training set; accuracy x 100 on the 872 dev sentences.
- STS-B (Cer et al. 2017): each sentence embedded alone (u, v), features [|u - v|, u * v]
  (SentEval's, less the concatenation), ridge regression with the penalty chosen by
  leave-one-out over a fixed grid (`RidgeCV`) on the 5,749 training pairs; the reported
  score is the Spearman correlation x 100 on the 1,500 dev pairs (Pearson is kept beside it).
- Control: `bag_of_tokens(tokenizer)` gives the same probes a context-free baseline, the mean
  of one-hot token vectors (the same mean pooling over an identity embedding), features kept
  sparse and not standardised.

Departures from SentEval: no tuning of the logistic penalty, no MLP probe, the GLUE dev sets
as test sets. The results are shown in docs/benchmarks.md, "Pretraining ladder: the Cramming
ablation by held-out loss".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasten.core.errors import DataError
from hasten.pretrain.lmeval.glue_tasks import pearson, read_task, spearman
from hasten.pretrain.lmeval.heldout import token_ids
from hasten.pretrain.lmeval.loading import LM, attention_mask, length_batches

Features = Callable[[Sequence[str]], Any]  # texts -> [N, D] array or sparse matrix
RIDGE_ALPHAS = tuple(10.0 ** k for k in range(-3, 7))


def embed(lm: LM, texts: Sequence[str], *, batch_tokens: int = 16384,
          max_len: int | None = None) -> np.ndarray:
    """Mean-pooled final hidden states [N, H] (float32) of `texts`, in input order."""
    enc = lm.tokenizer(list(texts), truncation=True, max_length=max_len or lm.max_len)
    items = enc["input_ids"]
    out: np.ndarray | None = None
    pad = int(lm.tokenizer.pad_token_id)
    for which in length_batches([len(x) for x in items], batch_tokens):
        length = max(len(items[i]) for i in which)
        ids = torch.full((len(which), length), pad, dtype=torch.long)
        mask = torch.zeros((len(which), length), dtype=torch.long)
        for row, i in enumerate(which):
            ids[row, :len(items[i])] = torch.tensor(items[i])
            mask[row, :len(items[i])] = 1
        ids, mask = ids.to(lm.device), mask.to(lm.device)
        with torch.no_grad(), lm.autocast():
            hidden = lm.encode(ids, attention_mask(mask))
        weights = mask.to(torch.float32)[..., None]
        pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if out is None:
            out = np.empty((len(items), pooled.shape[1]), dtype=np.float32)
        out[which] = pooled.cpu().numpy()
    if out is None:
        raise DataError("no text to embed")
    return out


def encoder_features(lm: LM, batch_tokens: int = 16384) -> Features:
    """The probe features of an encoder: `embed` with its settings."""
    return lambda texts: embed(lm, texts, batch_tokens=batch_tokens)


def bag_of_tokens(tokenizer: Any, max_len: int = 128) -> Features:
    """The context-free control: mean of one-hot token vectors (sparse [N, vocabulary])."""
    from scipy import sparse

    def features(texts: Sequence[str]) -> Any:
        enc = [ids[:max_len] for ids in token_ids(tokenizer, texts)]
        rows = np.repeat(np.arange(len(enc)), [len(x) for x in enc])
        cols = np.fromiter((t for x in enc for t in x), dtype=np.int64, count=len(rows))
        weights = np.repeat([1.0 / max(1, len(x)) for x in enc], [len(x) for x in enc])
        return sparse.csr_matrix((weights, (rows, cols)), shape=(len(enc), len(tokenizer)))

    return features


def _dense(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _scaled(train_x: Any, test_x: Any) -> tuple[Any, Any]:
    """Standardise dense features on the training set; leave sparse ones as they are."""
    if not _dense(train_x):
        return train_x, test_x
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    return scaler.transform(train_x), scaler.transform(test_x)


def fit_logistic(train_x: Any, train_y: np.ndarray, test_x: Any, test_y: np.ndarray,
                 c: float = 1.0) -> dict[str, Any]:
    """Logistic regression on `train_x`; {"accuracy": % on the test set, "correct": bool
    per test item}. Deterministic."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(train_y)) < 2:
        raise DataError("the probe's training labels hold a single class")
    train_x, test_x = _scaled(train_x, test_x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=c, max_iter=1000).fit(train_x, train_y)
    correct = clf.predict(test_x) == np.asarray(test_y)
    return {"accuracy": 100 * float(correct.mean()), "correct": correct}


def pair_features(u: Any, v: Any) -> Any:
    """[|u - v|, u * v] of paired embeddings (dense or sparse)."""
    if _dense(u):
        return np.concatenate([np.abs(u - v), u * v], axis=1)
    from scipy import sparse

    return sparse.hstack([abs(u - v), u.multiply(v)]).tocsr()


def fit_similarity(train_u: Any, train_v: Any, train_y: np.ndarray, test_u: Any, test_v: Any,
                   test_y: np.ndarray) -> dict[str, Any]:
    """Ridge regression of the score on `pair_features`, penalty by leave-one-out over
    `RIDGE_ALPHAS`; {"spearman", "pearson"} x 100 on the test pairs, "alpha" and the test
    predictions."""
    from sklearn.linear_model import RidgeCV

    train_x, test_x = _scaled(pair_features(train_u, train_v), pair_features(test_u, test_v))
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(train_x, np.asarray(train_y, dtype=np.float64))
    pred = model.predict(test_x)
    return {"spearman": 100 * spearman(pred, test_y), "pearson": 100 * pearson(pred, test_y),
            "alpha": float(model.alpha_), "predictions": pred}


def probe_sst2(features: Features, root: str | Path | None = None) -> dict[str, Any]:
    """SST-2: fit on the full training set, accuracy x 100 on dev (`fit_logistic`)."""
    a, _, y = read_task("sst2", "train", root)
    da, _, dy = read_task("sst2", "dev", root)
    res = fit_logistic(features(a), y, features(da), dy)
    return {**res, "train": len(y), "dev": len(dy)}


def probe_stsb(features: Features, root: str | Path | None = None) -> dict[str, Any]:
    """STS-B: fit on the full training set, Spearman (and Pearson) x 100 on dev."""
    a, b, y = read_task("stsb", "train", root)
    da, db, dy = read_task("stsb", "dev", root)
    assert b is not None and db is not None
    res = fit_similarity(features(a), features(b), y, features(da), features(db), dy)
    return {**res, "train": len(y), "dev": len(dy)}
