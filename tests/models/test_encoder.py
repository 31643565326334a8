import json

import pytest
import torch

from hasten.errors import ConfigError
from hasten.models.encoder import (
    CrammedEncoder,
    EncoderConfig,
    bert_mlm_loss,
    count_parameters,
    cramming_adamw,
    export_hf,
    load_encoder,
    make_mlm_loss,
    mlm_loss,
    original_bert,
)
from hasten.text.corpus import pack, special_ids, train_wordpiece
from hasten.text.masking import IGNORE, mask_tokens, sparse_positions

DOCS = ["The quick brown fox jumps over the lazy dog.",
        "A lazy dog sleeps in the sun; the quick fox runs away.",
        "Brown foxes and lazy dogs are friends in this small story."] * 10


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(DOCS, vocab_size=120)


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


def test_sparse_heads_equal_dense():
    torch.manual_seed(0)
    m = CrammedEncoder(_cfg(100)).eval()
    batch = _batch(100)
    labels = batch["labels"]
    with torch.no_grad():
        dense = m.mlm_logits(batch["input_ids"]).reshape(-1, 100)
        masked = torch.nonzero(labels.reshape(-1) != IGNORE).flatten()
        pos_v, _ = sparse_positions(labels)
        var = m.mlm_logits(batch["input_ids"], pos_v)
        pos_s, tgt_s = sparse_positions(labels, static_count=len(masked) + 5)
        static = m.mlm_logits(batch["input_ids"], pos_s)
    assert torch.equal(pos_v, masked)
    torch.testing.assert_close(var, dense[masked], atol=1e-6, rtol=0)
    torch.testing.assert_close(static[:len(masked)], dense[masked], atol=1e-6, rtol=0)
    assert (tgt_s[len(masked):] == IGNORE).all()
    losses = {s: mlm_loss(m, batch, sparse=s) for s in ("static", "variable", None)}
    for v in losses.values():
        assert v.shape == (4,)
        torch.testing.assert_close(v, losses[None], atol=1e-6, rtol=0)
    token_mean = torch.nn.functional.cross_entropy(dense, labels.reshape(-1))
    torch.testing.assert_close(losses["static"].mean(), token_mean, atol=1e-6, rtol=0)


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


def test_original_bert():
    torch.manual_seed(0)
    bert = original_bert(100, width=32, depth=2, heads=4, intermediate=64, max_len=64)
    assert type(bert).__name__ == "BertForMaskedLM"
    c = bert.config
    assert c.hidden_dropout_prob == 0.1 and c.num_hidden_layers == 2 and c.intermediate_size == 64
    batch = _batch(100, rate=0.15)
    losses = bert_mlm_loss(bert.eval(), batch)
    assert losses.shape == (4,)
    ref = bert(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(losses.mean(), ref, atol=1e-5, rtol=0)


def test_make_mlm_loss_on_raw_rows():
    torch.manual_seed(0)
    rows = torch.randint(5, 100, (6, 16))
    rows[:, 0] = 2
    loss_fn = make_mlm_loss([0, 1, 2, 3, 4], 4, 100, rate=0.25)
    ours = loss_fn(CrammedEncoder(_cfg(100)), (rows,))
    bert = loss_fn(original_bert(100, width=32, depth=1, heads=4, max_len=64).eval(), rows)
    assert ours.shape == bert.shape == (6,)
    assert torch.isfinite(ours).all() and torch.isfinite(bert).all()


def test_mlm_loss_through_ddp_and_compile_wrappers(tmp_path):
    """Under torchrun the trainer hands the loss a DDP-wrapped encoder (no `.logits`); the
    loss and gradients must equal the bare model's."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hasten.distributed import unwrap_model as unwrap

    torch.manual_seed(0)
    bare = CrammedEncoder(_cfg(100))
    twin = CrammedEncoder(_cfg(100))
    twin.load_state_dict(bare.state_dict())
    batch = _batch(100)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        wrapped = DistributedDataParallel(twin)
        assert unwrap(wrapped) is twin
        want, got = mlm_loss(bare, batch), mlm_loss(wrapped, batch)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        want.mean().backward()
        got.mean().backward()
        for (name, p), q in zip(bare.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=0, msg=name)
        loss_fn = make_mlm_loss([0, 1, 2, 3, 4], 4, 100)
        assert loss_fn(wrapped, batch["input_ids"]).shape == (4,)  # the encoder path, not HF's
    finally:
        dist.destroy_process_group()
    compiled = torch.compile(bare)
    assert unwrap(compiled) is bare
