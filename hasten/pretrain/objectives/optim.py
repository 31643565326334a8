"""Cramming's optimizer for a plain PyTorch loop (Geiping & Goldstein 2023, `adam.yaml`):
AdamW, lr 1e-3, betas (0.9, 0.98), eps 1e-12, weight decay 0.01 on matrices only (none on
norms and biases). `hasten cram` gets the same through the trainer's configuration
(`hasten.pretrain.objectives.recipes.train_config`); this is for code that drives its own steps.
Results: docs/benchmarks.md ("MLM recipe (Cramming): more tokens in equal time, no GLUE-small
difference").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hasten.core.trainer import param_groups


def cramming_adamw(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01,
                   **kwargs: Any) -> torch.optim.AdamW:
    """Cramming's optimizer: AdamW, betas (0.9, 0.98), eps 1e-12, wd 0.01 off norms/biases."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98),
                             eps=1e-12, **kwargs)
