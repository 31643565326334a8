"""Scoring under torchrun: each rank scores a contiguous shard, the values are gathered.

Design (the simplest one that stays exact):
- Scoring a *fixed* model example by example (loss, EL2N, entropy, margin, GraNd, the
  embedding step of prototypes) needs no communication: rank r scores examples
  [n*r/W, n*(r+1)/W) and `gather_rows` concatenates the shards in rank order, which is
  dataset order.
- Training a proxy before scoring goes through `hasten.core.trainer.train`, which is DDP-aware:
  under torchrun it trains data-parallel and DDP keeps every replica identical, so every rank
  ends with the same proxy. The scorers in `hasten.select.scorers` do this themselves.
- Results are gathered with `all_gather` on padded tensors (no pickling) and returned on
  **every** rank, so all ranks can go on to select the same subset and train on it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as tdist
from torch.utils.data import Dataset, Subset

from hasten.core.distributed import Dist
from hasten.select.per_example import Scores


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous shard of n examples; shard sizes differ by at most one."""
    return n * rank // world_size, n * (rank + 1) // world_size


def shard_of(data: Dataset, d: Dist) -> Subset:
    """This rank's contiguous shard of `data` (all of it when not distributed)."""
    lo, hi = shard_bounds(len(data), d.rank, d.world_size)
    return Subset(data, range(lo, hi))


def gather_rows(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Concatenate every rank's `t` along dim 0, in rank order, on every rank (CPU result).

    Shards may differ in length: each is padded to the longest before `all_gather`.
    """
    if not d.enabled:
        return t.cpu()
    t = t.to(d.device).contiguous()
    sizes = torch.tensor([t.shape[0]], dtype=torch.long, device=d.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(d.world_size)]
    tdist.all_gather(all_sizes, sizes)
    counts = [int(s) for s in all_sizes]
    padded = torch.zeros((max(counts), *t.shape[1:]), dtype=t.dtype, device=d.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(d.world_size)]
    tdist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).cpu()


def _reduce(values: list[float], d: Dist, op: tdist.ReduceOp) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    tdist.all_reduce(t, op=op)
    return t.tolist()


def score_sharded(fn: Callable[[Dataset], Scores], data: Dataset,
                  d: Dist | None = None) -> Scores:
    """Run `fn` (a scorer of a fixed model: dataset -> Scores) on this rank's shard and return
    the full Scores, in dataset order, on every rank.

    `seconds` is the slowest rank's, `work` is summed over ranks (so it counts each example
    once). Without torchrun (`d` None or one process) this is just `fn(data)`.
    """
    if d is None or not d.enabled:
        return fn(data)
    shard = shard_of(data, d)
    part = fn(shard)
    part.check_length(len(shard))
    values = gather_rows(torch.from_numpy(np.ascontiguousarray(part.values)), d)
    keys = sorted(part.work)
    work = dict(zip(keys, _reduce([float(part.work[k]) for k in keys], d, tdist.ReduceOp.SUM),
                    strict=True)) if keys else {}
    seconds = _reduce([part.seconds], d, tdist.ReduceOp.MAX)[0]
    return Scores(values=values.numpy(), name=part.name, higher_is=part.higher_is,
                  seconds=seconds, work=work, meta={**part.meta, "ranks": d.world_size})
