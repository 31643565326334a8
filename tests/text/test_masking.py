import pytest
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.text.masking import IGNORE, mask_tokens, sparse_positions

V, MASK, SPECIALS = 1000, 4, [0, 1, 2, 3, 4]


def _ids(b=256, s=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (b, s), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[:, 50] = 3  # [SEP]
    ids[::7, -10:] = 0  # [PAD]
    return ids


@pytest.mark.parametrize("rate", [0.15, 0.25])
def test_rates_and_80_10_10(rate):
    ids = _ids()
    inputs, labels = mask_tokens(ids, rate, SPECIALS, MASK, V,
                                 generator=torch.Generator().manual_seed(1))
    eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
    picked = labels != IGNORE
    assert not (picked & ~eligible).any()  # specials never predicted
    assert torch.equal(inputs[~picked], ids[~picked])  # others untouched
    assert torch.equal(labels[picked], ids[picked])
    n = int(picked.sum())
    assert abs(n / int(eligible.sum()) - rate) < 0.01  # ~30k eligible: sd ~0.0025
    masked = (inputs == MASK) & picked
    changed = (inputs != ids) & picked & ~masked
    kept = (inputs == ids) & picked
    assert abs(int(masked.sum()) / n - 0.8) < 0.02
    assert abs(int(changed.sum()) / n - 0.1) < 0.02
    # a random replacement can draw the original token (1 in V-5): ~10% + 0.1%/10% kept
    assert abs(int(kept.sum()) / n - 0.1) < 0.02
    assert not torch.isin(inputs[changed], torch.tensor(SPECIALS)).any()


def test_exact_count_per_row_and_rule_variants():
    ids = _ids(b=64)
    _, labels = mask_tokens(ids, 0.25, SPECIALS, MASK, V, exact=True,
                            generator=torch.Generator().manual_seed(2))
    eligible = (~torch.isin(ids, torch.tensor(SPECIALS))).sum(dim=1)
    assert torch.equal((labels != IGNORE).sum(dim=1), torch.round(0.25 * eligible.double()).long())
    inputs, labels = mask_tokens(ids, 0.5, SPECIALS, MASK, V, rule=(1.0, 0.0, 0.0))
    assert (inputs[labels != IGNORE] == MASK).all()
    inputs, labels = mask_tokens(ids, 0.5, SPECIALS, MASK, V, rule=(0.0, 0.0, 1.0))
    assert torch.equal(inputs, ids) and (labels != IGNORE).any()


def test_generator_reproducible():
    ids = _ids(b=8)
    a = mask_tokens(ids, 0.25, SPECIALS, MASK, V, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, 0.25, SPECIALS, MASK, V, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_bad_arguments():
    ids = _ids(b=2)
    with pytest.raises(ConfigError):
        mask_tokens(ids, 1.5, SPECIALS, MASK, V)
    with pytest.raises(ConfigError):
        mask_tokens(ids, 0.2, SPECIALS, MASK, V, rule=(0.5, 0.1, 0.1))
    with pytest.raises(DataError):
        mask_tokens(ids[0], 0.2, SPECIALS, MASK, V)


def test_sparse_positions_variable_and_static():
    labels = torch.full((2, 4), IGNORE)
    labels[0, 1], labels[1, 0], labels[1, 3] = 7, 8, 9
    pos, tgt = sparse_positions(labels)
    assert pos.tolist() == [1, 4, 7] and tgt.tolist() == [7, 8, 9]
    pos, tgt = sparse_positions(labels, static_count=5)  # padded with ignored rows
    assert pos[:3].tolist() == [1, 4, 7] and len(set(pos.tolist())) == 5
    assert tgt.tolist() == [7, 8, 9, IGNORE, IGNORE]
    pos, tgt = sparse_positions(labels, static_count=2)  # truncated
    assert pos.tolist() == [1, 4] and tgt.tolist() == [7, 8]
    with pytest.raises(ConfigError):
        sparse_positions(labels, static_count=9)
