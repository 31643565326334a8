"""Data-parallel training through `torchrun` and `torch.distributed` (DDP).

hasten never launches processes itself: run the same command under
`torchrun --nproc_per_node N ...` and `init()` picks up the rank and world size torchrun sets,
joins the process group (gloo on CPU, nccl on CUDA) and returns a `Dist` describing this rank.
Without torchrun it returns a single-process `Dist` and nothing else changes.

A dead rank must not leave the others hanging: collectives get a short timeout (gloo's own
default is 30 minutes), and the collective helpers here turn a lost peer into one
`DistributedError` line. Other modules ask `rank_from_env()` / `is_main_process()` instead of
reading torchrun's variables themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from hasten.core.errors import ConfigError, DistributedError

# Seconds a collective may wait for the other ranks before this rank gives up. A dead peer
# is usually noticed at once (its sockets close); the timeout covers a hung one.
DEFAULT_TIMEOUT = {"gloo": 60.0, "nccl": 600.0}
DEVICE_TYPES = ("cpu", "cuda", "mps")


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


def rank_from_env() -> int:
    """This process's global rank: the joined process group's, else torchrun's `RANK`
    (0 outside a distributed job)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size_from_env() -> int:
    """The job's number of processes: the joined group's, else torchrun's `WORLD_SIZE`."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process is rank 0 (the one that writes files and prints)."""
    return rank_from_env() == 0


def default_device() -> str:
    """"cuda" when this torch build sees a GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """`device` (default `default_device()`) as a torch.device this machine can use, or a
    one-line ConfigError (unknown type, CUDA missing, GPU index out of range)."""
    want = device or default_device()
    kind = want.split(":", 1)[0]
    if kind not in DEVICE_TYPES:
        raise ConfigError(f"unknown device {want!r}; use cpu, cuda, cuda:N or mps")
    try:
        dev = torch.device(want)
    except RuntimeError:
        raise ConfigError(f"cannot parse device {want!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type in ("cpu", "mps") and dev.index not in (None, 0):
        raise ConfigError(f"device {want!r} does not exist: the {dev.type.upper()} is one "
                          f"device; use --device {dev.type}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise ConfigError(f"device {want!r} asked for, but {why}; use --device cpu")
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {want!r} asked for, but only "
                              f"{torch.cuda.device_count()} GPU(s) are visible")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {want!r} asked for, but MPS is not available here")
    return dev


def init(device: str | None = None, timeout: float | None = None) -> Dist:
    """Join the torchrun job if there is one; pick CUDA when available unless `device` says.

    `timeout`: seconds a collective waits for the other ranks (default `DEFAULT_TIMEOUT` of
    the backend). Raises ConfigError for a device this machine does not have."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        seconds = timeout if timeout is not None else DEFAULT_TIMEOUT[backend]
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=seconds))
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def lost_peer(d: Dist, err: BaseException, doing: str) -> DistributedError:
    """The one-line error for a collective that failed because another rank died or hung."""
    reason = " ".join(str(err).split())
    for marker in ("] ", "): "):  # drop gloo's source-file prefix
        if reason.startswith("[") and marker in reason:
            reason = reason.split(marker, 1)[1]
    reason = reason.split(". ")[0][:160]
    return DistributedError(f"rank {d.rank} of {d.world_size} lost the other ranks during "
                            f"{doing} ({reason}); restart the job with --resume")


def all_reduce(d: Dist, tensor: torch.Tensor, op: str = "sum", doing: str = "a step") -> None:
    """In-place all-reduce (`op`: sum or max) across the job; a DistributedError line when a
    peer is gone. A no-op in a single process."""
    if not d.enabled:
        return
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    try:
        dist.all_reduce(tensor, op=ops[op])
    except RuntimeError as err:
        raise lost_peer(d, err, doing) from None


def all_gather_object(d: Dist, obj: Any, doing: str = "a checkpoint") -> list[Any]:
    """Every rank's `obj`, in rank order (just `[obj]` in a single process)."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world_size
    try:
        dist.all_gather_object(out, obj)
    except RuntimeError as err:
        raise lost_peer(d, err, doing) from None
    return out


def barrier(d: Dist, doing: str = "a barrier") -> None:
    if not d.enabled:
        return
    try:
        dist.barrier()
    except RuntimeError as err:
        raise lost_peer(d, err, doing) from None


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
