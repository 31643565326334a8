
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hasten.core.checkpoint import load_checkpoint, save_checkpoint
from hasten.core.errors import ConfigError
from hasten.core.trainer import TrainConfig, measure_flops, train
from hasten.models.electra import ElectraModel, build_electra
from hasten.models.encoder import EncoderConfig
from hasten.pretrain.objectives.electra import (
    electra_loss,
    electra_masking,
    electra_step,
    make_electra_loss,
)
from hasten.pretrain.objectives.electra_monitor import ElectraMonitor, make_electra_eval
from hasten.pretrain.objectives.flops import electra_flops_per_token
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


def test_cram_objective_plugin(tmp_path):
    from hasten.pretrain.objectives import Objective, Vocab, get_objective
    from hasten.pretrain.objectives.recipes import resolve_recipe

    obj = get_objective("electra")
    assert isinstance(obj, Objective) and obj.name == "electra"
    r = resolve_recipe("crammed", obj.recipe_values, hidden=32, layers=2, heads=4,
                       intermediate=64, max_len=64, seq_len=32, vocab_size=16)
    assert r.mask_rate == 0.15 and r.gen_width_ratio == 0.25  # ELECTRA's own values
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
        obj.build_model(dataclasses.replace(r, arch="bert", sparse=None), vocab)
