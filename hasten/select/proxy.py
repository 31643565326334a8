"""What the per-example scorers share: how to build, train and run a proxy model on any data.

The scorers themselves are in `hasten.select.scorers` (registry, loss, EL2N, GraNd, entropy,
margin, prototypes) and `hasten.select.dynamics` (forgetting, AUM). This module holds their
common parts: the `ScoringSpec`, forward passes over a dataset in order (sharded under
torchrun), proxy training with hasten's own `train()`, and per-example values computed from
logits (pure functions).

Any task scores: a scorer sees the model only through two functions of `(model, batch)`,
like hasten's trainer. `spec.loss_fn` returns per-example losses (shape [B]); it trains the
proxy and gives the `loss` and GraNd scores. `spec.logits_fn` returns (logits [B, C],
labels [B]) for the scorers defined on class probabilities (EL2N, entropy, margin,
prototypes, forgetting, AUM). Both default to `(x, y)` batches with cross-entropy, and
`spec.collate_fn` builds batches of any shape (e.g. padded text).

Where it is shown: docs/benchmarks.md, "Static pruning: keep 0.5 matches full data but scoring
costs more than it saves".
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

from hasten.core import distributed
from hasten.core.errors import ConfigError
from hasten.core.flops import flop_counter
from hasten.core.sampling import CollateFn, batch_size, gather, to_device
from hasten.core.trainer import Hook, TrainConfig, precision_context, train
from hasten.select.per_example import Direction, Scores
from hasten.select.shard import gather_rows, shard_of

Work = dict[str, float]
LossFn = Callable[[nn.Module, Any], torch.Tensor]
LogitsFn = Callable[[nn.Module, Any], tuple[torch.Tensor, torch.Tensor]]


def split_xy(batch: Any) -> tuple[Any, torch.Tensor]:
    """(inputs, labels) of an (x, y) batch; a ConfigError for any other batch shape."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError(f"a {type(batch).__name__} batch is not (x, y): give the ScoringSpec a "
                      "loss_fn and a logits_fn for this data")


def xy_logits(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The default `logits_fn`: (model(x), y) of an (x, y) batch."""
    x, y = split_xy(batch)
    return model(x), y


def xy_cross_entropy(model: nn.Module, batch: Any) -> torch.Tensor:
    """The default `loss_fn`: cross-entropy of each example of an (x, y) batch."""
    logits, y = xy_logits(model, batch)
    return F.cross_entropy(logits, y, reduction="none")


@dataclass
class ScoringSpec:
    """How scorers build, train and run their proxy model."""

    make_model: Callable[[], nn.Module]  # a fresh (untrained) model
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
    # (model, batch) -> per-example losses [B]; None: cross-entropy of (x, y) batches
    loss_fn: LossFn | None = None
    # (model, batch) -> (logits [B, C], labels [B]); None: (model(x), y) of (x, y) batches
    logits_fn: LogitsFn | None = None
    collate_fn: CollateFn | None = None  # dataset items -> batch (None: tensors / default)

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

    def losses(self) -> LossFn:
        return self.loss_fn or xy_cross_entropy

    def logits(self) -> LogitsFn:
        return self.logits_fn or xy_logits

    def meta(self) -> dict[str, object]:
        """The settings that shaped the scores, for provenance."""
        out: dict[str, object] = {
            "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
            "weight_decay": self.weight_decay, "seed": self.seed, "runs": self.runs,
            "precision": self.precision}
        for key in ("loss_fn", "logits_fn"):
            fn = getattr(self, key)
            if fn is not None:
                out[key] = getattr(fn, "__name__", type(fn).__name__)
        return out


# -----------------------------------------------------------------------------
# forward passes over a dataset


@dataclass
class Outputs:
    """A model's outputs over a dataset, in dataset order, on the CPU."""

    logits: torch.Tensor  # float32 [N, C]
    labels: torch.Tensor  # int64 [N]
    features: torch.Tensor | None = None  # float32 [N, D]: input of the last nn.Linear


def rows(data: Dataset, indices: list[int], collate_fn: CollateFn | None = None) -> Any:
    """Gather a batch; a Subset of a TensorDataset is indexed directly (no per-item collate)."""
    if collate_fn is None and isinstance(data, Subset) and isinstance(data.dataset,
                                                                      TensorDataset):
        return gather(data.dataset, [data.indices[i] for i in indices])
    return gather(data, indices, collate_fn)


def batches(data: Dataset, batch_size: int, device: torch.device,
            collate_fn: CollateFn | None = None) -> Iterator[Any]:
    """The batches of `data` in order, moved to `device`."""
    for lo in range(0, len(data), batch_size):
        yield to_device(rows(data, list(range(lo, min(len(data), lo + batch_size))),
                            collate_fn), device)


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's classifier head: its last `nn.Linear` in module order."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise ConfigError("this model has no nn.Linear head to take features from; "
                          "pass embed= to score prototypes")
    return heads[-1]


def forward_flops(model: nn.Module, batch: Any, fn: Callable[[nn.Module, Any], Any] | None = None
                  ) -> float:
    """FLOPs of one example's forward pass, counted on `batch`: `fn(model, batch)`, or
    `model(batch)` for a tensor batch when `fn` is None."""
    counter = flop_counter()
    with torch.no_grad(), counter:
        fn(model, batch) if fn is not None else model(batch)
    return counter.get_total_flops() / max(1, batch_size(batch))


@torch.no_grad()
def forward_all(model: nn.Module, data: Dataset, batch_size: int = 512,
                precision: str = "fp32", features: bool = False,
                logits_fn: LogitsFn | None = None, collate_fn: CollateFn | None = None
                ) -> Outputs:
    """Run `model` over `data` in eval mode without gradients, keeping `logits_fn`'s logits and
    labels; with `features`, also the input of the last nn.Linear (the penultimate features)
    via a forward pre-hook."""
    device = next(model.parameters()).device
    fn = logits_fn or xy_logits
    was_training = model.training
    model.eval()
    logits, labels, feats = [], [], []
    handle = None
    if features:
        handle = last_linear(model).register_forward_pre_hook(
            lambda _m, inp: feats.append(inp[0].detach().flatten(1).float().cpu()))
    try:
        for batch in batches(data, batch_size, device, collate_fn):
            with precision_context(precision, device):
                out, y = fn(model, batch)
            logits.append(out.float().cpu())
            labels.append(y.cpu())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    return Outputs(torch.cat(logits), torch.cat(labels), torch.cat(feats) if features else None)


def _probe_flops(model: nn.Module, data: Dataset, spec: ScoringSpec,
                 fn: Callable[[nn.Module, Any], Any]) -> float:
    probe = to_device(rows(data, list(range(min(len(data), 8))), spec.collate_fn),
                      next(model.parameters()).device)
    return forward_flops(model, probe, fn)


def forward_sharded(model: nn.Module, data: Dataset, spec: ScoringSpec,
                    features: bool = False) -> tuple[Outputs, Work]:
    """`forward_all` on this rank's shard, gathered into dataset order on every rank, and the
    work of the pass (each example forwarded once, over all ranks)."""
    d = distributed.init(spec.device)
    out = forward_all(model, shard_of(data, d), spec.batch_size, spec.precision, features,
                      spec.logits_fn, spec.collate_fn)
    full = Outputs(gather_rows(out.logits, d), gather_rows(out.labels, d),
                   gather_rows(out.features, d) if features else None)
    flops = _probe_flops(model, data, spec, spec.logits())
    return full, {"examples_forwarded": len(data), "flops": flops * len(data)}


@torch.no_grad()
def losses_sharded(model: nn.Module, data: Dataset, spec: ScoringSpec
                   ) -> tuple[torch.Tensor, Work]:
    """`spec.loss_fn` of every example (eval mode, no gradients), this rank's shard scored and
    gathered into dataset order on every rank, and the work of the pass."""
    d = distributed.init(spec.device)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    try:
        for batch in batches(shard_of(data, d), spec.batch_size, device, spec.collate_fn):
            with precision_context(spec.precision, device):
                parts.append(spec.losses()(model, batch).float().cpu())
    finally:
        model.train(was_training)
    values = gather_rows(torch.cat(parts) if parts else torch.zeros(0), d)
    flops = _probe_flops(model, data, spec, spec.losses())
    return values, {"examples_forwarded": len(data), "flops": flops * len(data)}


# -----------------------------------------------------------------------------
# per-example values from logits (pure functions)


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


# -----------------------------------------------------------------------------
# training a proxy


def add_work(total: Work, more: dict[str, float]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0.0) + float(v)


def train_proxy(data: Dataset, spec: ScoringSpec, seed: int, hooks: list[Hook] | None = None,
                loss_fn: LossFn | None = None) -> tuple[nn.Module, Work]:
    """Build a model with `seed` and train it for `spec.epochs` epochs (an examples budget)
    with hasten's `train()` on `loss_fn` (default `spec.loss_fn`); returns it (on the run's
    device) and the work it took.

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
    result = train(model, data, loss_fn or spec.losses(), cfg, hooks=hooks or [],
                   collate_fn=spec.collate_fn)
    return model, {k: float(v) for k, v in result.work.items()}


def averaged(name: str, higher_is: Direction, data: Dataset, spec: ScoringSpec,
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
        add_work(work, train_work)
        add_work(work, measure_work)
    return Scores(total / spec.runs, name, higher_is, seconds=time.perf_counter() - start,
                  work=work, meta={**spec.meta(), **meta})


def from_outputs(fn: Callable[[Outputs], torch.Tensor], data: Dataset, spec: ScoringSpec
                 ) -> Callable[[nn.Module], tuple[torch.Tensor, Work]]:
    """A `measure` for `averaged`: one (sharded) forward pass, then `fn` of its outputs."""
    def measure(model: nn.Module) -> tuple[torch.Tensor, Work]:
        out, work = forward_sharded(model, data, spec)
        return fn(out), work
    return measure
