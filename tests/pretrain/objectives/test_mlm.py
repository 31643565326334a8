"""The MLM losses: sparse heads equal the dense one, HF BERT's loss equals its own, raw rows,
and DDP / compile wrappers."""

import torch

from hasten.models.bert import original_bert
from hasten.models.encoder import CrammedEncoder, EncoderConfig
from hasten.pretrain.objectives.mlm import bert_mlm_loss, make_mlm_loss, mlm_loss
from hasten.text.masking import IGNORE, mask_tokens, sparse_positions


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

    from hasten.core.distributed import unwrap_model as unwrap

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
