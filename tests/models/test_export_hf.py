"""Export folders: the crammed encoder as a ModernBERT transformers loads, our BERT, and the
dispatcher."""

import json

import pytest
import torch

from hasten.core.errors import CheckpointError, ConfigError
from hasten.models.bert import BertEncoder, BertEncoderConfig, original_bert
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.models.export_hf import (
    export_bert_encoder,
    export_hf,
    export_model,
    load_bert_encoder,
    load_encoder,
)
from hasten.text.pack import pack
from hasten.text.tokenizer import CRAM, special_ids, train_tokenizer

DOCS = ["The quick brown fox jumps over the lazy dog.",
        "A lazy dog sleeps in the sun; the quick fox runs away.",
        "Brown foxes and lazy dogs are friends in this small story."] * 10


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(DOCS, CRAM, vocab_size=120)


def _cfg(vocab, **kw):
    base = dict(vocab_size=vocab, hidden=32, layers=3, heads=4, intermediate=48, max_len=64,
                attention="sdpa")
    return EncoderConfig(**{**base, **kw})


def test_export_round_trip(tmp_path, tok):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    ids = special_ids(tok)
    vocab = tok.get_vocab_size()
    torch.manual_seed(0)
    m = CrammedEncoder(_cfg(vocab, pad_id=ids["pad"], cls_id=ids["cls"], sep_id=ids["sep"],
                            mask_id=ids["mask"])).eval()
    out = export_hf(m, tok, tmp_path / "export")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "modernbert"
    assert set(cfg["layer_types"]) == {"full_attention"}
    assert not cfg.get("auto_map")
    hf = AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "ModernBertForMaskedLM"
    x = torch.from_numpy(pack(DOCS, tok, seq_len=16)[:4].astype("int64"))
    with torch.no_grad():
        ours, theirs = m.mlm_logits(x), hf(input_ids=x).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    back = load_encoder(out)
    with torch.no_grad():
        torch.testing.assert_close(back.eval().mlm_logits(x), ours, atol=0, rtol=0)
    hf_tok = AutoTokenizer.from_pretrained(out)
    text = "The lazy fox"
    assert hf_tok(text)["input_ids"] == tok.encode(text).ids
    assert hf_tok.mask_token_id == ids["mask"] and hf_tok.pad_token_id == ids["pad"]
    assert hf_tok.decode(hf_tok(text)["input_ids"], skip_special_tokens=True) == "the lazy fox"


def test_bert_encoder_export_and_dispatch(tmp_path, tok):
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    torch.manual_seed(0)
    vocab = tok.get_vocab_size()
    m = BertEncoder(BertEncoderConfig(vocab_size=vocab, hidden=32, layers=2, heads=4,
                                      intermediate=64, max_len=64, pre_norm=True)).eval()
    out = export_model(m, tok, tmp_path / "prenorm")
    assert (out / "hasten_bert.json").is_file() and not (out / "config.json").exists()
    back = load_bert_encoder(out).eval()
    x = torch.from_numpy(pack(DOCS, tok, seq_len=16)[:3].astype("int64"))
    with torch.no_grad():
        torch.testing.assert_close(back.mlm_logits(x), m.mlm_logits(x), atol=0, rtol=0)
    assert export_bert_encoder(m, None, tmp_path / "no-tok") == tmp_path / "no-tok"
    hf = original_bert(vocab, width=32, depth=1, heads=4, max_len=64)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(
        export_model(hf, tok, tmp_path / "hf")), BertForMaskedLM)
    crammed = export_model(CrammedEncoder(_cfg(vocab)), tok, tmp_path / "crammed")
    assert json.loads((crammed / "config.json").read_text())["model_type"] == "modernbert"
    with pytest.raises(ConfigError, match="no export for a Linear"):
        export_model(torch.nn.Linear(2, 2), None, tmp_path / "x")
    with pytest.raises(CheckpointError, match="not an exported hasten BERT"):
        load_bert_encoder(tmp_path / "hf")
    with pytest.raises(CheckpointError, match="not an exported hasten encoder"):
        load_encoder(tmp_path / "hf")


@pytest.mark.parametrize("edit", [{}, {"hidden": 64, "heads": 4}])
def test_an_edited_config_that_no_longer_fits_the_weights_is_one_line(tmp_path, tok, edit):
    out = export_hf(CrammedEncoder(_cfg(tok.get_vocab_size())), tok, tmp_path / "export")
    saved = json.loads((out / "hasten_encoder.json").read_text())
    (out / "hasten_encoder.json").write_text(json.dumps({**saved, **edit} if edit else edit))
    with pytest.raises(CheckpointError) as err:
        load_encoder(out)
    text = str(err.value)
    assert text.splitlines() == [text]
    assert text.startswith(f"{out}: weights do not match the config (")
