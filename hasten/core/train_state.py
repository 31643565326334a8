"""What a training run passes around: its state (what hooks see), the hook protocol, and
the result it returns. `hasten.core.trainer` re-exports all of it; see that module for the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from hasten.core import distributed
from hasten.core.budget import Budget
from hasten.core.sampling import CollateFn
from hasten.core.train_config import TrainConfig

LossFn = Callable[[nn.Module, Any], torch.Tensor]
EvalFn = Callable[..., dict[str, float]]  # evaluate(model) or evaluate(model, shard=(r, w))

# RunResult.stopped: why a run ended. "budget": it spent its budget (finished);
# "sigterm" / "sigint": a stop signal, after a checkpoint when there is an output folder;
# "nonfinite": its loss or gradients became NaN/Inf (see TrainConfig.on_nonfinite).
STOP_REASONS = ("budget", "sigterm", "sigint", "nonfinite")


def precision_context(precision: str, device: torch.device) -> Any:
    """`precision` as a context: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def autocast_for(config: TrainConfig, device: torch.device) -> Any:
    """The run's precision as a context. Training, evaluation and methods' scoring passes
    all run under it."""
    return precision_context(config.precision, device)


@dataclass
class TrainState:
    """What hooks see. `model` is what the loss is computed with (DDP-wrapped or compiled);
    `raw_model` is the plain module, for side computations such as scoring forwards."""

    model: nn.Module
    raw_model: nn.Module
    optimizer: torch.optim.Optimizer
    budget: Budget
    config: TrainConfig
    dist: distributed.Dist
    loss_fn: LossFn
    train_data: Dataset
    step: int = 0
    lr: float = 0.0
    progress: float = 0.0
    last_loss: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[list[Any]] = field(default_factory=list)
    batch_indices: list[int] = field(default_factory=list)  # dataset indices of the batch
    # FLOPs of one unit's forward pass, and of its forward + backward, measured once on the
    # first batch. The unit is a token when the run counts tokens (a `tokens_fn`), so
    # variable-length batches cost what their tokens cost; else it is an example.
    flops_forward: float = 0.0
    flops_train: float = 0.0
    flops_unit: str = "example"
    # This rank's work in the current step, added to the counters (summed over ranks) when
    # the step ends: [examples forwarded only, examples forwarded and backpropagated, tokens,
    # FLOPs of every pass].
    pending: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    # how dataset items become a batch (None: tensors indexed directly, else torch's
    # default_collate); hooks that rebuild batches from items use it too
    collate_fn: CollateFn | None = None
    lr_scale: float = 1.0  # halved by each rollback after a non-finite step
    skipped_steps: int = 0  # steps whose update was not applied (non-finite loss or grads)
    rollbacks: int = 0
    resumed_from: int | None = None  # the checkpoint step this process continued from
    wall_before: float = 0.0  # wall seconds of the run's earlier processes (resumes)

    def units(self, examples: int, tokens: int) -> int:
        """How many FLOP units a pass over `examples` holding `tokens` tokens is."""
        return tokens if self.flops_unit == "token" else examples

    def count_forward(self, examples: int, tokens: int = 0, flops: float | None = None) -> None:
        """Record a forward-only pass on this rank (e.g. a selection method's scoring pass).
        Its FLOPs default to the model's own forward (pass `tokens` when the run counts
        them); `flops` gives a proxy's FLOPs per example instead."""
        self.pending[0] += examples
        self.pending[2] += tokens
        self.pending[3] += (examples * flops if flops is not None
                            else self.units(examples, tokens) * self.flops_forward)

    def _commit_work(self) -> None:
        """Add this step's work of every rank to the counters, so all ranks agree on them."""
        t = torch.tensor(self.pending, dtype=torch.float64, device=self.dist.device)
        distributed.all_reduce(self.dist, t, "sum", doing="a step")
        fwd_only, backprop, tokens, flops = t.tolist()
        work = self.budget.work
        work.examples_forwarded += int(fwd_only + backprop)
        work.examples_backpropagated += int(backprop)
        work.tokens += int(tokens)
        work.flops += flops
        work.steps += 1
        self.pending = [0.0, 0.0, 0.0, 0.0]


class Hook:
    """Override what a method needs; every call has a no-op default.

    on_start(state)            once, after set-up and any resume, before the first step.
    on_batch(state, batch)     before a micro-batch's forward: return the batch to train on
                               (possibly a subset or a new batch), or None to skip it and
                               draw another (e.g. while a selection queue fills up). A hook
                               that changes which examples the batch holds sets
                               `state.batch_indices` to the dataset indices of its rows.
    on_loss(state, batch, losses)  after the forward: return the per-example losses
                               (shape [B]) to average, e.g. reweighted; read them to keep
                               per-example statistics keyed by `state.batch_indices`.
    on_step_end(state)         after each optimizer step.
    on_eval(state, metrics)    after each evaluation.
    state_dict / load_state_dict   saved in and restored from checkpoints.
    """

    def on_start(self, state: TrainState) -> None: ...
    def on_batch(self, state: TrainState, batch: Any) -> Any:
        return batch
    def on_loss(self, state: TrainState, batch: Any, losses: torch.Tensor) -> torch.Tensor:
        return losses
    def on_step_end(self, state: TrainState) -> None: ...
    def on_eval(self, state: TrainState, metrics: dict[str, float]) -> None: ...
    def state_dict(self) -> dict[str, Any]:
        return {}
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    """What a finished (or stopped) run returns; `curve` rows are [train s, work, metric].

    `stopped` is one of STOP_REASONS; `hasten.core.guards.EXIT_CODES` maps it to an exit status.
    `seconds` holds the planned and actual seconds (budget, limit on the whole wall time,
    evaluation allowance; train, eval, checkpoint, setup, compile, wall), `evaluations` the
    evaluations planned, run and skipped, and `peak_memory` the peak resident (and CUDA)
    bytes."""

    metric: str
    final: float | None
    metrics: dict[str, float]
    curve: list[list[Any]]
    work: dict[str, float]
    ledger: dict[str, float]
    steps: int
    stopped: str  # one of STOP_REASONS
    config: dict[str, Any]
    skipped_steps: int = 0
    rollbacks: int = 0
    resumed_from: int | None = None
    seconds: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)
    peak_memory: dict[str, int] = field(default_factory=dict)
    levers: dict[str, Any] = field(default_factory=dict)  # each lever's costs, when any

    @property
    def train_seconds(self) -> float:
        return self.ledger["train"]

    def record(self) -> dict[str, Any]:
        """The fields a result file should carry beyond the harness's own (JSON-ready)."""
        return {"stopped": self.stopped, "skipped_steps": self.skipped_steps,
                "rollbacks": self.rollbacks, "resumed_from": self.resumed_from,
                "seconds": dict(self.seconds), "evaluations": dict(self.evaluations),
                "peak_memory": dict(self.peak_memory),
                **({"levers": dict(self.levers)} if self.levers else {})}
