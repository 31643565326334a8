"""Multi-formation: store each synthetic image as factor x factor smaller images (IDC).

Kim et al., "Dataset Condensation via Efficient Synthetic-Data Parameterization" (ICML 2022):
at a fixed storage budget (ipc stored images per class), more, smaller examples beat fewer
full-size ones. Each stored H x W image is cut into factor^2 tiles of (H/f) x (W/f); each
tile is upsampled (bilinear) back to H x W and trained on as its own example with the stored
image's label. Decoding is differentiable, so every method (DM, DC/DSA, MTT) optimises the
stored pixels through it; initialisation downsamples f^2 real images (area) into the tiles
of one stored image. factor 1 is the identity: the standard parameterisation.

Storage stays ipc images per class, so the papers compare it with ipc real images; the
decoded training set has ipc * f^2 images per class.

Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data training
time".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hasten.core.errors import ConfigError


def check_factor(factor: int, image_shape: tuple[int, ...]) -> int:
    """`factor` as an int; ConfigError unless >= 1 and it divides the image height and width."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"factor must be an integer >= 1, got {factor!r}")
    if factor == 1:
        return 1
    if len(image_shape) != 3:
        raise ConfigError(f"multi-formation (factor {factor}) needs images (C, H, W); "
                          f"examples have shape {tuple(image_shape)}")
    h, w = image_shape[1:]
    if h % factor or w % factor:
        raise ConfigError(f"factor {factor} does not divide the image size {h}x{w}")
    return factor


def decode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, H, W) stored images -> (N * factor^2, C, H, W) training images.

    Stored image n gives outputs n*f^2 ... n*f^2 + f^2 - 1, its tiles in row-major order,
    each upsampled bilinearly to H x W. Differentiable; factor 1 returns `images`.
    """
    if factor == 1:
        return images
    n, c, h, w = images.shape
    f = factor
    tiles = images.reshape(n, c, f, h // f, f, w // f).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n * f * f, c, h // f, w // f)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def decode_labels(labels: torch.Tensor, factor: int) -> torch.Tensor:
    """The labels of `decode`'s output: each stored label repeated factor^2 times."""
    return labels if factor == 1 else labels.repeat_interleave(factor * factor)


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(N * factor^2, C, H, W) full-size images -> (N, C, H, W) stored images.

    Each consecutive group of f^2 images is downsampled (area) and tiled row-major into one
    stored image, so `decode(encode(x))` is a low-resolution copy of x (the IDC init).
    """
    if factor == 1:
        return images
    m, c, h, w = images.shape
    f = factor
    if m % (f * f):
        raise ConfigError(f"encode needs a multiple of factor^2 = {f * f} images, got {m}")
    small = F.interpolate(images, size=(h // f, w // f), mode="area")
    small = small.reshape(m // (f * f), f, f, c, h // f, w // f).permute(0, 3, 1, 4, 2, 5)
    return small.reshape(m // (f * f), c, h, w)
