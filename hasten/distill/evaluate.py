"""The evaluation protocol of dataset distillation (DC, DSA, DM, MTT; DC-BENCH defaults).

Train fresh networks (ConvNet-3 with instance norm by default) on the synthetic set only:
SGD with lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x 0.1 at half the epochs
(300 by default; the DSA/DM/MTT papers use 1000 with DSA on), optionally with per-example DSA
augmentation. Report the *final-epoch* test accuracy (not the best over epochs, which MTT's
code reports) as mean and standard deviation over several fresh networks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hasten.core import distributed
from hasten.core.errors import ConfigError, DataError
from hasten.data.vision import VisionData
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import ModelFn, default_model_fn, fresh_model
from hasten.distill.synthetic import SyntheticSet


@dataclass
class EvalResult:
    """Final test accuracy (%) of each fresh network, and their mean and (population) std."""

    mean: float
    std: float
    accuracies: list[float]
    train_seconds: list[float]
    epochs: int
    dsa: bool
    meta: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.mean:.2f} +- {self.std:.2f} % over {len(self.accuracies)} models "
                f"({self.epochs} epochs, DSA {'on' if self.dsa else 'off'})")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of `model` on (x, y), in percent."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size].to(device))
        correct += int((out.argmax(1) == y[i:i + batch_size].to(device)).sum())
    model.train()
    return 100.0 * correct / len(x)


def train_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, *,
             lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
             batch_size: int = 256, dsa: DSA | None = None, generator: torch.Generator,
             device: torch.device | str = "cpu") -> None:
    """The protocol's training: SGD with momentum and weight decay, lr x 0.1 at epochs // 2."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    x, y = x.to(device), y.to(device)
    model.train()
    for ep in range(epochs):
        if ep == epochs // 2 and epochs > 1:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        train_epoch(model, opt, x, y, batch_size, generator, dsa)


def evaluate(syn: SyntheticSet | tuple[torch.Tensor, torch.Tensor], data: VisionData, *,
             models: int = 3, epochs: int = 300, dsa: bool = False, lr: float = 0.01,
             momentum: float = 0.9, weight_decay: float = 5e-4, batch_size: int = 256,
             model_fn: ModelFn | None = None, width: int = 128, seed: int = 0,
             device: str | torch.device | None = "cpu",
             progress: Callable[[str], None] | None = None) -> EvalResult:
    """Train `models` fresh networks on the synthetic set; test each on `data.test`
    (`device` None: CUDA when available)."""
    x, y = syn.training_set() if isinstance(syn, SyntheticSet) else syn
    if models < 1 or epochs < 1:
        raise ConfigError(f"evaluate needs models >= 1 and epochs >= 1, got {models}, {epochs}")
    if tuple(x.shape[1:]) != tuple(data.input_shape):
        raise DataError(f"synthetic examples have shape {tuple(x.shape[1:])} but "
                        f"{data.name} has {tuple(data.input_shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= data.num_classes):
        raise DataError(f"synthetic labels span [{int(y.min())}, {int(y.max())}]; {data.name} "
                        f"has {data.num_classes} classes")
    if dsa and len(data.input_shape) != 3:
        raise ConfigError(f"DSA augments images; {data.name} examples have shape "
                          f"{tuple(data.input_shape)}")
    device = distributed.init(None).device if device is None else torch.device(device)
    fn = model_fn or default_model_fn(tuple(data.input_shape), data.num_classes, width)
    aug = DSA(dsa_strategy(data.name)) if dsa else None
    x_test, y_test = data.test.tensors
    g = torch.Generator().manual_seed(int(seed))
    accs, secs = [], []
    for k in range(models):
        model = fresh_model(fn, g, device)
        start = time.perf_counter()
        train_on(model, x, y, epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                 batch_size=batch_size, dsa=aug, generator=g, device=device)
        secs.append(time.perf_counter() - start)
        accs.append(accuracy(model, x_test, y_test, device=device))
        if progress is not None:
            progress(f"model {k + 1}/{models}: {accs[-1]:.2f}% ({secs[-1]:.1f}s train)")
    return EvalResult(float(np.mean(accs)), float(np.std(accs)), accs, secs, epochs, dsa,
                      meta={"lr": lr, "batch_size": batch_size, "train_examples": len(x),
                            "width": width if model_fn is None else None, "seed": seed})


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                batch_size: int, generator: torch.Generator, dsa: Any = None) -> None:
    """One epoch of plain cross-entropy training over (x, y) in a seeded random order, with a
    DSA draw per batch when `dsa` is given (shared by the evaluator and MTT's experts)."""
    order = torch.randperm(len(x), generator=generator).to(x.device)
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        xb = x[idx] if dsa is None else dsa(x[idx], generator=generator)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), y[idx]).backward()
        opt.step()
