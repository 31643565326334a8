"""Matching distances of dataset distillation.

- DC (Zhao, Mopuri & Bilen, ICLR 2021): per layer, reshape each gradient to
  (output units, rest) and sum 1 - cosine over the rows; the layers' distances add up.
  One-dimensional gradients (biases, norm scales and shifts) are ignored, as in DC.
- DM (Zhao & Bilen, WACV 2023): squared L2 distance between the mean embeddings of a real
  and a synthetic batch.
- MTT (Cazenavette et al., CVPR 2022): squared distance from the student's parameters to the
  expert's target, divided by the squared distance the expert itself travelled.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hasten.core.errors import ConfigError

EPS = 1e-6  # DC's guard against a zero norm


def layer_gradient_distance(g_real: torch.Tensor, g_syn: torch.Tensor) -> torch.Tensor:
    """DC's distance for one layer: sum over output units of 1 - cos(g_real row, g_syn row).

    A conv weight (out, in, kh, kw) gives `out` rows of in*kh*kw; a linear weight (out, in)
    gives `out` rows. A 1-D gradient (bias, norm) contributes 0.
    """
    if g_real.shape != g_syn.shape:
        raise ConfigError(f"gradient shapes differ: {tuple(g_real.shape)} vs "
                          f"{tuple(g_syn.shape)}")
    if g_real.dim() <= 1:
        return g_syn.new_zeros(())
    a, b = g_real.reshape(g_real.shape[0], -1), g_syn.reshape(g_syn.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + EPS)
    return (1.0 - cos).sum()


def gradient_distance(g_real: Sequence[torch.Tensor],
                      g_syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """DC's matching distance: the per-layer distances summed over all layers."""
    if len(g_real) != len(g_syn):
        raise ConfigError(f"{len(g_real)} real gradients but {len(g_syn)} synthetic ones")
    if not g_real:
        raise ConfigError("no gradients to match")
    total = g_syn[0].new_zeros(())
    for a, b in zip(g_real, g_syn, strict=True):
        total = total + layer_gradient_distance(a, b)
    return total


def mean_embedding_distance(f_real: torch.Tensor, f_syn: torch.Tensor) -> torch.Tensor:
    """DM's distance: ||mean_i f_real[i] - mean_j f_syn[j]||^2 over (n, d) embeddings."""
    if f_real.dim() != 2 or f_syn.dim() != 2 or f_real.shape[1] != f_syn.shape[1]:
        raise ConfigError(f"embeddings must be (n, d) with one d, got {tuple(f_real.shape)} "
                          f"and {tuple(f_syn.shape)}")
    return ((f_real.mean(0) - f_syn.mean(0)) ** 2).sum()


def _flat(p: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(p, torch.Tensor):
        return p.reshape(-1)
    return torch.cat([t.reshape(-1) for t in p])


def parameter_distance(student: torch.Tensor | Sequence[torch.Tensor],
                       start: torch.Tensor | Sequence[torch.Tensor],
                       target: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """MTT's normalised distance ||student - target||^2 / ||start - target||^2.

    Each argument is a flat parameter vector or a list of parameter tensors (flattened and
    concatenated). The denominator makes the loss comparable across epochs, where experts
    move by very different amounts.
    """
    s, a, b = _flat(student), _flat(start), _flat(target)
    if not s.shape == a.shape == b.shape:
        raise ConfigError(f"parameter vectors differ in size: {s.numel()}, {a.numel()}, "
                          f"{b.numel()}")
    denom = ((a - b) ** 2).sum()
    if float(denom) == 0.0:
        raise ConfigError("MTT: the expert did not move between start and target epochs")
    return ((s - b) ** 2).sum() / denom
