"""DC: dataset condensation with gradient matching (Zhao, Mopuri & Bilen, ICLR 2021), and
with DSA augmentation (Zhao & Bilen, ICML 2021) when the context has one.

Each outer iteration draws a fresh network, then `outer_loop` times: for every class, match
the gradients of the cross-entropy on a real batch (256) and on the class's synthetic images
(1 - cosine per output unit, see `matching.gradient_distance`), take one SGD step on the
pixels (lr 0.1, momentum 0.5), and train the network on the synthetic set for `inner_loop`
epochs (SGD lr 0.01, batch 256). The (outer, inner) pairs come from the DC code for ipc 1,
10, 20, 30, 40, 50; any other ipc uses the pair of the nearest listed ipc below it.

Departures on purpose: any ipc runs (the nearest listed pair below it). Results:
docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data training time".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hasten.distill.base import Method, fresh_model
from hasten.distill.matching import gradient_distance

LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def dc_loops(ipc: int) -> tuple[int, int]:
    """(outer_loop, inner_loop) for an ipc: DC's table, else its nearest ipc below."""
    key = max(k for k in LOOPS if k <= max(1, ipc))
    return LOOPS[key]


class DC(Method):
    name = "dc"
    defaults = {"lr_img": 0.1, "momentum": 0.5, "lr_net": 0.01, "outer_loop": None,
                "inner_loop": None, "batch_train": 256}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        outer, inner = dc_loops(ctx.ipc)
        self.outer = int(self.opt["outer_loop"] or outer)
        self.inner = int(self.opt["inner_loop"] if self.opt["inner_loop"] is not None
                         else inner)
        self.image_sgd(float(self.opt["lr_img"]))

    def step(self) -> tuple[float, int]:
        ctx = self.ctx
        net = fresh_model(ctx.model_fn, ctx.generator, ctx.device)
        net.train()
        params = [p for p in net.parameters() if p.requires_grad]
        net_opt = torch.optim.SGD(params, lr=float(self.opt["lr_net"]))
        total, seen = 0.0, 0
        for ol in range(self.outer):
            loss = ctx.syn.new_zeros(())
            for c in range(ctx.num_classes):
                real, syn = ctx.siamese(ctx.real_batch(c), ctx.syn_class(c))
                y_real = torch.full((len(real),), c, device=ctx.device)
                y_syn = torch.full((len(syn),), c, device=ctx.device)
                g_real = torch.autograd.grad(F.cross_entropy(net(real), y_real), params)
                g_real = [g.detach() for g in g_real]
                g_syn = torch.autograd.grad(F.cross_entropy(net(syn), y_syn), params,
                                            create_graph=True)
                loss = loss + gradient_distance(g_real, g_syn)
                seen += len(real) + len(syn)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            if ol == self.outer - 1:
                break
            seen += self._train_net(net, net_opt)
        return total / self.outer, seen

    def _train_net(self, net: torch.nn.Module, net_opt: torch.optim.Optimizer) -> int:
        """Train `net` on the (detached) synthetic set for inner_loop epochs."""
        ctx = self.ctx
        x_all, y_all = ctx.training_set()
        x_all = x_all.detach()  # the network trains here, not the images
        batch, seen = int(self.opt["batch_train"]), 0
        for _ in range(self.inner):
            order = torch.randperm(len(x_all), generator=ctx.generator).to(x_all.device)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                x = x_all[idx]
                if ctx.dsa is not None:
                    x = ctx.dsa(x, generator=ctx.generator)
                net_opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y_all[idx]).backward()
                net_opt.step()
                seen += len(idx)
        return seen
