"""Data-parallel training through `torchrun` and `torch.distributed` (DDP).

hasten never launches processes itself: run the same command under
`torchrun --nproc_per_node N ...` and `init()` picks up the rank and world size torchrun sets,
joins the process group (gloo on CPU, nccl on CUDA) and returns a `Dist` describing this rank.
Without torchrun it returns a single-process `Dist` and nothing else changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and logs."""
        return self.rank == 0


def init(device: str | None = None) -> Dist:
    """Join the torchrun job if there is one; pick CUDA when available unless `device` says."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(want)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside any DDP (`.module`) and `torch.compile` (`._orig_mod`) wrappers,
    in either order, so code can reach methods and weights the wrappers do not expose."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
