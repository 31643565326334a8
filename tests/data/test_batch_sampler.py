import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hasten.core.budget import Budget
from hasten.core.errors import ConfigError, DataError
from hasten.core.sampling import ShuffledSampler
from hasten.data import CompetenceBatchSampler, CompetenceIndexSampler
from hasten.select.curriculum import CompetenceSampler


class Ramp:
    """A progress source that moves 1/n further on each call (the calls are counted)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> float:
        p = self.calls / self.n
        self.calls += 1
        return p


def _ids(n=200):
    return TensorDataset(torch.arange(n))


def test_dataloader_with_two_workers_yields_the_samplers_draws_at_each_progress():
    difficulty = np.arange(200.0)  # example i has difficulty i: easy ids are small
    sampler = CompetenceSampler(difficulty, p=1.0, c0=0.1, T_fraction=0.5, seed=3,
                                rank=0, world_size=1)
    ramp = Ramp(20)
    batches = CompetenceBatchSampler(sampler, 8, ramp)
    loader = DataLoader(_ids(), batch_sampler=batches, num_workers=2)
    got = [b[0].tolist() for b in loader]
    # the progress reached 1 on the 21st call: 20 batches, then the pass ended
    assert len(got) == 20 and ramp.calls == 21
    reference = CompetenceSampler(difficulty, p=1.0, c0=0.1, T_fraction=0.5, seed=3,
                                  rank=0, world_size=1)
    expected = [reference.sample(8, i / 20) for i in range(20)]
    assert got == expected
    # competence follows progress: the first batch comes from the easiest 10% (c0 = 0.1),
    # at progress 0.25 (competence 0.55) nothing past the easiest 55%
    assert max(got[0]) < 20
    assert max(got[5]) < 110
    assert max(max(b) for b in got[10:]) >= 110  # from T on, every example is drawn


def test_a_budget_drives_the_batches_and_ends_the_pass_when_spent():
    budget = Budget("5steps")
    batches = CompetenceBatchSampler(ShuffledSampler(30, seed=1), 4, budget)
    seen = []
    for batch in DataLoader(_ids(30), batch_sampler=batches):
        seen.append(batch[0].tolist())
        budget.work.steps += 1
    reference = ShuffledSampler(30, seed=1)
    assert seen == [reference.sample(4) for _ in range(5)]
    with pytest.raises(TypeError, match="endless CompetenceBatchSampler has no length"):
        len(batches)


def test_fixed_passes_have_a_length_and_keep_position():
    sampler = ShuffledSampler(10, seed=0)
    batches = CompetenceBatchSampler(sampler, 3, lambda: 0.0, batches=2)
    assert len(batches) == 2
    first = list(batches)
    second = list(batches)
    reference = ShuffledSampler(10, seed=0)
    assert first + second == [reference.sample(3) for _ in range(4)]
    state = batches.state_dict()
    assert state == {"epoch": 1, "offset": 2, "seed": 0}
    again = CompetenceBatchSampler(ShuffledSampler(10, seed=0), 3, lambda: 0.0, batches=2)
    again.load_state_dict(state)
    assert list(again) == [reference.sample(3) for _ in range(2)]


def test_index_sampler_feeds_dataloader_batches_equal_to_the_draws():
    sampler = CompetenceIndexSampler(ShuffledSampler(20, seed=2), 6, lambda: 0.0, length=20)
    assert len(sampler) == 20
    loader = DataLoader(_ids(20), sampler=sampler, batch_size=6)
    got = [b[0].tolist() for b in loader]
    reference = ShuffledSampler(20, seed=2)
    draws = [reference.sample(6) for _ in range(4)]
    assert got == [*draws[:3], draws[3][:2]]  # 20 indices: three draws and two of a fourth


def test_index_sampler_refuses_batches_of_another_size():
    lengths = np.array([5] * 10)
    tokens = CompetenceSampler(np.arange(10.0), T=5, lengths=lengths, max_tokens=10,
                               rank=0, world_size=1)
    sampler = CompetenceIndexSampler(tokens, 4, lambda: 0.0, length=8)
    with pytest.raises(DataError, match="returned 2 indices for a batch of 4"):
        list(sampler)


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match=r"^CompetenceBatchSampler: batch_size must be an "
                       r"integer >= 1, got 0 \(int\)$"):
        CompetenceBatchSampler(ShuffledSampler(4), 0, lambda: 0.0)
    with pytest.raises(ConfigError, match=r"^CompetenceBatchSampler: progress must be a Budget "
                       r"or a function returning the progress in \[0, 1\], got 0.5 \(float\)$"):
        CompetenceBatchSampler(ShuffledSampler(4), 2, 0.5)
    with pytest.raises(ConfigError, match=r"sampler must be a hasten sampler, with "
                       r"sample\(n, progress\) -> indices \(e.g. CompetenceSampler\), got a "
                       r"list of 2 item\(s\)$"):
        CompetenceBatchSampler([1, 2], 2, lambda: 0.0)
