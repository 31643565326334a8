"""Our BERT: post-norm equals HF BertForMaskedLM on the same weights; pre-norm moves only
the layer norms (plus a final one) and trains."""

import pytest
import torch

from hasten.core.errors import ConfigError
from hasten.models.bert import BertEncoder, BertEncoderConfig, from_hf_bert_state, original_bert
from hasten.pretrain.objectives.mlm import bert_mlm_loss, mlm_loss
from hasten.text.masking import mask_tokens


def _batch(vocab=100, b=4, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    inputs, labels = mask_tokens(ids, 0.15, [0, 1, 2, 3, 4], 4, vocab, generator=g)
    return {"input_ids": inputs, "labels": labels}


def _cfg(**kw):
    return BertEncoderConfig(**{**dict(vocab_size=100, hidden=32, layers=2, heads=4,
                                       intermediate=64, max_len=64), **kw})


def test_post_norm_equals_hf_bert():
    torch.manual_seed(0)
    hf = original_bert(100, width=32, depth=2, heads=4, intermediate=64, max_len=64).eval()
    ours = BertEncoder(_cfg()).eval()
    ours.load_state_dict(from_hf_bert_state(hf.state_dict(), 2))
    batch = _batch()
    mask = torch.ones_like(batch["input_ids"])
    mask[:, -4:] = 0
    with torch.no_grad():
        want = hf(input_ids=batch["input_ids"], attention_mask=mask).logits
        got = ours.mlm_logits(batch["input_ids"], attention_mask=mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(mlm_loss(ours, batch, sparse=None), bert_mlm_loss(hf, batch),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(mlm_loss(ours, batch, sparse="static"),
                               bert_mlm_loss(hf, batch), atol=1e-5, rtol=0)


def test_pre_norm_changes_only_the_norm_position():
    torch.manual_seed(0)
    post, pre = BertEncoder(_cfg()), BertEncoder(_cfg(pre_norm=True))
    extra = set(dict(pre.named_parameters())) - set(dict(post.named_parameters()))
    assert extra == {"final_norm.weight", "final_norm.bias"}
    missing, unexpected = pre.load_state_dict(post.state_dict(), strict=False)
    assert set(missing) == {"final_norm.weight", "final_norm.bias"} and not unexpected
    x = _batch()["input_ids"]
    post.eval(), pre.eval()
    with torch.no_grad():
        assert not torch.allclose(post(x), pre(x))
        # by hand: one pre-norm block is x + f(LN(x))
        layer, h = pre.layers[0], pre.embed_norm(pre.word(x) + pre.position.weight[:16]
                                                 + pre.token_type.weight[0])
        a = h + layer.attention(layer.attn_norm(h), None)
        torch.testing.assert_close(layer(h, None), a + layer.ffn(layer.ffn_norm(a)))
    opt = torch.optim.AdamW(pre.parameters(), lr=3e-3)
    pre.train()
    batch = _batch(b=8)
    losses = []
    for _ in range(12):
        loss = mlm_loss(pre, batch, sparse=None).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert pre.decoder.weight is pre.word.weight


def test_bad_config():
    with pytest.raises(ConfigError, match="multiple of heads"):
        _cfg(hidden=30)
    with pytest.raises(ConfigError, match="dropout"):
        _cfg(dropout=1.0)
