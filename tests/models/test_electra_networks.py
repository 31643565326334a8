import json

import pytest
import torch

from hasten.core.errors import ConfigError
from hasten.models.electra import ElectraModel, build_electra, generator_config, gumbel_sample
from hasten.models.encoder import EncoderConfig
from hasten.models.export_hf import export_discriminator
from hasten.pretrain.objectives.electra import (
    electra_masking,
    electra_step,
)
from hasten.text.masking import IGNORE

SPECIALS, MASK = [0, 1, 2, 3, 4], 4


def _cfg(vocab=16, **kw):
    base = dict(vocab_size=vocab, hidden=32, layers=2, heads=4, intermediate=64, max_len=64,
                attention="sdpa")
    return EncoderConfig(**{**base, **kw})


def _pattern_rows(n, s=32, seed=0):
    """[CLS] then one of four 4-token cycles at a random phase: a toy corpus with structure."""
    g = torch.Generator().manual_seed(seed)
    pats = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 5], [6, 9, 13, 10]])
    which = torch.randint(0, 4, (n,), generator=g)
    phase = torch.randint(0, 4, (n,), generator=g)
    idx = (torch.arange(s - 1)[None, :] + phase[:, None]) % 4
    return torch.cat([torch.full((n, 1), 2), pats[which][torch.arange(n)[:, None], idx]], 1)


def _masked_batch(vocab=16, b=8, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    ids[:, 0] = 2
    ids[:, -1] = 3
    ids[1, -6:] = 0  # padding
    inputs, labels = electra_masking(ids, SPECIALS, MASK, generator=g)
    return ids, inputs, labels


def test_gumbel_frequencies_match_softmax():
    probs = torch.tensor([0.2, 0.3, 0.5])
    n = 60_000
    logits = probs.log().expand(n, 3).clone().requires_grad_(True)
    draws = gumbel_sample(logits, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.long and not draws.requires_grad
    counts = torch.bincount(draws, minlength=3).double()
    expected = probs.double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 13.8  # df 2, p = 0.001
    # bf16 logits are sampled in fp32; scaling by the temperature changes the distribution
    assert gumbel_sample(logits.bfloat16()).dtype == torch.long
    cold = gumbel_sample(logits.detach(), torch.Generator().manual_seed(1), temperature=0.05)
    assert float((cold == 2).double().mean()) > 0.99


def test_shared_embeddings_are_one_tensor():
    m = build_electra(_cfg(), gen_width_ratio=0.25)
    d_emb = m.discriminator.model.embeddings
    g = m.generator
    assert g.model.embeddings.shared is d_emb
    assert g.model.embeddings.shared.tok_embeddings.weight is d_emb.tok_embeddings.weight
    assert g.model.embeddings.shared.norm.weight is d_emb.norm.weight
    assert g.decoder.weight is d_emb.tok_embeddings.weight
    assert m.discriminator.decoder.weight is d_emb.tok_embeddings.weight
    assert g.config.hidden == 8 and g.config.layers == 2  # 1/4 width, same depth
    assert g.model.embeddings.project.weight.shape == (8, 32)  # H_d -> H_g
    assert g.decoder.weight.shape == (16, 32) and g.head.dense.weight.shape == (32, 8)
    # parameters() lists the shared tensors once
    assert sum(1 for p in m.parameters() if p is d_emb.tok_embeddings.weight) == 1
    # Base: 768 / 12 heads at ratio 1/3 -> 256 wide, 4 heads of 64
    base = generator_config(EncoderConfig(hidden=768, heads=12, layers=12), 1 / 3)
    assert (base.hidden, base.heads, base.intermediate, base.layers) == (256, 4, 1024, 12)
    with pytest.raises(ConfigError):
        ElectraModel(build_electra(_cfg()).generator, build_electra(_cfg()).discriminator)


def test_labels_are_masked_and_sample_differs():
    torch.manual_seed(0)
    m = build_electra(_cfg(vocab=12))
    ids, inputs, labels = _masked_batch(vocab=12, b=32)
    out = electra_step(m, inputs, labels)
    masked = labels != IGNORE
    assert torch.equal(out["original"], ids)
    assert torch.equal(out["disc_input"][~masked], ids[~masked])  # only masked are rewritten
    assert torch.equal(out["replaced"], masked & (out["disc_input"] != ids))
    same = masked & (out["disc_input"] == ids)
    assert same.any() and out["replaced"].any()  # both cases occur in a 12-token vocabulary
    assert torch.equal(out["weights"], ids != 0)  # every non-padding token, specials included


def test_no_gradient_reaches_the_generator_through_sampling():
    torch.manual_seed(0)
    m = build_electra(_cfg())
    _, inputs, labels = _masked_batch()
    out = electra_step(m, inputs, labels)
    out["disc"].sum().backward()
    shared = {id(p) for p in m.discriminator.parameters()}
    gen_only = [(n, p) for n, p in m.generator.named_parameters() if id(p) not in shared]
    assert gen_only
    for name, p in gen_only:
        assert p.grad is None or not p.grad.any(), name
    emb = m.discriminator.model.embeddings.tok_embeddings.weight
    assert emb.grad is not None and emb.grad.any()  # the discriminator trains the shared table
    m.zero_grad(set_to_none=True)
    out = electra_step(m, inputs, labels)
    out["mlm"].sum().backward()
    assert all(p.grad is not None and p.grad.any() for _, p in gen_only)
    assert m.disc_out.weight.grad is None


def test_discriminator_export_loads_in_transformers(tmp_path):
    from transformers import AutoModel, AutoModelForMaskedLM

    from hasten.text.pack import pack
    from hasten.text.tokenizer import CRAM, special_ids, train_tokenizer

    docs = ["The quick brown fox jumps over the lazy dog.",
            "A lazy dog sleeps in the sun; the quick fox runs away."] * 10
    tok = train_tokenizer(docs, CRAM, vocab_size=100)
    ids = special_ids(tok)
    torch.manual_seed(0)
    cfg = _cfg(vocab=tok.get_vocab_size(), pad_id=ids["pad"], cls_id=ids["cls"],
               sep_id=ids["sep"], mask_id=ids["mask"])
    m = build_electra(cfg, gen_width_ratio=1 / 2).eval()
    out = export_discriminator(m, tok, tmp_path / "disc")
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 32
    assert (out / "electra_head.safetensors").exists()
    x = torch.from_numpy(pack(docs, tok, seq_len=16)[:4].astype("int64"))
    hf = AutoModel.from_pretrained(out).eval()
    mlm = AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(mlm).__name__ == "ModernBertForMaskedLM"
    with torch.no_grad():
        ours = m.discriminator(x)
        torch.testing.assert_close(hf(input_ids=x).last_hidden_state, ours, atol=1e-4, rtol=0)
        torch.testing.assert_close(mlm(input_ids=x).logits, m.discriminator.mlm_logits(x),
                                   atol=1e-4, rtol=0)
