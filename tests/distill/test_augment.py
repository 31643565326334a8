"""DSA: one shared draw transforms the real and the synthetic batch the same way."""

import pytest
import torch

from hasten.core.errors import ConfigError
from hasten.distill.augment import (
    DSA,
    NO_FLIP_STRATEGY,
    OPS,
    DSADraw,
    apply_draw,
    dsa_strategy,
)
from hasten.distill.base import Context


def _images(n, seed=0):
    return torch.randn(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op", OPS)
def test_shared_draw_is_one_transform_for_both_batches(op):
    dsa = DSA(op)
    real, syn = _images(7, 1), _images(3, 2)
    draw = dsa.draw(None, torch.Generator().manual_seed(5), image_size=(12, 12))
    assert draw.op == op and draw.shared
    # the same draw on identical inputs gives identical outputs
    assert torch.equal(dsa(real, draw), dsa(real.clone(), draw))
    # the same transform whatever batch an image is in: both batches at once == apart
    both = dsa(torch.cat([real, syn]), draw)
    assert torch.allclose(both, torch.cat([dsa(real, draw), dsa(syn, draw)]), atol=1e-6)
    # the copy of a real image in the synthetic batch is transformed exactly like it
    twin = torch.cat([syn, real[:1]])
    assert torch.allclose(dsa(twin, draw)[-1], dsa(real, draw)[0], atol=1e-6)
    # the same seed gives the same draw
    d1 = dsa.draw(seed=3, image_size=(12, 12))
    d2 = dsa.draw(seed=3, image_size=(12, 12))
    assert torch.equal(dsa(real, d1), dsa(real, d2))


def test_context_siamese_augments_real_and_synthetic_alike():
    x = _images(4)
    ctx = Context(class_x=[x], syn=x.clone(), labels=torch.zeros(4, dtype=torch.long), ipc=4,
                  num_classes=1, model_fn=lambda: None, generator=torch.Generator(),
                  device=torch.device("cpu"), dsa=DSA(NO_FLIP_STRATEGY), batch_real=4)
    for _ in range(20):  # every op shows up
        real, syn = ctx.siamese(x, x.clone())
        assert torch.equal(real, syn)


def test_transforms_are_differentiable_and_change_the_image():
    x = _images(2).requires_grad_(True)
    for op in OPS:
        dsa = DSA(op)
        for seed in range(10):
            y = dsa(x, dsa.draw(None, seed=seed, image_size=(12, 12)))
            if not torch.allclose(y, x):
                break
        else:
            raise AssertionError(f"{op} never changed the image")
        (g,) = torch.autograd.grad(y.sum(), x)
        assert g.abs().sum() > 0, op


def test_crop_shifts_by_whole_pixels_and_flip_mirrors():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shift = DSADraw("crop", {"dx": torch.tensor([1]), "dy": torch.tensor([0])})
    out = apply_draw(x, shift)
    assert torch.allclose(out[..., :3], x[..., 1:], atol=1e-5)
    assert torch.allclose(out[..., 3], torch.zeros(1, 1, 4), atol=1e-6)
    flip = DSADraw("flip", {"flip": torch.tensor([True])})
    assert torch.equal(apply_draw(x, flip), x.flip(3))
    cut = DSADraw("cutout", {"cy": torch.tensor([0]), "cx": torch.tensor([0]),
                             "size": torch.tensor([[2, 2]])})
    out = apply_draw(x, cut)  # a 2x2 square centred on (0, 0) zeroes pixel (0, 0) only
    assert out[0, 0, 0, 0] == 0 and torch.equal(out.flatten()[1:], x.flatten()[1:])


def test_per_example_draws_differ_and_strategy_rules():
    dsa = DSA("rotate")
    draw = dsa.draw(5, torch.Generator().manual_seed(0))
    assert draw.params["angle"].shape == (5,) and draw.params["angle"].unique().numel() == 5
    with pytest.raises(ConfigError, match="draw is for 5"):
        apply_draw(_images(3), draw)
    assert "flip" not in dsa_strategy("fashion-mnist") and "flip" not in dsa_strategy("digits")
    assert "flip" in dsa_strategy("cifar10")
    with pytest.raises(ConfigError, match="bad DSA strategy"):
        DSA("color_blur")
    with pytest.raises(ConfigError, match="image batches"):
        DSA()(torch.zeros(3, 10))
    assert isinstance(DSA(single=False).draw(None, image_size=(12, 12)), list)
