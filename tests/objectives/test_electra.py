import itertools
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hasten.checkpoint import load_checkpoint, save_checkpoint
from hasten.errors import ConfigError
from hasten.models.electra import ElectraModel, build_electra, generator_config, gumbel_sample
from hasten.models.encoder import EncoderConfig
from hasten.models.export_hf import export_discriminator
from hasten.objectives.electra import (
    electra_loss,
    electra_masking,
    electra_step,
    make_electra_loss,
)
from hasten.objectives.electra_monitor import ElectraMonitor, binary_auc, make_electra_eval
from hasten.objectives.flops import electra_flops_per_token
from hasten.text.masking import IGNORE
from hasten.trainer import TrainConfig, measure_flops, train

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


def test_masking_proportions():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (256, 128), generator=g)
    ids[:, 0], ids[:, 50] = 2, 3
    ids[::7, -10:] = 0
    inputs, labels = electra_masking(ids, SPECIALS, MASK, generator=g)
    eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
    picked = labels != IGNORE
    assert not (picked & ~eligible).any()  # specials never masked
    assert torch.equal(picked.sum(dim=1), torch.round(0.15 * eligible.sum(dim=1).double()).long())
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(inputs[~picked], ids[~picked])
    n = int(picked.sum())
    as_mask = int((inputs[picked] == MASK).sum())
    unchanged = int((inputs[picked] == ids[picked]).sum())
    assert as_mask + unchanged == n  # no random tokens
    assert abs(as_mask / n - 0.85) < 0.015  # n ~ 4.6k: sd ~0.005
    # independent draws (exact=False): ~15% of the eligible positions
    _, labels = electra_masking(ids, SPECIALS, MASK, generator=g, exact=False)
    assert abs(int((labels != IGNORE).sum()) / int(eligible.sum()) - 0.15) < 0.01
    with pytest.raises(ConfigError):
        electra_masking(ids, SPECIALS, MASK, rate=1.5)


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


def test_loss_is_mlm_plus_50_disc():
    torch.manual_seed(0)
    m = build_electra(_cfg())
    ids, inputs, labels = _masked_batch()
    batch = {"input_ids": inputs, "labels": labels}
    torch.manual_seed(1)
    loss = electra_loss(m, batch)
    torch.manual_seed(1)
    out = electra_step(m, inputs, labels)
    assert loss.shape == (8,)
    torch.testing.assert_close(loss, out["mlm"] + 50.0 * out["disc"], atol=0, rtol=0)
    # the components are the token means of the batch
    masked = labels != IGNORE
    logits = m.generator.logits(m.generator(inputs))[masked]
    mlm_ref = F.cross_entropy(logits.float(), labels[masked])
    w = out["weights"]
    disc_ref = F.binary_cross_entropy_with_logits(out["disc_logits"][w],
                                                  out["replaced"][w].float())
    torch.testing.assert_close(out["mlm"].mean(), mlm_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["disc"].mean(), disc_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(loss.mean(), mlm_ref + 50 * disc_ref, atol=1e-4, rtol=0)
    torch.manual_seed(1)
    torch.testing.assert_close(electra_loss(m, batch, disc_weight=0.0), out["mlm"])
    # sparse "static", "variable" and dense heads give the same MLM loss (the samples
    # differ: the noise is drawn per head row)
    for sparse in ("variable", None):
        torch.testing.assert_close(electra_loss(m, batch, 0.0, sparse=sparse), out["mlm"],
                                   atol=1e-5, rtol=1e-5)


def test_auc_known_cases_and_ties():
    assert binary_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    # ties count one half: pairs (0.5, 0.5) 0.5, (0.5, 0.2) 1, (0.9, *) 1 + 1 -> 3.5 / 4
    assert binary_auc(torch.tensor([0.5, 0.5, 0.2, 0.9]), torch.tensor([1, 0, 0, 1])) == 0.875
    assert binary_auc(torch.ones(4), torch.tensor([1, 0, 1, 0])) == 0.5
    assert binary_auc(torch.tensor([0.3, 0.1]), torch.tensor([1, 1])) != binary_auc(
        torch.tensor([0.3, 0.1]), torch.tensor([1, 1]))  # NaN with one class
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 5, (60,), generator=g).float()
    y = torch.rand(60, generator=g) < 0.3
    pos, neg = s[y], s[~y]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0
                for a, b in itertools.product(pos.tolist(), neg.tolist()))
    assert abs(binary_auc(s, y) - brute / (len(pos) * len(neg))) < 1e-12


def test_monitor_metrics_and_warnings():
    mon = ElectraMonitor(patience=2, scores_per_update=None)
    logits = torch.tensor([[-2.0, 1.0, -1.0, 3.0, 0.5, -3.0]])
    replaced = torch.tensor([[False, True, False, True, False, False]])
    weights = torch.tensor([[True, True, True, True, True, False]])
    mon.add(logits, replaced, weights, masked=4, gen_correct=1, gen_count=4)
    m = mon.compute()
    assert m["disc_auc"] == 1.0 and m["disc_recall"] == 1.0
    assert m["disc_precision"] == 2 / 3 and m["replaced_fraction"] == 2 / 5
    assert m["replaced_of_masked"] == 0.5 and m["gen_accuracy"] == 0.25
    assert m["disc_accuracy"] == 4 / 5 and m["disc_positive_rate"] == 3 / 5
    strong = {"replaced_fraction": 0.001, "disc_recall": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mon.check(strong) == []  # one evaluation is not a streak
    with pytest.warns(RuntimeWarning, match="generator is too strong"):
        mon.check(strong)
    collapsed = {"replaced_fraction": 0.06, "disc_recall": 0.0, "disc_auc": 0.5}
    mon.check(collapsed)
    with pytest.warns(RuntimeWarning, match="all original"):
        mon.check(collapsed)
    assert mon.streaks == {"generator_too_strong": 0, "discriminator_collapsed": 2}
    assert mon.state_dict()["streaks"]["discriminator_collapsed"] == 2


def test_flops_match_the_counter():
    torch.manual_seed(0)
    cfg = _cfg(vocab=64, hidden=64, heads=4, intermediate=128, attention="matmul")
    m = build_electra(cfg)
    rows = torch.randint(5, 64, (4, 40))
    rows[:, 0] = 2
    loss_fn = make_electra_loss(SPECIALS, MASK, sparse="variable")
    _, measured = measure_flops(m, loss_fn, rows)
    _, labels = electra_masking(rows, SPECIALS, MASK, generator=torch.Generator().manual_seed(0))
    rate = float((labels != IGNORE).double().mean())
    analytic = electra_flops_per_token(cfg, m.generator.config, 40, rate) * 40
    assert abs(measured / analytic - 1) < 0.03, (measured, analytic)
    fwd = electra_flops_per_token(cfg, m.generator.config, 40, forward_only=True)
    assert fwd * 3 == electra_flops_per_token(cfg, m.generator.config, 40)


def test_training_lowers_discriminator_loss(tmp_path):
    torch.manual_seed(0)
    m = build_electra(_cfg())
    evaluate = make_electra_eval(_pattern_rows(64, seed=1), SPECIALS, MASK)
    before = evaluate(m)
    mon = ElectraMonitor()
    result = train(m, TensorDataset(_pattern_rows(512)), make_electra_loss(SPECIALS, MASK),
                   TrainConfig(budget="100steps", lr=2e-3, micro_batch=16, schedule="constant",
                               metric="disc_auc", eval_every=0.5, quiet=True,
                               tensorboard=False, out_dir=str(tmp_path / "run"),
                               checkpoint_every=100),
                   evaluate=evaluate, hooks=[mon])
    after = result.metrics
    assert after["disc_loss"] < 0.5 * before["disc_loss"], (before, after)
    assert after["disc_auc"] > 0.75 > before["disc_auc"]
    assert after["mlm_loss"] < before["mlm_loss"]
    assert result.work["flops"] > 0
    # the shared tensors survive a checkpoint round trip
    fresh = build_electra(_cfg())
    load_checkpoint(tmp_path / "run" / "checkpoints" / "step-000000100", fresh)
    assert fresh.generator.decoder.weight is fresh.discriminator.model.embeddings \
        .tok_embeddings.weight
    torch.testing.assert_close(fresh.generator.decoder.weight, m.generator.decoder.weight)
    save_checkpoint(tmp_path / "again", 1, fresh, {})


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


def test_cram_objective_plugin(tmp_path):
    from hasten.objectives import Objective, Vocab, get_objective
    from hasten.objectives.recipes import resolve_recipe

    obj = get_objective("electra")
    assert isinstance(obj, Objective) and obj.name == "electra"
    r = resolve_recipe("crammed", obj.defaults, hidden=32, layers=2, heads=4, intermediate=64,
                       max_len=64, seq_len=32, vocab_size=16, mask_rate=0.15)
    vocab = Vocab(size=16, pad=0, unk=1, cls=2, sep=3, mask=4)
    torch.manual_seed(0)
    model = obj.build_model(r, vocab)
    assert isinstance(model, ElectraModel) and model.generator.config.hidden == 8
    rows = _pattern_rows(8)
    model.eval()
    with torch.no_grad():  # a fixed seed gives the same held-out loss every time
        a = obj.make_loss(r, vocab, 1234)(model, (rows,))
        b = obj.make_loss(r, vocab, 1234)(model, (rows,))
    assert a.shape == (8,) and torch.equal(a, b)
    metrics = obj.make_eval(r, vocab, rows)(model)
    assert {"disc_auc", "replaced_fraction", "gen_accuracy", "electra_loss"} <= set(metrics)
    assert isinstance(obj.hooks(r)[0], ElectraMonitor)
    with pytest.raises(ConfigError):
        obj.build_model({**r, "arch": "bert"}, vocab)
