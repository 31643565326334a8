"""Linear probes: toy separable and non-separable sets, mask-aware mean pooling, the
bag-of-tokens control, and the SST-2 / STS-B pipelines on a toy GLUE folder."""

import numpy as np
import pytest
import torch
from lmeval_helpers import get_hf_tok, get_tiny_bert, write_toy_glue

from hasten.core.errors import DataError
from hasten.pretrain.lmeval.loading import wrap_lm
from hasten.pretrain.lmeval.probes import (
    bag_of_tokens,
    embed,
    encoder_features,
    fit_logistic,
    fit_similarity,
    pair_features,
    probe_sst2,
    probe_stsb,
)


def blobs(n, seed, separable=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8))
    if separable:
        x[:, 0] += np.where(y == 1, 6.0, -6.0)
    return x, y


def test_logistic_probe_toy_sets():
    x, y = blobs(400, 0)
    tx, ty = blobs(200, 1)
    res = fit_logistic(x, y, tx, ty)
    assert res["accuracy"] == 100.0 and res["correct"].all()
    x, y = blobs(400, 2, separable=False)
    tx, ty = blobs(1000, 3, separable=False)
    res = fit_logistic(x, y, tx, ty)
    assert 40.0 < res["accuracy"] < 60.0
    assert res["accuracy"] == fit_logistic(x, y, tx, ty)["accuracy"]  # deterministic
    with pytest.raises(DataError, match="single class"):
        fit_logistic(x, np.zeros(len(x)), tx, ty)


def test_similarity_probe_toy_sets():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(600, 6)), rng.normal(size=(600, 6))
    y = np.abs(u - v) @ np.arange(1, 7) + (u * v) @ np.ones(6)  # linear in the features
    res = fit_similarity(u[:400], v[:400], y[:400], u[400:], v[400:], y[400:])
    assert res["pearson"] > 99.9 and res["spearman"] > 99.5
    assert len(res["predictions"]) == 200
    noise = rng.normal(size=600)
    res = fit_similarity(u[:400], v[:400], noise[:400], u[400:], v[400:], noise[400:])
    assert abs(res["spearman"]) < 20 and abs(res["pearson"]) < 20


def test_pair_features_dense_and_sparse():
    from scipy import sparse

    u, v = np.array([[1.0, -2.0]]), np.array([[3.0, 1.0]])
    assert pair_features(u, v).tolist() == [[2.0, 3.0, 3.0, -2.0]]
    got = pair_features(sparse.csr_matrix(u), sparse.csr_matrix(v)).toarray()
    assert got.tolist() == [[2.0, 3.0, 3.0, -2.0]]


def test_mean_pooling_ignores_padding():
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    short, long = "The dog.", "The quick brown fox jumps over the lazy dog near the river."
    together = embed(lm, [short, long])  # one batch: the short one is padded
    alone = embed(lm, [short], batch_tokens=1)
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-5, atol=1e-6)
    ids = torch.tensor([hf_tok(short)["input_ids"]])
    with torch.no_grad():
        hidden = tiny_bert.bert(input_ids=ids).last_hidden_state[0]
    np.testing.assert_allclose(alone[0], hidden.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert together.dtype == np.float32 and together.shape == (2, 32)


def test_bag_of_tokens():
    hf_tok = get_hf_tok()
    feats = bag_of_tokens(hf_tok)(["the dog the", "fox"]).toarray()
    the, dog = hf_tok.convert_tokens_to_ids(["the", "dog"])
    assert feats.shape == (2, len(hf_tok))
    assert feats[0, the] == pytest.approx(2 / 3) and feats[0, dog] == pytest.approx(1 / 3)
    assert feats.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_probe_pipelines_on_a_toy_glue(tmp_path):
    toy_glue = write_toy_glue(tmp_path / "glue")
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    bag = bag_of_tokens(hf_tok)
    sst2 = probe_sst2(bag, toy_glue)
    assert sst2["accuracy"] == 100.0 and sst2["train"] == 200 and sst2["dev"] == 60
    stsb = probe_stsb(bag, toy_glue)
    assert stsb["spearman"] == pytest.approx(100.0) and stsb["pearson"] > 99.0
    enc = probe_sst2(encoder_features(wrap_lm(tiny_bert, hf_tok, device="cpu")), toy_glue)
    assert 0.0 <= enc["accuracy"] <= 100.0 and len(enc["correct"]) == 60
