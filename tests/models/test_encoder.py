import pytest
import torch

from hasten.core.errors import ConfigError
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.pretrain.objectives.flops import count_parameters
from hasten.pretrain.objectives.mlm import mlm_loss
from hasten.pretrain.objectives.optim import cramming_adamw
from hasten.text.masking import mask_tokens


def _cfg(vocab, **kw):
    base = dict(vocab_size=vocab, hidden=32, layers=3, heads=4, intermediate=48, max_len=64,
                attention="sdpa")
    return EncoderConfig(**{**base, **kw})


def _batch(vocab, b=4, s=16, rate=0.25, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    ids[:, 0] = 2
    inputs, labels = mask_tokens(ids, rate, [0, 1, 2, 3, 4], 4, vocab, generator=g)
    return {"input_ids": inputs, "labels": labels}


def test_architecture():
    m = CrammedEncoder(_cfg(100))
    assert all(b is None for mod in m.modules() for b in [getattr(mod, "bias", None)])
    assert m.decoder.weight is m.model.embeddings.tok_embeddings.weight
    assert isinstance(m.model.layers[0].attn_norm, torch.nn.Identity)
    assert not any(isinstance(x, torch.nn.Dropout) for x in m.modules())
    assert m.model.layers[1].mlp.Wi.weight.shape == (48, 32)
    assert m.model.layers[1].mlp.Wo.weight.shape == (32, 24)
    assert count_parameters(m) == sum(p.numel() for p in m.parameters())
    with pytest.raises(ConfigError):
        EncoderConfig(vocab_size=10, hidden=30, heads=4)
    with pytest.raises(ConfigError):
        EncoderConfig(vocab_size=3)  # specials outside the vocabulary


def test_matmul_attention_matches_sdpa_and_trains():
    torch.manual_seed(0)
    a = CrammedEncoder(_cfg(100))
    b = CrammedEncoder(_cfg(100, attention="matmul"))
    b.load_state_dict(a.state_dict())
    x = _batch(100)["input_ids"]
    mask = torch.ones_like(x)
    mask[:, -3:] = 0
    with torch.no_grad():
        torch.testing.assert_close(a(x, mask), b(x, mask), atol=1e-5, rtol=0)
    batch = _batch(100, b=8)
    opt = cramming_adamw(a, lr=3e-3)
    first = None
    for _ in range(15):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = mlm_loss(a, batch).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(a.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        first = first or float(loss.detach())
    assert float(loss.detach()) < first
    decay = [g["weight_decay"] for g in opt.param_groups]
    assert decay == [0.01, 0.0] and opt.defaults["eps"] == 1e-12
