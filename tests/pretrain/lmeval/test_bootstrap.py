"""Bootstrap intervals: deterministic, covering the statistic, exact on constant input,
paradigm-weighted, resampling seeds, and paired differences."""

import numpy as np
import pytest

from hasten.core.errors import ConfigError, DataError
from hasten.pretrain.lmeval.bootstrap import bootstrap_difference, bootstrap_interval, group_mean


def random_results(seed=0, groups=5, items=40):
    rng = np.random.default_rng(seed)
    return {f"g{k}": (rng.random(items) < 0.3 + 0.1 * k).astype(float) for k in range(groups)}


def test_deterministic_with_a_seed():
    res = random_results()
    a = bootstrap_interval(res, n_boot=500, seed=3)
    assert a == bootstrap_interval(res, n_boot=500, seed=3)
    assert a != bootstrap_interval(res, n_boot=500, seed=4)
    assert a["n_boot"] == 500 and a["level"] == 0.95


def test_covers_the_mean_and_narrows_with_more_items():
    res = random_results(items=40)
    a = bootstrap_interval(res, n_boot=1000)
    assert a["mean"] == pytest.approx(np.mean([v.mean() for v in res.values()]))
    assert a["low"] < a["mean"] < a["high"]
    wide = bootstrap_interval(random_results(items=400), n_boot=1000)
    assert wide["high"] - wide["low"] < a["high"] - a["low"]


def test_exact_on_constant_input():
    ones = {"a": np.ones(30), "b": np.ones(7)}
    assert bootstrap_interval(ones, n_boot=200) == {"mean": 1.0, "low": 1.0, "high": 1.0,
                                                    "level": 0.95, "n_boot": 200}
    mixed = {"a": np.ones(30), "b": np.zeros(10)}  # each group constant: no spread at all
    r = bootstrap_interval(mixed, n_boot=200)
    assert r["mean"] == r["low"] == r["high"] == 0.5


def test_groups_weigh_alike():
    res = {"big": np.ones(90), "small": np.zeros(10)}
    assert group_mean(res) == 0.5  # not 0.9, the mean over items


def test_seeds_are_resampled():
    # each seed's model is constant over items, so only the seed draw can move the mean
    per_seed = np.repeat(np.array([[0.0], [0.5], [1.0]]), 20, axis=1)
    r = bootstrap_interval({"a": per_seed, "b": per_seed}, n_boot=2000, seed=1)
    assert r["mean"] == pytest.approx(0.5)
    assert 0.0 <= r["low"] < 0.5 < r["high"] <= 1.0
    single = bootstrap_interval({"a": per_seed[:1], "b": per_seed[:1]}, n_boot=100)
    assert single["low"] == single["high"] == 0.0


def test_paired_difference():
    res = random_results(groups=3, items=50)
    same = bootstrap_difference(res, res, n_boot=300)
    assert same["mean"] == same["low"] == same["high"] == 0.0  # items shared by both sides
    better = {g: np.maximum(v, (np.arange(len(v)) % 2).astype(float)) for g, v in res.items()}
    d = bootstrap_difference(better, res, n_boot=500)
    assert d["mean"] == pytest.approx(group_mean(better) - group_mean(res))
    assert 0 < d["low"] <= d["mean"] <= d["high"]
    paired = d["high"] - d["low"]
    a, b = bootstrap_interval(better, n_boot=500), bootstrap_interval(res, n_boot=500)
    assert paired < (a["high"] - a["low"]) + (b["high"] - b["low"])


def test_bad_input():
    with pytest.raises(DataError, match="no groups to bootstrap"):
        bootstrap_interval({})
    with pytest.raises(DataError, match="group 'a': expected a non-empty"):
        bootstrap_interval({"a": []})
    with pytest.raises(DataError, match="same number of seeds"):
        bootstrap_interval({"a": np.ones((2, 3)), "b": np.ones((3, 3))})
    with pytest.raises(DataError, match="group 'a': non-finite values"):
        bootstrap_interval({"a": [1.0, float("nan")]})
    with pytest.raises(ConfigError, match="level must be in"):
        bootstrap_interval({"a": [1.0]}, level=1.0)
    with pytest.raises(DataError, match="group 'a': 3 items against 2"):
        bootstrap_difference({"a": np.ones(3)}, {"a": np.ones(2)})
