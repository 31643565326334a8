"""Shared parts of the distillation methods (DC, DSA, DM, MTT): the context a method sees,
the default networks (ConvNet-3 with instance norm for images, as in all four papers), the
embedding a DM network exposes, and real-batch sampling per class.

Every random choice goes through one `torch.Generator`; fresh networks are initialised from a
seed drawn from it, under a forked global RNG, so a run is reproducible and a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hasten.core.errors import ConfigError
from hasten.distill.augment import DSA
from hasten.distill.formation import decode, decode_labels
from hasten.models.vision import CNN1D, MLP, ConvNet3

ModelFn = Callable[[], nn.Module]


def default_model_fn(input_shape: tuple[int, ...], num_classes: int,
                     width: int = 128) -> ModelFn:
    """ConvNet-3 (instance norm) for images, the 1-D CNN for signals, an MLP for vectors.

    Small images get fewer blocks, so the last instance norm still sees a 4x4 map or more
    (on 8x8 digits a third block would normalise 2x2 maps, which leaves almost no signal).
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        depth = min(3, int(math.log2(min(shape[1:]))) - 1)
        if depth < 1:
            raise ConfigError(f"images of shape {shape} are too small for a ConvNet")
        return lambda: ConvNet3(shape, num_classes, width=width, depth=depth)
    if len(shape) == 2:
        return lambda: CNN1D(shape, num_classes, channels=width)
    if len(shape) == 1:
        return lambda: MLP(shape, num_classes, hidden=(width, width))
    raise ConfigError(f"no default network for examples of shape {shape}")


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The (n, d) embedding DM matches: the features before the classifier.

    Uses `model.embed(x)` if the module defines it; ConvNet3, CNN1D and MLP give their
    penultimate features; any other module's output is flattened and used as it is.
    """
    if hasattr(model, "embed"):
        return model.embed(x)
    if isinstance(model, ConvNet3):
        return model.features(x).flatten(1)
    if isinstance(model, CNN1D):
        return model.features(x).amax(dim=-1)
    if isinstance(model, MLP):
        return model.net[:-1](x)
    return model(x).flatten(1)


def _joined(parts: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """One view over `parts` when they lie back to back in one storage (as `class_tensors`
    makes them), else None."""
    first, offset = parts[0], parts[0].storage_offset()
    for p in parts:
        if (not p.is_contiguous() or p.dtype != first.dtype or p.shape[1:] != first.shape[1:]
                or p.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
                or p.storage_offset() != offset):
            return None
        offset += p.numel()
    return first.as_strided((sum(len(p) for p in parts), *first.shape[1:]), first.stride())


def real_set(class_x: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-class real image tensors stacked class-major, with their labels (the training
    data of MTT's experts and of IDM's network queue). A view, not a copy, when the classes
    are consecutive slices of one tensor, so callers read it and never write to it."""
    x = _joined(class_x)
    if x is None:
        x = torch.cat(list(class_x))
    y = torch.cat([torch.full((len(xc),), c, dtype=torch.long) for c, xc in enumerate(class_x)])
    return x, y.to(x.device)


def new_seed(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=g))


def fresh_model(model_fn: ModelFn, g: torch.Generator, device: torch.device) -> nn.Module:
    """A freshly initialised network, seeded from `g` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(new_seed(g))
        model = model_fn()
    return model.to(device)


@dataclass
class Context:
    """What a method needs: real data per class, the learnable images and the settings."""

    class_x: list[torch.Tensor]  # real images of class c, on the device
    syn: torch.Tensor  # (C * ipc, *shape) leaf tensor with requires_grad, class-major order
    labels: torch.Tensor  # (C * ipc,) on the device
    ipc: int
    num_classes: int
    model_fn: ModelFn
    generator: torch.Generator
    device: torch.device
    dsa: DSA | None
    batch_real: int
    options: dict[str, Any] = field(default_factory=dict)
    factor: int = 1  # multi-formation: each stored image holds factor^2 training images

    def real_batch(self, c: int, n: int | None = None) -> torch.Tensor:
        """Up to n (default batch_real) distinct real images of class c, drawn at random."""
        xc = self.class_x[c]
        n = min(len(xc), n or self.batch_real)
        idx = torch.randperm(len(xc), generator=self.generator)[:n]
        return xc[idx.to(xc.device)]

    def syn_class(self, c: int) -> torch.Tensor:
        """The training images of class c (decoded, so ipc * factor^2 of them)."""
        return decode(self.syn[c * self.ipc:(c + 1) * self.ipc], self.factor)

    def training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All training images (decoded, differentiable) and their labels."""
        return decode(self.syn, self.factor), decode_labels(self.labels, self.factor)

    def siamese(self, real: torch.Tensor, syn: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment both batches with one shared DSA draw (identity when DSA is off)."""
        if self.dsa is None:
            return real, syn
        draw = self.dsa.draw(None, self.generator, image_size=tuple(real.shape[-2:]))
        return self.dsa(real, draw), self.dsa(syn, draw)


class Method:
    """One distillation method: `step()` runs one outer iteration and returns its loss.

    `learnables` are the tensors saved in checkpoints besides the images (MTT's step size);
    `optimizers` are checkpointed too. `defaults` lists the method's options;
    `layout_options` those a resume must keep, because they shape the checkpoint.
    """

    name = "base"
    defaults: dict[str, Any] = {}
    layout_options: tuple[str, ...] = ()  # options that shape the checkpoint; fixed on resume

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.opt = ctx.options

    def setup(self) -> dict[str, Any]:
        """One-off work before the loop (MTT's experts); returns facts for the metadata."""
        return {}

    def learnables(self) -> dict[str, torch.Tensor]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The checkpointed optimizers; by default the SGD on the images made by
        `image_sgd`."""
        return {"images": self.optimizer}

    def image_sgd(self, lr: float) -> None:
        """SGD with the `momentum` option on the synthetic images (DC's and DM's update)."""
        self.optimizer = torch.optim.SGD([self.ctx.syn], lr=lr,
                                         momentum=float(self.opt["momentum"]))

    def step(self) -> tuple[float, int]:
        """One iteration; returns (loss, examples forwarded)."""
        raise NotImplementedError

    def checkpoint_extra(self) -> dict[str, Any]:
        """Method state besides tensors and optimizers that a checkpoint must keep."""
        return {}

    def load_checkpoint_extra(self, state: dict[str, Any]) -> None:
        """Restore what `checkpoint_extra` returned."""

    def info(self) -> dict[str, Any]:
        """Facts for the metadata at the end (e.g. MTT's learned step size)."""
        return {}
