"""DM: distribution matching (Zhao & Bilen, WACV 2023).

No bilevel loop: each iteration samples a fresh, frozen random network and, for every class,
adds the squared L2 distance between the mean embeddings of a real batch (256) and the
class's synthetic images, each pair augmented with one shared DSA draw. The images take one
SGD step (lr 1, or 10 for ipc >= 100; momentum 0.5). The network has no batch norm, so the
classes share one forward pass of each kind, which gives the same result as a loop.

Departures on purpose: one shared forward pass for every class (same result as a loop).
Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data training
time".
"""

from __future__ import annotations

import torch
from torch import nn

from hasten.distill.base import Method, embed, fresh_model
from hasten.distill.matching import mean_embedding_distance


class DM(Method):
    name = "dm"
    defaults = {"lr_img": None, "momentum": 0.5}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        lr = self.opt["lr_img"]
        if lr is None:
            lr = 10.0 if ctx.ipc >= 100 else 1.0
        self.lr_img = float(lr)
        self.image_sgd(self.lr_img)

    def matching(self, net: nn.Module
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """DM's loss under the frozen `net`; also the augmented synthetic images (class-major),
        their embeddings, their per-class counts and the number of examples forwarded."""
        ctx = self.ctx
        reals, syns = [], []
        for c in range(ctx.num_classes):
            real, syn = ctx.siamese(ctx.real_batch(c), ctx.syn_class(c))
            reals.append(real)
            syns.append(syn)
        with torch.no_grad():
            f_real = embed(net, torch.cat(reals))
        x_syn = torch.cat(syns)
        f_syn = embed(net, x_syn)
        loss = f_syn.new_zeros(())
        r0 = s0 = 0
        for real, syn in zip(reals, syns, strict=True):
            loss = loss + mean_embedding_distance(f_real[r0:r0 + len(real)],
                                                  f_syn[s0:s0 + len(syn)])
            r0, s0 = r0 + len(real), s0 + len(syn)
        counts = torch.tensor([len(s) for s in syns], device=f_syn.device)
        return loss, x_syn, f_syn, counts, r0 + s0

    def update(self, loss: torch.Tensor) -> None:
        """One SGD step on the images."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def step(self) -> tuple[float, int]:
        net = fresh_model(self.ctx.model_fn, self.ctx.generator, self.ctx.device)
        for p in net.parameters():
            p.requires_grad_(False)
        loss, _, _, _, seen = self.matching(net)
        self.update(loss)
        return loss.item(), seen
