"""GLUE tasks shared by fine-tuning and probes: rank correlation against scipy (ties
included), and `hasten.pretrain.glue` still exposing the same readers and metrics."""

import numpy as np
import pytest

import hasten.pretrain.glue
from hasten.pretrain.lmeval import glue_tasks
from hasten.pretrain.lmeval.glue_tasks import ranks, spearman


def test_spearman_equals_scipy_with_ties():
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=300).astype(float)  # many ties
    y = x + rng.normal(size=300)
    assert ranks(x).tolist() == (rankdata(x) - 1).tolist()
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([3.0, 1.0, 2.0], [30.0, 10.0, 20.0]) == pytest.approx(1.0)
    assert ranks([]).tolist() == []


def test_hasten_glue_exposes_the_shared_names():
    for name in ("TASKS", "accuracy", "f1_binary", "glue_root", "mcc", "parse_tasks",
                 "pearson", "read_task", "score", "spearman"):
        assert getattr(hasten.pretrain.glue, name) is getattr(glue_tasks, name)
