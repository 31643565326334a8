import itertools
import warnings

import pytest
import torch

from hasten.models.encoder import EncoderConfig
from hasten.pretrain.objectives.electra import (
    electra_masking,
)
from hasten.pretrain.objectives.electra_monitor import ElectraMonitor, binary_auc

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
