"""Loading: hasten exports, HF folders, ELECTRA discriminator exports and encoders without an
MLM head, models in memory, the untrained copy, length batching, and bad input."""

import numpy as np
import pytest
import torch
from lmeval_helpers import crammed, get_hf_tok, get_tiny_bert, get_tiny_export, get_wordpiece

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.loading import (
    describe,
    length_batches,
    load_lm,
    untrained_like,
    wrap_lm,
)
from hasten.pretrain.lmeval.probes import embed


def test_hasten_export_and_hf_bert_folder(tmp_path):
    tiny_export = get_tiny_export()
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    lm = load_lm(tiny_export, device="cpu")
    assert lm.mlm and lm.kind == "masked-lm" and lm.max_len == 64
    assert describe(lm)["class"] == "CrammedEncoder"
    tiny_bert.save_pretrained(tmp_path / "bert")
    hf_tok.save_pretrained(tmp_path / "bert")
    bert = load_lm(tmp_path / "bert", device="cpu")
    assert type(bert.module).__name__ == "BertForMaskedLM" and bert.mlm
    assert type(bert.head).__name__ == "BertOnlyMLMHead"


def test_electra_export_has_no_mlm_head(tmp_path):
    wordpiece = get_wordpiece()
    from hasten.models.electra import build_electra
    from hasten.models.encoder import EncoderConfig
    from hasten.models.export_hf import export_discriminator
    from hasten.text.tokenizer import special_ids

    ids = special_ids(wordpiece)
    cfg = EncoderConfig(vocab_size=wordpiece.get_vocab_size(), hidden=32, layers=1, heads=2,
                        intermediate=64, max_len=64, pad_id=ids["pad"], cls_id=ids["cls"],
                        sep_id=ids["sep"], mask_id=ids["mask"])
    model = build_electra(cfg)
    out = export_discriminator(model, wordpiece, tmp_path / "electra")
    lm = load_lm(out, device="cpu")
    assert not lm.mlm and lm.kind == "encoder" and lm.head is None
    assert embed(lm, ["The dog sleeps."]).shape == (1, 32)  # probes still work
    in_memory = wrap_lm(model, wordpiece, device="cpu")
    assert not in_memory.mlm and in_memory.module is model.discriminator


def test_hf_folder_without_a_head_is_an_encoder(tmp_path):
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    tiny_bert.bert.save_pretrained(tmp_path / "base")  # BertModel: no MLM head weights
    hf_tok.save_pretrained(tmp_path / "base")
    lm = load_lm(tmp_path / "base", device="cpu")
    assert not lm.mlm and lm.kind == "encoder"
    with torch.no_grad():
        want = tiny_bert.bert(input_ids=torch.tensor([hf_tok("a dog")["input_ids"]]))
    np.testing.assert_allclose(embed(lm, ["a dog"])[0],
                               want.last_hidden_state[0].mean(0).numpy(), atol=1e-5)


def test_untrained_copy():
    wordpiece = get_wordpiece()
    model = crammed(wordpiece, seed=5)
    lm = wrap_lm(model, wordpiece, device="cpu")
    state = torch.random.get_rng_state()
    a, b = untrained_like(lm, seed=1), untrained_like(lm, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    pa, pb = dict(a.module.named_parameters()), dict(b.module.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["model.layers.0.attn.Wqkv.weight"],
                           dict(model.named_parameters())["model.layers.0.attn.Wqkv.weight"])
    assert a.tokenizer is lm.tokenizer and a.name.startswith("untrained")


def test_length_batches():
    lengths = [5, 3, 9, 3, 7]
    batches = length_batches(lengths, batch_tokens=10)
    assert [b.tolist() for b in batches] == [[1, 3], [0], [4], [2]]
    rows = length_batches(lengths, batch_tokens=30, rows=[2, 1, 4, 1, 1])
    assert [b.tolist() for b in rows] == [[1, 3, 0], [4], [2]]  # 3 rows x 5 <= 30; 9 x 4 alone
    assert sorted(np.concatenate(rows).tolist()) == list(range(5))


def test_bad_input(tmp_path):
    tiny_bert = get_tiny_bert()
    hf_tok = get_hf_tok()
    with pytest.raises(DataError, match="^model folder not found: .*missing$"):
        load_lm(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no config.json \(not a transformers model"):
        load_lm(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    with pytest.raises(DataError, match="junk: cannot load the"):
        load_lm(tmp_path / "junk")
    with pytest.raises(ConfigError, match="backend must be auto or hf"):
        load_lm(tmp_path, backend="onnx")
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        wrap_lm(tiny_bert, hf_tok, precision="fp16")
    with pytest.raises(ConfigError, match="cannot evaluate a Linear"):
        wrap_lm(torch.nn.Linear(2, 2), hf_tok)
