"""Matching distances of DC, DM and MTT on hand-checked tensors."""

import math

import pytest
import torch

from hasten.core.errors import ConfigError
from hasten.distill.matching import (
    gradient_distance,
    layer_gradient_distance,
    mean_embedding_distance,
    parameter_distance,
)


def test_dc_layer_distance_two_rows_of_known_cosine():
    real = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    syn = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # cosines 1 and 0
    assert float(layer_gradient_distance(real, syn)) == pytest.approx(1.0, abs=1e-5)
    real = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    syn = torch.tensor([[1.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])  # cosines 1/sqrt2 and -1
    want = (1 - 1 / math.sqrt(2)) + 2.0
    assert float(layer_gradient_distance(real, syn)) == pytest.approx(want, abs=1e-5)


def test_dc_conv_rows_are_output_channels_and_bias_is_ignored():
    real = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    syn = torch.tensor([[1.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])
    conv_r, conv_s = real.view(2, 1, 1, 3), syn.view(2, 1, 1, 3)  # (out, in, kh, kw)
    bias_r, bias_s = torch.tensor([1.0, 2.0]), torch.tensor([-5.0, 0.5])
    total = gradient_distance([conv_r, bias_r, real], [conv_s, bias_s, syn])
    assert float(total) == pytest.approx(2 * ((1 - 1 / math.sqrt(2)) + 2.0), abs=1e-5)
    assert float(layer_gradient_distance(bias_r, bias_s)) == 0.0
    # cosine is scale-free: scaling a row of the synthetic gradient changes nothing
    assert float(layer_gradient_distance(real, 7 * syn)) == pytest.approx(
        float(layer_gradient_distance(real, syn)), abs=1e-5)


def test_dc_distance_is_differentiable_and_checks_shapes():
    syn = torch.tensor([[1.0, 0.5, 0.0]], requires_grad=True)
    gradient_distance([torch.tensor([[0.0, 1.0, 0.0]])], [syn]).backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="shapes differ"):
        layer_gradient_distance(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="real gradients"):
        gradient_distance([torch.zeros(2, 3)], [])


def test_dm_squared_distance_of_mean_embeddings():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    syn = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert float(mean_embedding_distance(real, syn)) == pytest.approx(13.0)
    assert float(mean_embedding_distance(real, torch.tensor([[2.0, 3.0]]))) == 0.0
    with pytest.raises(ConfigError, match="embeddings"):
        mean_embedding_distance(real, torch.zeros(1, 3))


def test_mtt_normalised_parameter_distance():
    start, target = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0])  # expert moved 5
    assert float(parameter_distance(torch.tensor([3.0, 0.0]), start, target)) == \
        pytest.approx(16 / 25)
    assert float(parameter_distance(start, start, target)) == pytest.approx(1.0)
    # lists of tensors are flattened and concatenated
    got = parameter_distance([torch.tensor([[3.0]]), torch.tensor([0.0])],
                             [torch.zeros(1, 1), torch.zeros(1)],
                             [torch.tensor([[3.0]]), torch.tensor([4.0])])
    assert float(got) == pytest.approx(16 / 25)
    with pytest.raises(ConfigError, match="did not move"):
        parameter_distance(start, target, target)
