"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

Dataset distillation matches a real and a synthetic batch (gradients, embeddings). DSA
augments both with *one shared random draw*, so the match is between like and like, and every
transform is differentiable with respect to the pixels, so the synthetic images learn through
it. The transforms and their strengths follow the paper's code: colour (brightness 1.0,
saturation 2.0, contrast 0.5), crop (translation by up to 12.5% with zero padding), cutout
(a square half the image side), flip, scale (1/1.2..1.2) and rotate (+-15 degrees). In the
default "single" mode each draw picks one of the listed transforms, as the DSA code does.

A draw is an explicit object (`DSADraw`): take one with `DSA.draw(...)` (shared by the whole
batch when `batch` is None, one per example otherwise) and apply it to as many batches as
needed. Evaluation and MTT's student steps use per-example draws instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hasten.core.errors import ConfigError

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
NO_FLIP_STRATEGY = "color_crop_cutout_scale_rotate"


def dsa_strategy(dataset: str) -> str:
    """The DSA strategy for a dataset: no flip for digit-like data (MNIST family, digits),
    where a mirrored glyph is another glyph, as the DSA code drops flip for MNIST sets."""
    name = dataset.lower()
    if "mnist" in name or "digits" in name:
        return NO_FLIP_STRATEGY
    return DEFAULT_STRATEGY


@dataclass
class DSADraw:
    """One random draw: the transform `op` and its parameters.

    Every parameter tensor has a leading batch dimension of 1 (one draw shared by any batch)
    or n (one draw per example of an n-example batch).
    """

    op: str
    params: dict[str, torch.Tensor]

    @property
    def shared(self) -> bool:
        return all(v.shape[0] == 1 for v in self.params.values())


class DSA:
    """The DSA transform family with the paper's strengths; `draw` samples, `apply` applies."""

    def __init__(self, strategy: str = DEFAULT_STRATEGY, *, single: bool = True,
                 brightness: float = 1.0, saturation: float = 2.0, contrast: float = 0.5,
                 crop: float = 0.125, cutout: float = 0.5, flip: float = 0.5,
                 scale: float = 1.2, rotate: float = 15.0) -> None:
        ops = [p for p in strategy.split("_") if p]
        bad = [p for p in ops if p not in OPS]
        if not ops or bad:
            raise ConfigError(f"bad DSA strategy {strategy!r}: use '_'-joined names from "
                              f"{', '.join(OPS)}")
        if scale < 1.0 or not 0.0 <= crop < 0.5 or not 0.0 <= cutout <= 1.0:
            raise ConfigError("DSA needs scale >= 1, crop in [0, 0.5) and cutout in [0, 1]")
        self.strategy, self.ops, self.single = strategy, ops, single
        self.brightness, self.saturation, self.contrast = brightness, saturation, contrast
        self.crop, self.cutout, self.flip = crop, cutout, flip
        self.scale, self.rotate = scale, rotate

    def __repr__(self) -> str:
        return f"DSA({self.strategy!r}, single={self.single})"

    # -- sampling ------------------------------------------------------------------------

    def draw(self, batch: int | None = None, generator: torch.Generator | None = None,
             *, seed: int | None = None, image_size: tuple[int, int] | None = None
             ) -> DSADraw | list[DSADraw]:
        """Sample a draw: shared by all examples if `batch` is None, else one per example.

        `seed` makes a fresh generator (the DSA code's `seed` argument). In "single" mode
        one draw is returned; with `single=False` a list, one draw per transform, applied in
        order. `image_size` (H, W) is needed only for crop and cutout.
        """
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        if self.single:
            k = int(torch.randint(len(self.ops), (1,), generator=generator))
            return self._draw_op(self.ops[k], batch, generator, image_size)
        return [self._draw_op(op, batch, generator, image_size) for op in self.ops]

    def _draw_op(self, op: str, batch: int | None, g: torch.Generator | None,
                 image_size: tuple[int, int] | None) -> DSADraw:
        n = 1 if batch is None else int(batch)

        def u() -> torch.Tensor:
            return torch.rand(n, generator=g)

        if op == "color":
            params = {"brightness": (u() - 0.5) * self.brightness,
                      "saturation": u() * self.saturation,
                      "contrast": u() + self.contrast}
        elif op == "flip":
            params = {"flip": u() < self.flip}
        elif op == "scale":
            lo = 1.0 / self.scale
            params = {"sx": u() * (self.scale - lo) + lo, "sy": u() * (self.scale - lo) + lo}
        elif op == "rotate":
            params = {"angle": (u() - 0.5) * 2 * self.rotate / 180 * math.pi}
        elif op in ("crop", "cutout"):
            if image_size is None:
                raise ConfigError(f"DSA {op} needs image_size=(H, W) to draw")
            h, w = image_size
            if op == "crop":  # integer shifts in [-s, s], s = ratio * side, rounded
                sh, sw = int(h * self.crop + 0.5), int(w * self.crop + 0.5)
                params = {"dy": torch.randint(-sh, sh + 1, (n,), generator=g),
                          "dx": torch.randint(-sw, sw + 1, (n,), generator=g)}
            else:  # the square's centre anywhere in the image (it may stick out)
                ch, cw = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
                params = {"cy": torch.randint(0, h + (1 - ch % 2), (n,), generator=g),
                          "cx": torch.randint(0, w + (1 - cw % 2), (n,), generator=g),
                          "size": torch.tensor([[ch, cw]]).expand(n, 2).clone()}
        else:  # pragma: no cover - guarded in __init__
            raise ConfigError(f"unknown DSA op {op!r}")
        return DSADraw(op, params)

    # -- applying ------------------------------------------------------------------------

    def __call__(self, x: torch.Tensor, draw: DSADraw | list[DSADraw] | None = None, *,
                 generator: torch.Generator | None = None, seed: int | None = None
                 ) -> torch.Tensor:
        """Augment images x (B, C, H, W) with `draw`, or with a fresh per-example draw."""
        if x.dim() != 4:
            raise ConfigError(f"DSA needs image batches (B, C, H, W), got shape "
                              f"{tuple(x.shape)}")
        if draw is None:
            draw = self.draw(x.shape[0], generator, seed=seed, image_size=x.shape[-2:])
        return apply_draw(x, draw)


def _col(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (n,) parameter as an (n, 1, 1, 1) tensor on x's device and dtype."""
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    theta = theta.to(device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, align_corners=align_corners)


def apply_draw(x: torch.Tensor, draw: DSADraw | list[DSADraw]) -> torch.Tensor:
    """Apply a draw (or a list of draws, in order) to images x; differentiable in x.

    A shared draw (batch dimension 1) applies the same transform to every example, so two
    batches given the same shared draw are transformed identically.
    """
    if isinstance(draw, list):
        for d in draw:
            x = apply_draw(x, d)
        return x
    p = draw.params
    n = next(iter(p.values())).shape[0]
    if n not in (1, x.shape[0]):
        raise ConfigError(f"DSA draw is for {n} examples but the batch has {x.shape[0]}")
    if draw.op == "color":
        x = x + _col(p["brightness"], x)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * _col(p["saturation"], x) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * _col(p["contrast"], x) + mean
    if draw.op == "flip":
        return torch.where(p["flip"].to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
    if draw.op == "scale":
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = p["sx"], p["sy"]
        return _affine(x, theta, align_corners=True)
    if draw.op == "rotate":
        a = p["angle"]
        theta = torch.stack([torch.stack([a.cos(), a.sin(), torch.zeros_like(a)], -1),
                             torch.stack([-a.sin(), a.cos(), torch.zeros_like(a)], -1)], 1)
        return _affine(x, theta, align_corners=True)
    h, w = x.shape[-2:]
    if draw.op == "crop":  # output(i, j) = input(i + dy, j + dx), zero outside
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = 2.0 * p["dx"].float() / w
        theta[:, 1, 2] = 2.0 * p["dy"].float() / h
        return _affine(x, theta, align_corners=False)
    if draw.op == "cutout":
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        size = p["size"].to(x.device)
        top = (p["cy"].to(x.device) - size[:, 0] // 2).view(-1, 1, 1)
        left = (p["cx"].to(x.device) - size[:, 1] // 2).view(-1, 1, 1)
        inside = ((rows >= top) & (rows < top + size[:, 0].view(-1, 1, 1))
                  & (cols >= left) & (cols < left + size[:, 1].view(-1, 1, 1)))
        return x * (~inside).to(x.dtype).unsqueeze(1)
    raise ConfigError(f"unknown DSA op {draw.op!r}")
