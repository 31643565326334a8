"""MTT: dataset distillation by matching training trajectories (Cazenavette et al., CVPR 2022).

Stage 1 trains expert networks on the real data (SGD lr 0.01, no momentum or weight decay,
DSA augmentation, batch 256) and saves their flat parameter vector after every epoch.
Stage 2, per iteration: pick an expert and a start epoch t < T+ (`max_start_epoch`), unroll
N (`syn_steps`) differentiable SGD steps of a student from theta*_t on synthetic minibatches
with a learnable step size alpha (initialised to `lr_teacher`), and minimise
||theta_hat_{t+N} - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 (M = `expert_epochs`),
updating the pixels (lr_img, momentum 0.5) and alpha (lr_lr, momentum 0.5) through the unroll.

Departures on purpose: fewer and shorter expert runs than the paper's on a CPU (set by the
caller). Results: docs/benchmarks.md, "Dataset distillation: beats random subsets, not full-data
training time".

Trajectories are stored as safetensors (`expert-000.safetensors`, key "trajectory", shape
(epochs + 1, parameters)); the distillation reuses those already in `expert_dir`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.func import functional_call

from hasten.core.errors import ConfigError, DataError
from hasten.distill.augment import DSA
from hasten.distill.base import Method, ModelFn, fresh_model, new_seed, real_set
from hasten.distill.evaluate import train_epoch
from hasten.distill.matching import parameter_distance


def flatten_params(model: nn.Module) -> torch.Tensor:
    """All parameters of `model`, flattened and concatenated (in `named_parameters` order)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten_params(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split a flat vector into {name: tensor} shaped like `model`'s parameters (views, so
    gradients flow back to `flat`)."""
    out, i = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[i:i + p.numel()].view_as(p)
        i += p.numel()
    if i != flat.numel():
        raise ConfigError(f"flat vector has {flat.numel()} values; the model has {i}")
    return out


def unroll_student(model: nn.Module, start: torch.Tensor,
                   batches: Sequence[tuple[torch.Tensor, torch.Tensor]], lr: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                   ) -> list[torch.Tensor]:
    """Differentiable SGD from flat parameters `start`: theta_{k+1} = theta_k - lr * grad.

    `model` only provides the architecture (its own weights are not used). Returns
    [theta_0, ..., theta_N]; the graph reaches the batches' inputs, `lr` and `start`.
    """
    thetas = [start if start.requires_grad else start.detach().requires_grad_(True)]
    for x, y in batches:
        out = functional_call(model, unflatten_params(model, thetas[-1]), (x,))
        grad = torch.autograd.grad(loss_fn(out, y), thetas[-1], create_graph=True)[0]
        thetas.append(thetas[-1] - lr * grad)
    return thetas


# -----------------------------------------------------------------------------
# stage 1: experts


def train_expert(model_fn: ModelFn, x: torch.Tensor, y: torch.Tensor, epochs: int, *,
                 lr: float = 0.01, batch_size: int = 256, dsa: DSA | None = None,
                 generator: torch.Generator, device: torch.device | str = "cpu"
                 ) -> torch.Tensor:
    """Train one expert (plain SGD, as MTT) and return its trajectory (epochs + 1, P)."""
    device = torch.device(device)
    model = fresh_model(model_fn, generator, device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    traj = [flatten_params(model).cpu()]
    x, y = x.to(device), y.to(device)
    for _ in range(epochs):
        train_epoch(model, opt, x, y, batch_size, generator, dsa)
        traj.append(flatten_params(model).cpu())
    return torch.stack(traj)


def save_trajectory(path: str | Path, trajectory: torch.Tensor) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"trajectory": trajectory.contiguous()}, str(tmp))
    tmp.replace(path)
    return path


def load_trajectories(folder: str | Path) -> list[torch.Tensor]:
    """All `expert-*.safetensors` trajectories in `folder`, in name order."""
    out = []
    for path in sorted(Path(folder).glob("expert-*.safetensors")):
        try:
            out.append(load_file(str(path))["trajectory"])
        except (SafetensorError, OSError, KeyError) as err:
            raise DataError(f"{path}: not an expert trajectory ({err})") from None
    return out


class MTT(Method):
    name = "mtt"
    defaults = {"syn_steps": 30, "expert_epochs": 2, "max_start_epoch": 20, "lr_img": 100.0,
                "lr_lr": 1e-5, "lr_teacher": 0.01, "momentum": 0.5, "batch_syn": None,
                "num_experts": 5, "train_epochs": None, "expert_dir": None,
                "expert_lr": 0.01, "expert_batch": 256, "trajectories": None}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        o = self.opt
        for key in ("syn_steps", "expert_epochs", "max_start_epoch", "num_experts"):
            if int(o[key]) < 1:
                raise ConfigError(f"mtt: {key} must be >= 1, got {o[key]}")
        self.syn_lr = torch.tensor(float(o["lr_teacher"]), device=ctx.device,
                                   requires_grad=True)
        self.opt_img = torch.optim.SGD([ctx.syn], lr=float(o["lr_img"]),
                                       momentum=float(o["momentum"]))
        self.opt_lr = torch.optim.SGD([self.syn_lr], lr=float(o["lr_lr"]),
                                      momentum=float(o["momentum"]))
        self.arch = ctx.model_fn().to(ctx.device)  # architecture only, for functional_call
        self.trajectories: list[torch.Tensor] = []
        self._order = torch.empty(0, dtype=torch.long)

    def learnables(self) -> dict[str, torch.Tensor]:
        return {"syn_lr": self.syn_lr}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"images": self.opt_img, "syn_lr": self.opt_lr}

    def setup(self) -> dict:
        """Load the experts from `expert_dir` (or `trajectories`), training missing ones."""
        o, ctx = self.opt, self.ctx
        need = int(o["max_start_epoch"]) + int(o["expert_epochs"])
        epochs = int(o["train_epochs"] or need)
        if epochs < need:
            raise ConfigError(f"mtt: experts need >= max_start_epoch + expert_epochs = {need} "
                              f"epochs, got train_epochs={epochs}")
        trajs = list(o["trajectories"] or [])
        folder = Path(o["expert_dir"]) if o["expert_dir"] else None
        if folder is not None and folder.is_dir() and not trajs:
            trajs = load_trajectories(folder)
        trajs = [t for t in trajs if len(t) > need]
        start, trained = time.perf_counter(), 0
        if len(trajs) < int(o["num_experts"]):
            # experts get their own generator: the distillation's draws do not depend on
            # whether the experts were trained now or loaded
            g = torch.Generator().manual_seed(new_seed(ctx.generator))
            x, y = real_set(ctx.class_x)
            for k in range(len(trajs), int(o["num_experts"])):
                traj = train_expert(ctx.model_fn, x, y, epochs, lr=float(o["expert_lr"]),
                                    batch_size=int(o["expert_batch"]), dsa=ctx.dsa,
                                    generator=g, device=ctx.device)
                if folder is not None:
                    save_trajectory(folder / f"expert-{k:03d}.safetensors", traj)
                trajs.append(traj)
                trained += 1
        else:
            new_seed(ctx.generator)  # keep the stream identical to a run that trained them
        p = flatten_params(self.arch).numel()
        if any(t.shape[1] != p for t in trajs):
            raise DataError(f"mtt: expert trajectories do not match the network ({p} params)")
        self.trajectories = trajs[:int(o["num_experts"])]
        return {"experts": len(self.trajectories), "experts_trained": trained,
                "expert_seconds": time.perf_counter() - start, "expert_epochs_total": epochs}

    def _syn_batch(self, n: int) -> torch.Tensor:
        """The next minibatch indices into the n training images, walking through random
        permutations."""
        ctx = self.ctx
        size = int(self.opt["batch_syn"] or n)
        if len(self._order) < size:
            perm = torch.randperm(n, generator=ctx.generator)
            self._order = torch.cat([self._order, perm])
        idx, self._order = self._order[:size], self._order[size:]
        return idx.to(ctx.device)

    def step(self) -> tuple[float, int]:
        ctx, o = self.ctx, self.opt
        g = ctx.generator
        traj = self.trajectories[int(torch.randint(len(self.trajectories), (1,), generator=g))]
        t = int(torch.randint(int(o["max_start_epoch"]), (1,), generator=g))
        start = traj[t].to(ctx.device)
        target = traj[t + int(o["expert_epochs"])].to(ctx.device)
        x_all, y_all = ctx.training_set()
        batches, seen = [], 0
        for _ in range(int(o["syn_steps"])):
            idx = self._syn_batch(len(x_all))
            x = x_all[idx]
            if ctx.dsa is not None:
                x = ctx.dsa(x, generator=g)
            batches.append((x, y_all[idx]))
            seen += len(idx)
        thetas = unroll_student(self.arch, start, batches, self.syn_lr)
        loss = parameter_distance(thetas[-1], start, target)
        self.opt_img.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_img.step()
        self.opt_lr.step()
        if not self.syn_lr.item() > 0:  # a known MTT failure: alpha goes negative
            with torch.no_grad():
                self.syn_lr.clamp_(min=1e-8)
        return loss.item(), seen

    def checkpoint_extra(self) -> dict:
        return {"order": self._order.clone()}

    def load_checkpoint_extra(self, state: dict) -> None:
        self._order = state["order"].to(torch.long)

    def info(self) -> dict:
        return {"syn_lr": self.syn_lr.item()}
