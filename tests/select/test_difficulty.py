import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hasten.core.errors import DataError
from hasten.select.curriculum import CompetenceSampler, cdf_ranks
from hasten.select.difficulty import (
    from_array,
    mean_unigram_loglik,
    model_loss,
    sentence_length,
    sentence_rarity,
    unigram_counts,
)

TEXTS = ["a dog runs", "A dog", "a cat sleeps on the mat", "zebra"]


def test_sentence_length_counts_source_words():
    s = sentence_length(TEXTS)
    assert s.values.tolist() == [3, 2, 6, 1]
    assert s.higher_is == "harder" and s.name == "sentence_length"
    assert sentence_length(["a-b c"], tokenize=lambda t: t.replace("-", " ").split()).values[0] == 3


def test_sentence_rarity_is_negative_log_unigram_probability():
    counts = unigram_counts(TEXTS)  # case-insensitive: "A" and "a" are one word
    assert counts["a"] == 3 and counts["dog"] == 2
    total = sum(counts.values())  # 12 words
    s = sentence_rarity(TEXTS)
    expected = -(math.log(3 / total) + math.log(2 / total) + math.log(1 / total))
    assert s.values[0] == pytest.approx(expected)
    assert s.higher_is == "harder"
    # words the counts never saw get eps = 1e-3
    ext = sentence_rarity(["a unicorn"], counts=counts)
    assert ext.values[0] == pytest.approx(-(math.log(3 / total) + math.log(1e-3)))
    assert sentence_rarity([""], counts=counts).values[0] == 0.0


def test_mean_unigram_loglik_is_length_normalised_and_easier_when_higher():
    counts = Counter({"the": 8, "cat": 1, "dog": 1})
    s = mean_unigram_loglik(["the the", "cat dog", "the cat"], counts=counts)
    assert s.higher_is == "easier"
    assert s.values[0] == pytest.approx(math.log(0.8))
    assert s.values[1] == pytest.approx(math.log(0.1))
    # in the curriculum, the frequent-word sentence is the easiest
    assert np.argmin(cdf_ranks(s)) == 0
    # rarity grows with length, the mean does not
    long = " ".join(["the"] * 12)
    assert sentence_rarity([long, "cat"], counts=counts).values[0] > \
        sentence_rarity([long, "cat"], counts=counts).values[1]
    m = mean_unigram_loglik([long, "cat"], counts=counts).values
    assert m[0] > m[1]


def test_model_loss_scores_each_example_and_restores_mode():
    torch.manual_seed(0)
    x = torch.randn(50, 3)
    y = torch.randint(0, 2, (50,))
    model = torch.nn.Linear(3, 2)
    model.train()
    loss_fn = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1], reduction="none")
    s = model_loss(model, TensorDataset(x, y), loss_fn, batch_size=16)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    np.testing.assert_allclose(s.values, expected.numpy(), rtol=1e-5)
    assert s.higher_is == "harder" and model.training
    assert s.work["examples_forwarded"] == 50
    with pytest.raises(DataError):
        model_loss(model, TensorDataset(x, y), lambda m, b: loss_fn(m, b).mean())


def test_user_arrays_and_scores_plug_into_the_sampler():
    s = from_array([5.0, 1.0, 3.0], "custom")
    assert s.higher_is == "harder"
    sampler = CompetenceSampler(sentence_length(TEXTS), p=1, T=10, min_pool=1)
    assert sampler.sample(1, 0.0) == [3]  # "zebra" is the shortest source
    with pytest.raises(DataError):
        sentence_length([])
