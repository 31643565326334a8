"""Per-example difficulty scorers for classification data (map-style `(x, y)` datasets).

Each scorer takes the dataset and a `ScoringSpec` and returns a `Scores` with its direction
(`higher_is`), its wall time (proxy training included) and its work. Proxies are trained with
hasten's own `train()`, so their cost is counted like any other run's.

    random      uniform noise (the baseline every pruning paper must beat)
    loss        cross-entropy of a briefly trained proxy                        higher = harder
    el2n        ||softmax(f(x)) - onehot(y)||_2 early in training, averaged over runs
                (Paul, Ganguli, Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021)
    grand       norm of the full per-example loss gradient over all parameters (same paper)
    entropy     predictive entropy of a briefly trained proxy                   higher = harder
    margin      top-1 minus top-2 probability (uncertainty sampling, as in DeepCore,
                Guo et al. 2022)                                                higher = easier
    prototypes  cosine distance to the nearest k-means centroid of embeddings
                (Sorscher, Geirhos et al., "Beyond neural scaling laws", NeurIPS 2022)
    forgetting  forgetting events during training; never-learned examples rank hardest
                (Toneva et al., "An Empirical Study of Example Forgetting", ICLR 2019)
    aum         area under the margin: mean over training of the assigned logit minus the
                largest other logit (Pleiss et al., NeurIPS 2020)                higher = easier

Evidence (`hasten bench prune --seeds 3`, Fashion-MNIST MLP, docs/benchmarks.md): keeping
the hardest half by EL2N loses 3.4 points (86.6 vs 89.95%), but coverage sampling over EL2N
strata (selectors.ccs) keeps 89.89%; scoring took 2.8-5.4 s, 30-55% of a full run.

`spec.epochs = 0` scores the freshly built model (GraNd at initialisation, or a fixed model).
Under torchrun, proxies train data-parallel (DDP keeps the replicas identical) and the
scoring passes are sharded across ranks; every rank gets the full Scores (see `shard`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from hasten import distributed
from hasten.data.sampling import gather
from hasten.errors import ConfigError, DataError, check_options
from hasten.flops import flop_counter
from hasten.select.scores import Direction, Scores
from hasten.select.shard import gather_rows, shard_of
from hasten.trainer import Hook, TrainConfig, TrainState, precision_context, train

Work = dict[str, float]


@dataclass
class ScoringSpec:
    """How scorers build, train and run their proxy model."""

    make_model: Callable[[], nn.Module]  # a fresh (untrained) model, logits [B, classes]
    epochs: float = 1.0  # proxy training length; 0 scores the model as built
    lr: float = 1e-3
    batch_size: int = 128  # global batch, for training and for scoring passes
    weight_decay: float = 0.0
    seed: int = 0  # run r uses seed + r
    device: str | None = None  # None: CUDA when available
    precision: str = "fp32"  # fp32 | bf16 (autocast; GraNd always runs in fp32)
    runs: int = 1  # independent proxies whose scores are averaged
    quiet: bool = True
    train_options: dict[str, Any] = field(default_factory=dict)  # more TrainConfig fields

    def validate(self) -> None:
        """A ConfigError naming the first bad field."""
        if not self.epochs >= 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.runs < 1:
            raise ConfigError(f"runs must be >= 1, got {self.runs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")

    def meta(self) -> dict[str, object]:
        """The settings that shaped the scores, for provenance."""
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
                "weight_decay": self.weight_decay, "seed": self.seed, "runs": self.runs,
                "precision": self.precision}


# -----------------------------------------------------------------------------
# forward passes over a dataset


@dataclass
class Outputs:
    """A model's outputs over a dataset, in dataset order, on the CPU."""

    logits: torch.Tensor  # float32 [N, C]
    labels: torch.Tensor  # int64 [N]
    features: torch.Tensor | None = None  # float32 [N, D]: input of the last nn.Linear


def _rows(data: Dataset, indices: list[int]) -> Any:
    """Gather a batch; a Subset of a TensorDataset is indexed directly (no per-item collate)."""
    if isinstance(data, Subset) and isinstance(data.dataset, TensorDataset):
        return gather(data.dataset, [data.indices[i] for i in indices])
    return gather(data, indices)


def batches(data: Dataset, batch_size: int, device: torch.device) -> Iterator[tuple[Any, Any]]:
    """(x, y) batches of `data` in order, moved to `device`."""
    for lo in range(0, len(data), batch_size):
        x, y = _rows(data, list(range(lo, min(len(data), lo + batch_size))))
        yield x.to(device), y.to(device)


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's classifier head: its last `nn.Linear` in module order."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise ConfigError("this model has no nn.Linear head to take features from; "
                          "pass embed= to score prototypes")
    return heads[-1]


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one example's forward pass, counted on the batch `x`."""
    counter = flop_counter()
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / max(1, x.shape[0])


@torch.no_grad()
def forward_all(model: nn.Module, data: Dataset, batch_size: int = 512,
                precision: str = "fp32", features: bool = False) -> Outputs:
    """Run `model` over `data` in eval mode without gradients; with `features`, also keep the
    input of the last nn.Linear (the penultimate features) via a forward pre-hook."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels, feats = [], [], []
    handle = None
    if features:
        handle = last_linear(model).register_forward_pre_hook(
            lambda _m, inp: feats.append(inp[0].detach().flatten(1).float().cpu()))
    try:
        for x, y in batches(data, batch_size, device):
            with precision_context(precision, device):
                logits.append(model(x).float().cpu())
            labels.append(y.cpu())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    return Outputs(torch.cat(logits), torch.cat(labels), torch.cat(feats) if features else None)


def forward_sharded(model: nn.Module, data: Dataset, spec: ScoringSpec,
                    features: bool = False) -> tuple[Outputs, Work]:
    """`forward_all` on this rank's shard, gathered into dataset order on every rank, and the
    work of the pass (each example forwarded once, over all ranks)."""
    d = distributed.init(spec.device)
    out = forward_all(model, shard_of(data, d), spec.batch_size, spec.precision, features)
    full = Outputs(gather_rows(out.logits, d), gather_rows(out.labels, d),
                   gather_rows(out.features, d) if features else None)
    x, _ = _rows(data, list(range(min(len(data), 8))))
    flops = forward_flops(model, x.to(next(model.parameters()).device))
    return full, {"examples_forwarded": len(data), "flops": flops * len(data)}


# -----------------------------------------------------------------------------
# per-example values from outputs (pure functions)


def loss_values(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def el2n_values(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """||softmax(logits) - onehot(label)||_2 of each example (EL2N)."""
    p = logits.float().softmax(1)
    return (p - F.one_hot(labels, p.shape[1]).float()).norm(dim=1)


def entropy_values(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy -sum p log p (nats) of each example."""
    logp = logits.float().log_softmax(1)
    return -(logp.exp() * logp).sum(1)


def margin_values(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability of each example (small = uncertain)."""
    top = logits.float().softmax(1).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def label_margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Assigned-class logit minus the largest other logit (the AUM margin; < 0: misclassified)."""
    logits = logits.float()
    assigned = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return assigned - others.max(1).values


def grand_values(model: nn.Module, data: Dataset, batch_size: int = 128) -> torch.Tensor:
    """||d loss(x, y) / d theta||_2 over all trainable parameters, per example (GraNd),
    computed with torch.func (vmap of grad of a functional call), in fp32."""
    from torch.func import functional_call, grad, vmap

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
        for x, y in batches(data, batch_size, device):
            grads = per_example(params, x, y)
            sq = sum(g.float().pow(2).flatten(1).sum(1) for g in grads.values())
            norms.append(sq.sqrt().cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms)


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
# training a proxy


def _cross_entropy(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="none")


def _add(total: Work, more: dict[str, float]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0.0) + float(v)


def train_proxy(data: Dataset, spec: ScoringSpec, seed: int, hooks: list[Hook] | None = None,
                loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
                ) -> tuple[nn.Module, Work]:
    """Build a model with `seed` and train it for `spec.epochs` epochs (an examples budget)
    with hasten's `train()`; returns it (on the run's device) and the work it took.

    Under torchrun the per-rank micro-batch is batch_size // world_size, so the global batch
    (and the trained proxy) matches a one-process run when batch_size divides evenly."""
    torch.manual_seed(seed)
    model = spec.make_model()
    d = distributed.init(spec.device)
    if spec.epochs == 0:
        return model.to(d.device), {}
    examples = max(1, round(spec.epochs * len(data)))
    options = {"schedule": "cosine", "eval_every": 1.0, "log_every": 10**9,
               **spec.train_options}
    cfg = TrainConfig(budget=f"{examples}ex", lr=spec.lr,
                      micro_batch=max(1, spec.batch_size // d.world_size),
                      weight_decay=spec.weight_decay, precision=spec.precision, seed=seed,
                      quiet=spec.quiet, tensorboard=False, device=spec.device, **options)
    result = train(model, data, loss_fn or _cross_entropy, cfg, hooks=hooks or [])
    return model, {k: float(v) for k, v in result.work.items()}


def _averaged(name: str, higher_is: Direction, data: Dataset, spec: ScoringSpec,
              measure: Callable[[nn.Module], tuple[torch.Tensor | np.ndarray, Work]],
              **meta: object) -> Scores:
    """Train `spec.runs` proxies (seeds seed, seed+1, ...), `measure` each, average."""
    spec.validate()
    start, total = time.perf_counter(), np.zeros(len(data))
    work: Work = {"examples_forwarded": 0.0, "examples_backpropagated": 0.0}
    for r in range(spec.runs):
        model, train_work = train_proxy(data, spec, spec.seed + r)
        values, measure_work = measure(model)
        total += np.asarray(values, dtype=np.float64)
        _add(work, train_work)
        _add(work, measure_work)
    return Scores(total / spec.runs, name, higher_is, seconds=time.perf_counter() - start,
                  work=work, meta={**spec.meta(), **meta})


def _from_outputs(fn: Callable[[Outputs], torch.Tensor], data: Dataset, spec: ScoringSpec
                  ) -> Callable[[nn.Module], tuple[torch.Tensor, Work]]:
    """A `measure` for `_averaged`: one (sharded) forward pass, then `fn` of its outputs."""
    def measure(model: nn.Module) -> tuple[torch.Tensor, Work]:
        out, work = forward_sharded(model, data, spec)
        return fn(out), work
    return measure


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
    """Cross-entropy after `spec.epochs` of training (high = hard)."""
    return _averaged("loss", "harder", data, spec,
                     _from_outputs(lambda o: loss_values(o.logits, o.labels), data, spec))


def el2n(data: Dataset, spec: ScoringSpec) -> Scores:
    """EL2N after `spec.epochs` (an early epoch), averaged over `spec.runs` proxies."""
    return _averaged("el2n", "harder", data, spec,
                     _from_outputs(lambda o: el2n_values(o.logits, o.labels), data, spec))


def entropy(data: Dataset, spec: ScoringSpec) -> Scores:
    """Predictive entropy of a briefly trained proxy (high = uncertain = hard)."""
    return _averaged("entropy", "harder", data, spec,
                     _from_outputs(lambda o: entropy_values(o.logits), data, spec))


def margin(data: Dataset, spec: ScoringSpec) -> Scores:
    """Top-1 minus top-2 probability of a briefly trained proxy (high = confident = easy)."""
    return _averaged("margin", "easier", data, spec,
                     _from_outputs(lambda o: margin_values(o.logits), data, spec))


def grand(data: Dataset, spec: ScoringSpec) -> Scores:
    """GraNd: per-example gradient norm after `spec.epochs` (0: at initialisation),
    averaged over runs; scored shard by shard under torchrun. FLOPs are estimated as 3x the
    forward pass."""
    def measure(model: nn.Module) -> tuple[torch.Tensor, Work]:
        d = distributed.init(spec.device)
        values = gather_rows(grand_values(model, shard_of(data, d), spec.batch_size), d)
        x, _ = _rows(data, list(range(min(len(data), 8))))
        flops = forward_flops(model, x.to(next(model.parameters()).device))
        return values, {"examples_forwarded": len(data), "examples_backpropagated": len(data),
                        "flops": 3 * flops * len(data)}
    return _averaged("grand", "harder", data, spec, measure)


def prototypes(data: Dataset, spec: ScoringSpec, k: int | None = None,
               embed: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Scores:
    """Sorscher et al.'s prototype metric: cosine distance to the nearest of k k-means
    centroids (k defaults to the number of classes). Embeddings are the penultimate
    features of a briefly trained proxy, or `embed(x)` (then nothing is trained and
    `spec.runs` is ignored)."""
    def cluster(emb: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        return prototype_distances(emb, k or int(labels.unique().numel()), spec.seed)

    if embed is None:
        def measure(model: nn.Module) -> tuple[np.ndarray, Work]:
            out, work = forward_sharded(model, data, spec, features=True)
            return cluster(out.features, out.labels), work
        return _averaged("prototypes", "harder", data, spec, measure, k=k)
    spec.validate()
    start, d = time.perf_counter(), distributed.init(spec.device)
    feats, labels = [], []
    with torch.no_grad():
        for x, y in batches(shard_of(data, d), spec.batch_size, d.device):
            feats.append(embed(x).float().flatten(1).cpu())
            labels.append(y.cpu())
    emb = gather_rows(torch.cat(feats), d)
    values = cluster(emb, gather_rows(torch.cat(labels), d))
    return Scores(values, "prototypes", "harder", seconds=time.perf_counter() - start,
                  work={"examples_forwarded": float(len(data)), "examples_backpropagated": 0.0},
                  meta={**spec.meta(), "k": k, "embed": getattr(embed, "__name__", "embed")})


# -----------------------------------------------------------------------------
# training dynamics: forgetting and AUM


def forgetting_counts(index: np.ndarray, correct: np.ndarray, n: int) -> np.ndarray:
    """Forgetting events per example from presentations listed in time order: an event is a
    presentation classified correctly followed by the next one classified wrongly. Examples
    never classified correctly get the largest presentation count of any example, which is
    above any possible event count (events <= presentations / 2), so they rank hardest, as
    Toneva et al.'s "never learned" examples. Raises DataError if an example was never seen."""
    index, correct = np.asarray(index, dtype=np.int64), np.asarray(correct, dtype=bool)
    order = np.argsort(index, kind="stable")  # per example, still in time order
    idx, ok = index[order], correct[order]
    presented = np.bincount(idx, minlength=n)
    if (presented == 0).any():
        raise DataError(f"{int((presented == 0).sum())} of {n} examples were never presented "
                        "during training; train for at least one epoch")
    forgot = (idx[1:] == idx[:-1]) & ok[:-1] & ~ok[1:]
    counts = np.bincount(idx[1:][forgot], minlength=n).astype(np.float64)
    learned = np.bincount(idx[ok], minlength=n) > 0
    counts[~learned] = float(presented.max())
    return counts


def aum_values(index: np.ndarray, margins: np.ndarray, n: int) -> np.ndarray:
    """Area under the margin: each example's mean margin over its presentations."""
    index = np.asarray(index, dtype=np.int64)
    presented = np.bincount(index, minlength=n)
    if (presented == 0).any():
        raise DataError(f"{int((presented == 0).sum())} of {n} examples were never presented "
                        "during training; train for at least one epoch")
    return np.bincount(index, weights=np.asarray(margins, np.float64), minlength=n) / presented


class DynamicsRecorder(Hook):
    """Records, for every training presentation, whether the example was classified correctly
    and its margin (from the training forward itself: no extra passes). Use `loss_fn` as the
    run's loss and the recorder as a hook; `events(dist)` gathers them from all ranks.
    It maps outcomes to `state.batch_indices`, so no hook may change the batch's examples."""

    def __init__(self) -> None:
        self._rows: list[torch.Tensor] = []
        self._pending: tuple[int, int, list[int]] | None = None
        self._seq = 0

    def on_batch(self, state: TrainState, batch: Any) -> Any:
        self._pending = (self._seq, state.dist.rank, list(state.batch_indices))
        self._seq += 1
        return batch

    def record(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Log one micro-batch (ignored outside training, e.g. the trainer's FLOP probe)."""
        if self._pending is None:
            return
        seq, rank, indices = self._pending
        self._pending = None
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        n = len(indices)
        self._rows.append(torch.stack([
            torch.tensor(indices, dtype=torch.float64), torch.full((n,), float(seq)),
            torch.full((n,), float(rank)), torch.arange(n, dtype=torch.float64),
            (logits.argmax(1) == labels).double(), label_margins(logits, labels).double()], 1))

    def loss_fn(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy per example that also records the batch's outcomes."""
        x, y = batch
        logits = model(x)
        self.record(logits, y)
        return F.cross_entropy(logits, y, reduction="none")

    def events(self, d: distributed.Dist | None = None) -> np.ndarray:
        """[index, seq, rank, position, correct, margin] rows of all ranks, in time order."""
        rows = torch.cat(self._rows) if self._rows else torch.zeros((0, 6), dtype=torch.float64)
        rows = gather_rows(rows, d) if d is not None else rows
        ev = rows.numpy()
        return ev[np.lexsort((ev[:, 3], ev[:, 2], ev[:, 1]))]


def _dynamics(name: str, higher_is: Direction, data: Dataset, spec: ScoringSpec,
              reduce: Callable[[np.ndarray, int], np.ndarray]) -> Scores:
    """Train `spec.runs` proxies with a DynamicsRecorder and reduce its events per example."""
    spec.validate()
    if spec.epochs < 1:
        raise ConfigError(f"{name} needs every example seen during training: epochs must be "
                          f">= 1, got {spec.epochs}")
    start, total = time.perf_counter(), np.zeros(len(data))
    work: Work = {"examples_forwarded": 0.0, "examples_backpropagated": 0.0}
    for r in range(spec.runs):
        rec = DynamicsRecorder()
        _, train_work = train_proxy(data, spec, spec.seed + r, hooks=[rec], loss_fn=rec.loss_fn)
        total += reduce(rec.events(distributed.init(spec.device)), len(data))
        _add(work, train_work)
    return Scores(total / spec.runs, name, higher_is, seconds=time.perf_counter() - start,
                  work=work, meta=spec.meta())


def forgetting(data: Dataset, spec: ScoringSpec) -> Scores:
    """Forgetting events over `spec.epochs` of training (high = hard)."""
    return _dynamics("forgetting", "harder", data, spec,
                     lambda ev, n: forgetting_counts(ev[:, 0], ev[:, 4] > 0.5, n))


def aum(data: Dataset, spec: ScoringSpec) -> Scores:
    """Area under the margin over `spec.epochs` of training (low = hard or mislabelled)."""
    return _dynamics("aum", "easier", data, spec, lambda ev, n: aum_values(ev[:, 0], ev[:, 5], n))


# -----------------------------------------------------------------------------
# registry

SCORERS: dict[str, Callable[..., Scores]] = {
    "random": random_scores, "loss": loss, "el2n": el2n, "grand": grand, "entropy": entropy,
    "margin": margin, "prototypes": prototypes, "forgetting": forgetting, "aum": aum,
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
