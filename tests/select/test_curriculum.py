import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.select.curriculum import (
    CompetenceSampler,
    cdf_ranks,
    competence,
    curriculum_length_from_curve,
)
from hasten.select.per_example import Scores

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "p, c0, expected",
    [
        (1, 0.01, [0.01, 0.505, 1.0]),  # c_linear: t(1 - c0)/T + c0
        (2, 0.01, [0.01, (0.5 * (1 - 1e-4) + 1e-4) ** 0.5, 1.0]),  # c_sqrt
        (2, 0.1, [0.1, (0.5 * 0.99 + 0.01) ** 0.5, 1.0]),
    ],
)
def test_competence_at_start_middle_end(p, c0, expected):
    T = 1000
    got = [competence(t, T, p, c0) for t in (0, T / 2, T)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert competence(5 * T, T, p, c0) == 1.0
    assert competence(T, T, p, c0) == 1.0  # exactly 1, so every example is admitted


def test_sqrt_competence_grows_faster_first_and_any_p_works():
    assert competence(100, 1000, 2) > competence(100, 1000, 1)
    values = [competence(t, 1000, 3.5) for t in range(0, 1001, 50)]
    assert values == sorted(values) and values[-1] == 1.0
    with pytest.raises(ConfigError):
        competence(1, 0)
    with pytest.raises(ConfigError):
        competence(1, 10, p=0)


def test_cdf_is_the_empirical_cdf_and_ties_share_the_highest_rank():
    cdf = cdf_ranks([3.0, 1.0, 2.0, 2.0, 5.0])
    np.testing.assert_allclose(cdf, [0.8, 0.2, 0.6, 0.6, 1.0])
    # order of the dataset does not matter, only the values
    perm = np.array([4, 2, 0, 3, 1])
    np.testing.assert_allclose(cdf_ranks(np.array([3.0, 1.0, 2.0, 2.0, 5.0])[perm]), cdf[perm])
    # a Scores with "easier" direction is flipped before ranking
    easy = Scores(np.array([3.0, 1.0, 2.0]), "loglik", "easier")
    np.testing.assert_allclose(cdf_ranks(easy), [1 / 3, 1.0, 2 / 3])
    assert cdf_ranks(np.ones(4)).tolist() == [1.0] * 4
    with pytest.raises(DataError):
        cdf_ranks([])


def test_admitted_set_sizes_follow_competence():
    n = 1000
    s = CompetenceSampler(np.arange(n, dtype=float), p=1, c0=0.01, T=100, min_pool=0)
    assert s.admitted(competence(0, 100, 1)) == 10
    assert s.admitted(competence(50, 100, 1)) == 505
    assert s.admitted(1.0) == n
    # the pool is the easiest examples
    assert sorted(s.pool(0.01).tolist()) == list(range(10))
    sq = CompetenceSampler(np.arange(n, dtype=float), p=2, c0=0.01, T=100, min_pool=0)
    assert sq.admitted(competence(50, 100, 2)) == int(n * (0.5 * (1 - 1e-4) + 1e-4) ** 0.5)


def test_ties_are_admitted_together_and_pool_is_topped_up():
    d = np.array([1.0] * 30 + [2.0] * 70)  # 30% of examples share the easiest value
    s = CompetenceSampler(d, p=1, c0=0.01, T=10, min_pool=0)
    assert s.admitted(0.29) == 0 and s.admitted(0.3) == 30 and s.admitted(0.31) == 30
    # at c0 the paper's pool is empty; the sampler tops it up to one global batch
    idx = CompetenceSampler(d, p=1, c0=0.01, T=10).sample(8, 0.0)
    assert len(set(idx)) == 8 and all(i < 30 for i in idx)


def test_batches_come_from_the_admitted_pool_only():
    n = 2000
    d = np.random.default_rng(0).normal(size=n)
    s = CompetenceSampler(d, p=2, c0=0.01, T=50, seed=3)
    cdf = cdf_ranks(d)
    for step in range(60):
        c = competence(step, 50, 2)
        idx = s.sample(16)
        assert len(set(idx)) == 16
        allowed = max(s.admitted(c), 16)
        assert np.all(np.isin(idx, s.order[:allowed]))
        if s.admitted(c) >= 16:
            assert np.all(cdf[idx] <= c + 1e-12)
    # after T, the whole dataset is eligible and sampling is uniform
    seen = np.concatenate([s.sample(64) for _ in range(600)])
    counts = np.bincount(seen, minlength=n)
    assert counts.min() > 0 and counts.max() < 4 * counts.mean()


def test_t_fraction_uses_budget_progress_and_never_goes_back():
    s = CompetenceSampler(np.arange(100.0), p=1, c0=0.01, T_fraction=0.5, min_pool=1)
    s.sample(1, 0.25)
    assert s.last_competence == pytest.approx(competence(0.25, 0.5, 1))
    s.sample(1, 0.1)  # an out-of-order progress value never shrinks the pool
    assert s.last_competence == pytest.approx(competence(0.25, 0.5, 1))
    s.sample(1, 0.5)
    assert s.last_competence == 1.0
    with pytest.raises(ConfigError):
        CompetenceSampler(np.arange(10.0), T=10, T_fraction=0.5)
    with pytest.raises(ConfigError):
        CompetenceSampler(np.arange(10.0))


def test_curriculum_length_is_where_the_baseline_first_reaches_90_percent_of_its_best():
    curve = [(100, 2.0), (200, 17.0), (300, 26.0), (400, 27.0), (500, 30.0), (600, 29.5)]
    assert curriculum_length_from_curve(curve) == 400.0          # 27 >= 0.9 * 30, 26 is not
    assert curriculum_length_from_curve(curve, fraction=1.0) == 500.0
    assert curriculum_length_from_curve(curve, fraction=0.5) == 200.0
    assert curriculum_length_from_curve(list(reversed(curve))) == 400.0   # order does not matter
    # in progress units it is a T_fraction the sampler takes as is
    frac = curriculum_length_from_curve([(x / 600, m) for x, m in curve])
    assert frac == pytest.approx(400 / 600)
    s = CompetenceSampler(np.arange(10.0), p=1, c0=0.1, T_fraction=frac, min_pool=1)
    assert s.competence_at(0, progress=frac) == 1.0


@pytest.mark.parametrize("curve, fraction, message", [
    ([], 0.9, "the baseline curve is empty"),
    ([(1, 0.0), (2, 0.0)], 0.9, "never rises above 0"),
    ([(0, 5.0), (1, 4.0)], 0.9, "reached the fraction at x = 0"),
    ([(1, 5.0)], 1.5, "fraction must be in (0, 1], got 1.5"),
])
def test_curriculum_length_rejects_curves_that_give_no_length(curve, fraction, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        curriculum_length_from_curve(curve, fraction)


def test_resume_restores_the_exact_sampling_sequence():
    d = np.random.default_rng(1).random(500)
    a = CompetenceSampler(d, p=2, T=40, seed=7)
    for _ in range(13):
        a.sample(32)
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON/checkpoint round trip
    rest = [a.sample(32) for _ in range(40)]
    b = CompetenceSampler(d, p=2, T=40, seed=7)
    b.load_state_dict(state)
    assert [b.sample(32) for _ in range(40)] == rest
    with pytest.raises(DataError):
        CompetenceSampler(d[:10], p=2, T=40, seed=7).load_state_dict(state)


def test_ranks_split_one_global_batch_in_process():
    d = np.random.default_rng(2).random(300)
    ranks = [CompetenceSampler(d, p=1, T=20, seed=5, rank=r, world_size=3) for r in range(3)]
    single = CompetenceSampler(d, p=1, T=20, seed=5, rank=0, world_size=1, min_pool=24)
    for _ in range(25):
        parts = [s.sample(8) for s in ranks]
        flat = [i for part in parts for i in part]
        assert len(set(flat)) == 24
        assert flat == single.sample(24)  # N ranks x n == one process x N*n


def test_token_budget_batches_respect_the_budget_and_stay_disjoint():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 60, size=400)
    d = lengths.astype(float)
    samplers = [CompetenceSampler(d, p=2, T=30, seed=1, rank=r, world_size=2,
                                  lengths=lengths, max_tokens=256) for r in range(2)]
    sizes = []
    for _ in range(40):
        b0, b1 = (s.sample(64) for s in samplers)
        assert not set(b0) & set(b1)
        for b in (b0, b1):
            assert 1 <= len(b) <= 64
            assert len(b) * lengths[b].max() <= 256 or len(b) == 1
        sizes.append(len(b0))
    # short sentences early (many per batch), long ones later (few per batch)
    assert np.mean(sizes[:5]) > 2 * np.mean(sizes[-5:])
    with pytest.raises(ConfigError):
        CompetenceSampler(d, T=10, max_tokens=100)


def test_works_as_the_trainer_sampler():
    from torch.utils.data import TensorDataset

    from hasten.core.trainer import TrainConfig, train

    x = torch.randn(64, 4)
    y = (x.sum(1) > 0).long()
    data = TensorDataset(x, y)
    model = torch.nn.Linear(4, 2)
    seen = []

    class Record(CompetenceSampler):
        def sample(self, n, progress=0.0):
            out = super().sample(n, progress)
            seen.append(out)
            return out

    sampler = Record(x[:, 0].abs().numpy(), p=1, c0=0.1, T=10, seed=0, min_pool=8)
    cfg = TrainConfig(budget="20steps", micro_batch=8, quiet=True, tensorboard=False,
                      device="cpu")
    loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1], reduction="none")
    result = train(model, data, loss, cfg, sampler=sampler)
    assert result.steps == 20 and len(seen) == 20
    easiest = set(sampler.order[:8].tolist())
    assert set(seen[0]) == easiest  # the first batch is the 10% easiest examples


# -- DDP: two processes under torchrun (gloo) ---------------------------------------------


def _worker(out_dir: str) -> None:
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    d = np.random.default_rng(0).random(1000)
    s = CompetenceSampler(d, p=2, c0=0.01, T_fraction=0.5, seed=11)  # rank from the group
    batches = []
    for step in range(30):
        # progress differs slightly between ranks, as with a wall-clock budget
        batches.append(s.sample(16, step / 40 + rank * 1e-4))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
        {"rank": s.rank, "world": s.world_size, "batches": batches,
         "pools": [int(s.admitted(s.last_competence))]}))
    torch.distributed.destroy_process_group()


def test_ddp_ranks_draw_disjoint_indices_from_the_same_pool(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", __file__, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    d = np.random.default_rng(0).random(1000)
    single = CompetenceSampler(d, p=2, c0=0.01, T_fraction=0.5, seed=11, rank=0,
                               world_size=1, min_pool=32)
    for step, (b0, b1) in enumerate(zip(r0["batches"], r1["batches"], strict=True)):
        assert len(b0) == len(b1) == 16
        assert not set(b0) & set(b1)
        # together they are exactly the one-process global batch at the max progress
        assert b0 + b1 == single.sample(32, step / 40 + 1e-4)


if __name__ == "__main__":
    _worker(sys.argv[1])
