"""Tests for hasten.models.vision: shapes, parameter counts, per-example independence."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hasten.core.errors import ConfigError
from hasten.models.vision import CNN1D, MLP, MODELS, ConvNet3, build_model

# the input shapes the loaders in hasten.data.vision produce (checked in tests/data)
DIGITS, MNIST1D, FASHION = (1, 8, 8), (1, 40), (1, 28, 28)


def spec(input_shape: tuple[int, ...], num_classes: int = 10) -> SimpleNamespace:
    """A stand-in for VisionData: build_model only reads input_shape and num_classes."""
    return SimpleNamespace(input_shape=input_shape, num_classes=num_classes)


CASES = [
    ("mlp", DIGITS, {}),
    ("mlp", MNIST1D, {"hidden": (32,)}),
    ("mlp", FASHION, {"hidden": ()}),
    ("cnn1d", MNIST1D, {}),
    ("cnn1d", (3, 17), {"channels": 8}),
    ("convnet3", DIGITS, {"width": 16}),
    ("convnet3", DIGITS, {"width": 16, "depth": 1}),
    ("convnet3", FASHION, {}),
    ("convnet3", (3, 32, 32), {"width": 8, "depth": 4}),
]


@pytest.mark.parametrize("name,shape,kw", CASES)
def test_output_shape(name, shape, kw):
    torch.manual_seed(0)
    model = build_model(name, spec(shape, num_classes=7), **kw)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,shape,kw", CASES)
def test_no_batch_coupling_layers(name, shape, kw):
    model = build_model(name, spec(shape), **kw)
    banned = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    assert not any(isinstance(m, banned) for m in model.modules())


@pytest.mark.parametrize("name,shape,kw", CASES)
def test_per_example_independence(name, shape, kw):
    """Example i's logits do not depend on the rest of the batch (no cross-example statistics)."""
    torch.manual_seed(0)
    model = build_model(name, spec(shape), **kw)
    x = torch.randn(6, *shape)
    batch = model(x)
    for i in range(len(x)):
        torch.testing.assert_close(model(x[i:i + 1])[0], batch[i], rtol=1e-5, atol=1e-5)
    y = x.clone()
    y[1:] = 100 * torch.randn_like(y[1:]) + 7  # wildly different neighbours
    torch.testing.assert_close(model(y)[0], batch[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c,h,w,width,depth,classes", [
    (1, 28, 28, 128, 3, 10),
    (1, 8, 8, 16, 3, 10),
    (3, 32, 32, 64, 2, 100),
    (1, 30, 30, 8, 3, 5),  # odd sizes: pooling floors 30 -> 15 -> 7 -> 3
])
def test_convnet3_parameter_count(c, h, w, width, depth, classes):
    model = ConvNet3((c, h, w), classes, width=width, depth=depth)
    conv = c * 9 * width + (depth - 1) * width * 9 * width  # weights, no biases
    norm = depth * 2 * width  # GroupNorm affine weight + bias
    for _ in range(depth):
        h, w = h // 2, w // 2
    head = (width * h * w + 1) * classes
    assert sum(p.numel() for p in model.parameters()) == conv + norm + head


def test_convnet3_default_is_the_standard_network():
    model = ConvNet3()
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 3 and all(n.num_groups == n.num_channels == 128 for n in norms)
    assert all(n.affine for n in norms)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 3
    assert model.head.in_features == 128 * 3 * 3


def test_all_parameters_get_gradients():
    torch.manual_seed(0)
    for name, shape, kw in CASES:
        model = build_model(name, spec(shape), **kw)
        model(torch.randn(4, *shape)).logsumexp(1).sum().backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname}"


def test_direct_constructors():
    assert MLP(DIGITS, 10)(torch.randn(2, *DIGITS)).shape == (2, 10)
    assert CNN1D()(torch.randn(2, *MNIST1D)).shape == (2, 10)
    assert ConvNet3()(torch.randn(2, *FASHION)).shape == (2, 10)


def test_build_model_errors():
    assert set(MODELS) == {"mlp", "cnn1d", "convnet3"}
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*cnn1d, convnet3, mlp"):
        build_model("resnet", spec(FASHION))
    with pytest.raises(ConfigError, match="no option.*depth"):
        build_model("mlp", spec(FASHION), depth=3)
    with pytest.raises(ConfigError, match="cnn1d"):
        build_model("cnn1d", spec(FASHION))
    with pytest.raises(ConfigError, match="convnet3"):
        build_model("convnet3", spec(MNIST1D))
    with pytest.raises(ConfigError, match="depth=4"):
        build_model("convnet3", spec(DIGITS), depth=4)  # 8 -> 4 -> 2 -> 1 -> 0
