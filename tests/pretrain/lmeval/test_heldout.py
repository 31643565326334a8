"""Held-out MLM loss at 15% with fixed masks: the masks, a hand computation, repeatability,
packing with the model's tokenizer, and reading text corpora."""

import gzip

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmeval_helpers import DOCS, get_hf_tok, get_tiny_bert, get_wordpiece

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.heldout import fixed_masks, mlm_loss, pack_text, read_documents
from hasten.pretrain.lmeval.loading import wrap_lm
from hasten.text.masking import IGNORE
from hasten.text.pack import pack


def test_pack_text_matches_hasten_pack():
    hf_tok = get_hf_tok()
    wordpiece = get_wordpiece()
    rows = pack_text(DOCS, hf_tok, seq_len=16)
    want = pack(DOCS, wordpiece, seq_len=16).astype(np.int64)
    assert rows.dtype == torch.long and rows.tolist() == want.tolist()
    assert pack_text(DOCS, hf_tok, seq_len=16, max_rows=3).tolist() == want[:3].tolist()
    with pytest.raises(DataError, match="fewer than one row of 512"):
        pack_text(["the dog"], hf_tok, seq_len=512)


def test_fixed_masks():
    hf_tok = get_hf_tok()
    rows = pack_text(DOCS, hf_tok, seq_len=32)
    inputs, labels = fixed_masks(rows, hf_tok)
    again, labels2 = fixed_masks(rows.clone(), hf_tok)
    assert torch.equal(inputs, again) and torch.equal(labels, labels2)
    picked = labels != IGNORE
    specials = torch.isin(rows, torch.tensor(hf_tok.all_special_ids))
    eligible = (~specials).sum(1)
    assert picked.sum(1).tolist() == torch.round(0.15 * eligible.double()).long().tolist()
    assert not (picked & specials).any()
    assert (inputs[picked] == hf_tok.mask_token_id).all()  # plain [MASK], no 80/10/10
    assert torch.equal(inputs[~picked], rows[~picked]) and torch.equal(labels[picked],
                                                                       rows[picked])
    # a prefix of the rows gets the same masks (more held-out rows only add rows)
    head, _ = fixed_masks(rows[:2], hf_tok)
    assert torch.equal(head, inputs[:2])


def test_loss_equals_a_hand_computation():
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    rows = pack_text(DOCS, hf_tok, seq_len=24, max_rows=6)
    res = mlm_loss(lm, rows, batch_rows=4)
    inputs, labels = fixed_masks(rows, hf_tok)
    with torch.no_grad():
        logits = tiny_bert(input_ids=inputs).logits
    picked = labels != IGNORE
    hand = F.cross_entropy(logits[picked].double(), labels[picked]).item()
    assert res["loss"] == pytest.approx(hand, rel=1e-5)
    assert res["tokens"] == int(picked.sum()) and res["rows"] == 6
    assert mlm_loss(lm, rows, batch_rows=4) == res  # identical across calls
    assert mlm_loss(lm, rows, batch_rows=1)["loss"] == pytest.approx(res["loss"], rel=1e-6)
    assert mlm_loss(lm, rows.numpy())["loss"] == pytest.approx(res["loss"], rel=1e-6)


def test_no_mlm_head_and_bad_rows():
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    encoder = wrap_lm(tiny_bert, hf_tok, device="cpu", mlm=False)
    rows = pack_text(DOCS, hf_tok, seq_len=16)
    with pytest.raises(ConfigError, match="no trained MLM head"):
        mlm_loss(encoder, rows)
    lm = wrap_lm(tiny_bert, hf_tok, device="cpu")
    with pytest.raises(DataError, match=r"rows must be a non-empty \[N, seq_len\] array"):
        mlm_loss(lm, torch.zeros((0, 16), dtype=torch.long))
    with pytest.raises(DataError, match="no token to mask"):
        mlm_loss(lm, torch.full((2, 8), hf_tok.pad_token_id))


def test_read_documents(tmp_path):
    (tmp_path / "a.txt").write_text("First  paragraph\nwraps here.\n\nSecond one.\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"Third, gzipped.\n"))
    assert read_documents(tmp_path) == ["First paragraph wraps here.", "Second one.",
                                        "Third, gzipped."]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no text files \(.*\) in .*empty$"):
        read_documents(tmp_path / "empty")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "x.txt").write_text("\n\n  \n")
    with pytest.raises(DataError, match=r"the corpus is empty: no text in 1 file\(s\)$"):
        read_documents(tmp_path / "blank")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(DataError, match=r"x.txt: not valid UTF-8 \(byte offset 3\)$"):
        read_documents(tmp_path / "bad")
    with pytest.raises(DataError, match="file not found"):
        read_documents(tmp_path / "missing.txt")
