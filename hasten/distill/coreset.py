"""Coreset baselines for dataset distillation: random real subsets, herding and k-center.

The DC paper and its successors compare distilled sets with ipc *real* images per class
chosen at random, by herding (Welling, ICML 2009: greedily keep the running mean of the
chosen embeddings close to the class mean) or by greedy k-center (Sener & Savarese, ICLR
2018: repeatedly take the example farthest from those chosen). Each returns a `SyntheticSet`
so the same evaluator scores it. `embed` maps a batch of images to (n, d) features; the
default is the raw pixels, flattened.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hasten.core.errors import ConfigError
from hasten.data.vision import VisionData
from hasten.distill.formation import check_factor, encode
from hasten.distill.methods import check_ipc, class_tensors
from hasten.distill.synthetic import SyntheticSet

Embed = Callable[[torch.Tensor], torch.Tensor]


def _features(x: torch.Tensor, embed: Embed | None, batch: int = 1024) -> torch.Tensor:
    if embed is None:
        return x.flatten(1).double()
    with torch.no_grad():
        return torch.cat([embed(x[i:i + batch]).flatten(1) for i in range(0, len(x), batch)]
                         ).double()


def _result(data: VisionData, picks: list[torch.Tensor], ipc: int, method: str,
            **meta: object) -> SyntheticSet:
    class_x = class_tensors(data)
    images = torch.cat([class_x[c][p] for c, p in enumerate(picks)])
    labels = torch.arange(data.num_classes).repeat_interleave(ipc)
    return SyntheticSet(images, labels, {"method": method, "dataset": data.name, "ipc": ipc,
                                         "num_classes": data.num_classes,
                                         "input_shape": list(data.input_shape), **meta})


def random_subset(data: VisionData, ipc: int, seed: int = 0) -> SyntheticSet:
    """ipc distinct real train images per class, drawn uniformly (the papers' "Random")."""
    check_ipc(data, ipc)
    g = torch.Generator().manual_seed(int(seed))
    picks = [torch.randperm(len(xc), generator=g)[:ipc] for xc in class_tensors(data)]
    return _result(data, picks, ipc, "random", seed=seed)


def herding(data: VisionData, ipc: int, embed: Embed | None = None) -> SyntheticSet:
    """Herding per class: each pick minimises ||class mean - mean of the picks so far||."""
    check_ipc(data, ipc)
    picks = []
    for xc in class_tensors(data):
        f = _features(xc, embed)
        mu = f.mean(0)
        chosen: list[int] = []
        total = torch.zeros_like(mu)
        available = torch.ones(len(f), dtype=torch.bool)
        for k in range(ipc):
            cand = ((mu - (total + f) / (k + 1)) ** 2).sum(1)
            cand[~available] = float("inf")
            i = int(cand.argmin())
            chosen.append(i)
            total += f[i]
            available[i] = False
        picks.append(torch.tensor(chosen))
    return _result(data, picks, ipc, "herding")


def k_center(data: VisionData, ipc: int, embed: Embed | None = None) -> SyntheticSet:
    """Greedy k-center per class, started from the example nearest the class mean."""
    check_ipc(data, ipc)
    picks = []
    for xc in class_tensors(data):
        f = _features(xc, embed)
        first = int(((f - f.mean(0)) ** 2).sum(1).argmin())
        chosen = [first]
        dist = ((f - f[first]) ** 2).sum(1)
        for _ in range(ipc - 1):
            i = int(dist.argmax())
            chosen.append(i)
            dist = torch.minimum(dist, ((f - f[i]) ** 2).sum(1))
        picks.append(torch.tensor(chosen))
    return _result(data, picks, ipc, "k-center")


def formed(syn: SyntheticSet, factor: int) -> SyntheticSet:
    """Pack a class-major set of ipc * factor^2 images per class into ipc stored images per
    class, each tiling factor^2 of them downsampled (multi-formation without optimisation:
    IDC's initialisation, "IDC-I"). factor 1 returns `syn`."""
    factor = check_factor(factor, syn.input_shape)
    if factor == 1:
        return syn
    group = factor * factor
    counts = torch.bincount(syn.labels, minlength=syn.num_classes)
    if bool((counts % group).any()):
        raise ConfigError(f"factor {factor} packs {group} images per stored image; the set "
                          f"has {counts.tolist()} images per class")
    order = torch.argsort(syn.labels, stable=True)
    labels = syn.labels[order][::group]
    meta = {**syn.meta, "factor": factor, "ipc": int(counts.max()) // group}
    return SyntheticSet(encode(syn.images[order], factor), labels, meta)
