"""IDM: improved distribution matching (Zhao, Li, Qin & Yu, CVPR 2023).

DM matches embeddings under fresh random networks. IDM keeps a queue of networks that train
on the real data while the images are distilled, so the matching sees features from random
to partly trained, and adds a cross-entropy term on the synthetic images under the matching
network, weighted by that network's recent training accuracy (in percent) x `ce_weight`.
Its third part, partitioning each image into factor^2 smaller ones, is hasten's `factor`
(formation.py); IDM uses factor 2.

Per iteration: every `new_every` iterations a fresh network joins the queue (the oldest
leaves once it holds `pool`); one network from the queue, picked at random, is frozen for
the matching; then `train_nets` random networks of the queue take `train_steps` SGD steps
(lr 0.01, momentum 0.9, wd 5e-4) on random real batches of `train_batch`, without
augmentation. The images take one SGD step (lr 0.2, momentum 0.5). The defaults are the
paper's released settings for ipc 10 (queue 100, a new network every 30 iterations, 2 x 10
training steps per iteration); each training step costs about as much as a DM iteration on
this CPU, so the measured runs in docs/benchmarks.md scale them down and say how.

Departures on purpose: the CPU runs scale the queue and its training down (the suite's
`IDM_CPU` says how). Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not
full-data training time".

The queue is stored as flat parameter and momentum tensors, so checkpoints keep it and a
resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from hasten.core.errors import ConfigError
from hasten.distill.base import fresh_model, real_set
from hasten.distill.dm import DM

INITIAL_NETS = 3  # the queue starts with this many networks, as in the paper's code


def classify(net: nn.Module, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits from the embedding when the network has a linear `head` (ConvNet3), else a
    second forward pass over `x`."""
    head = getattr(net, "head", None)
    if isinstance(head, nn.Linear) and head.in_features == features.shape[1]:
        return head(features)
    return net(x)


class IDM(DM):
    name = "idm"
    defaults = {"lr_img": 0.2, "momentum": 0.5, "pool": 100, "new_every": 30,
                "train_nets": 2, "train_steps": 10, "train_batch": 256, "ce_weight": 0.5,
                "lr_net": 0.01, "momentum_net": 0.9, "weight_decay_net": 5e-4}
    layout_options = ("pool",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        o = self.opt
        for key in ("pool", "new_every", "train_batch"):
            if int(o[key]) < 1:
                raise ConfigError(f"idm: option {key} must be >= 1, got {o[key]!r}")
        for key in ("train_nets", "train_steps"):
            if int(o[key]) < 0:
                raise ConfigError(f"idm: option {key} must be >= 0, got {o[key]!r}")
        if float(o["ce_weight"]) < 0:
            raise ConfigError(f"idm: ce_weight must be >= 0, got {o['ce_weight']!r}")
        self.pool_size = int(o["pool"])
        # two working copies of the architecture: one frozen for matching, one trained
        self.frozen = fresh_model(ctx.model_fn, ctx.generator, ctx.device)
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.trainee = fresh_model(ctx.model_fn, ctx.generator, ctx.device)
        n_params = sum(p.numel() for p in self.trainee.parameters())
        self.pool_params = torch.zeros(self.pool_size, n_params, device=ctx.device)
        self.pool_momentum = torch.zeros_like(self.pool_params)
        self.pool_acc = torch.zeros(self.pool_size, device=ctx.device)  # percent
        self.created = 0
        self.t = 0
        for _ in range(INITIAL_NETS):
            self._add_net()
        self.real_x, self.real_y = real_set(ctx.class_x)

    # the queue -------------------------------------------------------------------------

    def _add_net(self) -> None:
        """A fresh network takes the oldest slot (a ring, so the queue keeps `pool`)."""
        slot = self.created % self.pool_size
        net = fresh_model(self.ctx.model_fn, self.ctx.generator, self.ctx.device)
        self.pool_params[slot] = parameters_to_vector(net.parameters()).detach()
        self.pool_momentum[slot].zero_()
        self.pool_acc[slot] = 0.0
        self.created += 1

    def active(self) -> int:
        """How many networks the queue holds now."""
        return min(self.created, self.pool_size)

    def _pick(self, k: int) -> list[int]:
        n = self.active()
        return torch.randperm(n, generator=self.ctx.generator)[:k].tolist()

    def train_net(self, slot: int, steps: int) -> None:
        """`steps` SGD steps (momentum, weight decay, as torch.optim.SGD) on real batches;
        records the mean batch accuracy in percent."""
        o, ctx = self.opt, self.ctx
        lr, mom, wd = float(o["lr_net"]), float(o["momentum_net"]), float(o["weight_decay_net"])
        params, buf = self.pool_params[slot], self.pool_momentum[slot]
        n = min(int(o["train_batch"]), len(self.real_x))
        correct = total = 0
        for _ in range(steps):
            idx = torch.randperm(len(self.real_x), generator=ctx.generator)[:n]
            idx = idx.to(self.real_x.device)
            x, y = self.real_x[idx], self.real_y[idx]
            vector_to_parameters(params, self.trainee.parameters())
            self.trainee.zero_grad(set_to_none=True)
            logits = self.trainee(x)
            F.cross_entropy(logits, y).backward()
            grad = parameters_to_vector([p.grad for p in self.trainee.parameters()])
            with torch.no_grad():
                buf.mul_(mom).add_(grad + wd * params)
                params.sub_(lr * buf)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        if total:
            self.pool_acc[slot] = 100.0 * correct / total

    # one iteration ---------------------------------------------------------------------

    def step(self) -> tuple[float, int]:
        ctx, o = self.ctx, self.opt
        if self.t % int(o["new_every"]) == 0:
            self._add_net()
        slot = self._pick(1)[0]
        with torch.no_grad():
            vector_to_parameters(self.pool_params[slot], self.frozen.parameters())
        loss, x_syn, f_syn, counts, seen = self.matching(self.frozen)
        weight = float(o["ce_weight"]) * float(self.pool_acc[slot])
        if weight > 0:
            logits = classify(self.frozen, f_syn, x_syn)
            labels = torch.arange(ctx.num_classes, device=logits.device).repeat_interleave(counts)
            # the paper's loss sums a mean cross-entropy per class
            ce = F.cross_entropy(logits, labels, reduction="none")
            per_class = torch.zeros(ctx.num_classes, device=ce.device).index_add(0, labels, ce)
            loss = loss + weight * (per_class / counts).sum()
        self.update(loss)
        trained = 0
        for s in self._pick(int(o["train_nets"])):
            self.train_net(s, int(o["train_steps"]))
            trained += int(o["train_steps"]) * min(int(o["train_batch"]), len(self.real_x))
        self.t += 1
        return loss.item(), seen + trained

    # checkpoints -----------------------------------------------------------------------

    def learnables(self) -> dict[str, torch.Tensor]:
        return {"pool_params": self.pool_params, "pool_momentum": self.pool_momentum,
                "pool_acc": self.pool_acc}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"t": self.t, "created": self.created}

    def load_checkpoint_extra(self, state: dict[str, Any]) -> None:
        self.t, self.created = int(state["t"]), int(state["created"])

    def info(self) -> dict[str, Any]:
        return {"networks_created": self.created}
