"""Per-example difficulty scorers for classification data, and their registry.

Each scorer takes the dataset and a `ScoringSpec` and returns a `Scores` with its direction
(`higher_is`), its wall time (proxy training included) and its work. Proxies are trained with
hasten's own `train()`, so their cost is counted like any other run's. Any data scores: the
model is seen only through `spec.loss_fn(model, batch)` (per-example losses) and
`spec.logits_fn(model, batch)` (logits and labels), both defaulting to `(x, y)` batches with
cross-entropy; `spec.collate_fn` builds batches of any shape (see `hasten.select.proxy`).

    random      uniform noise (the baseline every pruning paper must beat)
    loss        `spec.loss_fn` of a briefly trained proxy                       higher = harder
    el2n        ||softmax(f(x)) - onehot(y)||_2 early in training, averaged over runs
                (Paul, Ganguli, Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021)
    grand       norm of the full per-example loss gradient over all parameters (same paper)
    entropy     predictive entropy of a briefly trained proxy                   higher = harder
    margin      top-1 minus top-2 probability (uncertainty sampling, as in DeepCore,
                Guo et al. 2022)                                                higher = easier
    prototypes  cosine distance to the nearest k-means centroid of embeddings
                (Sorscher, Geirhos et al., "Beyond neural scaling laws", NeurIPS 2022)
    forgetting, aum   training dynamics, in `hasten.select.dynamics`

`spec.epochs = 0` scores the freshly built model (GraNd at initialisation, or a fixed model).
Under torchrun, proxies train data-parallel (DDP keeps the replicas identical) and the
scoring passes are sharded across ranks; every rank gets the full Scores (see `shard`).

Results: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring costs more
than it saves".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import Dataset

from hasten.core import distributed
from hasten.core.errors import ConfigError, DataError, check_options
from hasten.core.sampling import CollateFn, gather, to_device
from hasten.select.amortise import first_epoch_el2n
from hasten.select.dynamics import (
    DynamicsRecorder,
    aum,
    aum_values,
    forgetting,
    forgetting_counts,
)
from hasten.select.per_example import Scores
from hasten.select.proxy import (
    LossFn,
    Outputs,
    ScoringSpec,
    Work,
    averaged,
    batches,
    el2n_values,
    entropy_values,
    forward_all,
    forward_flops,
    forward_sharded,
    from_outputs,
    label_margins,
    last_linear,
    loss_values,
    losses_sharded,
    margin_values,
    rows,
    split_xy,
    train_proxy,
    xy_cross_entropy,
)
from hasten.select.shard import gather_rows, shard_of

__all__ = [
    "SCORERS", "DynamicsRecorder", "Outputs", "ScoringSpec", "aum", "aum_values", "el2n",
    "el2n_values", "entropy", "entropy_values", "forgetting", "forgetting_counts",
    "forward_all", "forward_flops", "forward_sharded", "grand", "grand_values",
    "label_margins", "last_linear", "loss", "loss_values", "margin", "margin_values",
    "prototype_distances", "prototypes", "random_scores", "score", "train_proxy",
]


# -----------------------------------------------------------------------------
# per-example values that need the model


def grand_values(model: nn.Module, data: Dataset, batch_size: int = 128,
                 loss_fn: LossFn | None = None, collate_fn: CollateFn | None = None
                 ) -> torch.Tensor:
    """||d loss / d theta||_2 over all trainable parameters, per example (GraNd), in fp32.

    Without `loss_fn` (cross-entropy of (x, y) tensor batches) the gradients come from
    torch.func, vmap of grad of a functional call, a batch at a time. With `loss_fn(model,
    batch)` (any task, any batch shape) each example is fetched alone (through `collate_fn`)
    and differentiated with autograd: exact for every model, one backward per example."""
    if loss_fn is not None or collate_fn is not None:
        return _grand_by_example(model, data, loss_fn, collate_fn)

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_one(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, frozen, buffers), (x[None],))
        return F.cross_entropy(out.float(), y[None])

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    norms = []
    try:
        for batch in batches(data, batch_size, device):
            x, y = split_xy(batch)
            grads = per_example(params, x, y)
            sq = sum(g.float().pow(2).flatten(1).sum(1) for g in grads.values())
            norms.append(sq.sqrt().cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms)


def _grand_by_example(model: nn.Module, data: Dataset, loss_fn: LossFn | None,
                      collate_fn: CollateFn | None) -> torch.Tensor:
    fn = loss_fn or xy_cross_entropy
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    norms = torch.empty(len(data))
    try:
        for i in range(len(data)):
            batch = to_device(gather(data, [i], collate_fn), device)
            loss = fn(model, batch).float().sum()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms[i] = sum(float(g.float().pow(2).sum()) for g in grads if g is not None) ** 0.5
    finally:
        model.train(was_training)
    return norms


def prototype_distances(embeddings: torch.Tensor | np.ndarray, k: int,
                        seed: int = 0) -> np.ndarray:
    """Cosine distance of each embedding to its nearest k-means centroid (k-means on the
    unit-normalised embeddings; centroids re-normalised). Far from every prototype = hard."""
    from sklearn.cluster import KMeans

    emb = np.asarray(embeddings, dtype=np.float64)
    if not 1 <= k <= len(emb):
        raise ConfigError(f"prototypes: k must be in [1, {len(emb)}] (the examples), got {k}")
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(unit)  # k-means++ seeding
    centroids = km.cluster_centers_
    centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return np.clip(1.0 - (unit @ centroids.T).max(1), 0.0, 2.0)


# -----------------------------------------------------------------------------
# scorers


def random_scores(data: Dataset, spec: ScoringSpec | None = None, seed: int | None = None
                  ) -> Scores:
    """Uniform random values (seeded): the baseline. Direction is arbitrary ("harder")."""
    seed = seed if seed is not None else (spec.seed if spec is not None else 0)
    values = np.random.default_rng(seed).random(len(data))
    return Scores(values, "random", "harder", work={"examples_forwarded": 0.0,
                                                    "examples_backpropagated": 0.0},
                  meta={"seed": seed})


def loss(data: Dataset, spec: ScoringSpec) -> Scores:
    """`spec.loss_fn` (default cross-entropy) of each example after `spec.epochs` of
    training (high = hard)."""
    return averaged("loss", "harder", data, spec, lambda model: losses_sharded(model, data, spec))


def el2n(data: Dataset, spec: ScoringSpec) -> Scores:
    """EL2N after `spec.epochs` (an early epoch), averaged over `spec.runs` proxies."""
    return averaged("el2n", "harder", data, spec,
                     from_outputs(lambda o: el2n_values(o.logits, o.labels), data, spec))


def entropy(data: Dataset, spec: ScoringSpec) -> Scores:
    """Predictive entropy of a briefly trained proxy (high = uncertain = hard)."""
    return averaged("entropy", "harder", data, spec,
                     from_outputs(lambda o: entropy_values(o.logits), data, spec))


def margin(data: Dataset, spec: ScoringSpec) -> Scores:
    """Top-1 minus top-2 probability of a briefly trained proxy (high = confident = easy)."""
    return averaged("margin", "easier", data, spec,
                     from_outputs(lambda o: margin_values(o.logits), data, spec))


def grand(data: Dataset, spec: ScoringSpec) -> Scores:
    """GraNd: per-example gradient norm after `spec.epochs` (0: at initialisation),
    averaged over runs; scored shard by shard under torchrun. FLOPs are estimated as 3x the
    forward pass."""
    def measure(model: nn.Module) -> tuple[torch.Tensor, Work]:
        d = distributed.init(spec.device)
        values = gather_rows(grand_values(model, shard_of(data, d), spec.batch_size,
                                          spec.loss_fn, spec.collate_fn), d)
        probe = to_device(rows(data, list(range(min(len(data), 8))), spec.collate_fn),
                          next(model.parameters()).device)
        flops = forward_flops(model, probe, spec.losses())
        return values, {"examples_forwarded": len(data), "examples_backpropagated": len(data),
                        "flops": 3 * flops * len(data)}
    return averaged("grand", "harder", data, spec, measure)


def prototypes(data: Dataset, spec: ScoringSpec, k: int | None = None,
               embed: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Scores:
    """Sorscher et al.'s prototype metric: cosine distance to the nearest of k k-means
    centroids (k defaults to the number of classes). Embeddings are the penultimate
    features of a briefly trained proxy (the input of its last nn.Linear, in the forward
    of `spec.logits_fn`), or `embed(x)` of (x, y) data (then nothing is trained and
    `spec.runs` is ignored)."""
    def cluster(emb: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        return prototype_distances(emb, k or int(labels.unique().numel()), spec.seed)

    if embed is None:
        def measure(model: nn.Module) -> tuple[np.ndarray, Work]:
            out, work = forward_sharded(model, data, spec, features=True)
            return cluster(out.features, out.labels), work
        return averaged("prototypes", "harder", data, spec, measure, k=k)
    spec.validate()
    start, d = time.perf_counter(), distributed.init(spec.device)
    feats, labels = [], []
    with torch.no_grad():
        for batch in batches(shard_of(data, d), spec.batch_size, d.device):
            x, y = split_xy(batch)
            feats.append(embed(x).float().flatten(1).cpu())
            labels.append(y.cpu())
    emb = gather_rows(torch.cat(feats), d)
    values = cluster(emb, gather_rows(torch.cat(labels), d))
    return Scores(values, "prototypes", "harder", seconds=time.perf_counter() - start,
                  work={"examples_forwarded": float(len(data)), "examples_backpropagated": 0.0},
                  meta={**spec.meta(), "k": k, "embed": getattr(embed, "__name__", "embed")})


# -----------------------------------------------------------------------------
# registry

SCORERS: dict[str, Callable[..., Scores]] = {
    "random": random_scores, "loss": loss, "el2n": el2n, "grand": grand, "entropy": entropy,
    "margin": margin, "prototypes": prototypes, "forgetting": forgetting, "aum": aum,
    "el2n-first-epoch": first_epoch_el2n,
}


def score(name: str, data: Dataset, spec: ScoringSpec, **kw: Any) -> Scores:
    """Score `data` with the scorer `name` (extra options, e.g. prototypes' k, go in `kw`)."""
    if name not in SCORERS:
        raise ConfigError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}")
    if len(data) == 0:
        raise DataError("cannot score an empty dataset")
    fn = SCORERS[name]
    check_options("scorer", name, fn, kw, fixed=2)
    return fn(data, spec, **kw)
