"""What shapes a training run: `TrainConfig`, one dataclass whose every field carries the
reason for its default (`hasten.core.config.option`). `hasten.core.trainer` re-exports it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hasten.core.budget import Budget
from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.guards import NONFINITE_ACTIONS, check_nonfinite_action
from hasten.core.schedules import batch_multiple, make_schedule


@dataclass
class TrainConfig:
    """Everything that shapes a run. Fractions are of the budget (0..1)."""

    budget: str = option("1000steps", "a small fixed default; every task sets its own")
    lr: float = option(1e-3, "AdamW's usual peak for small models")
    schedule: str = option("cosine", "decays to its final value at the end of any budget")
    schedule_params: dict[str, float] = option({}, "the schedule's own defaults")
    micro_batch: int = option(128, "examples per forward/backward per rank; fits CPU caches")
    batch_start: int = option(1, "micro-batches per step at the start of the ramp")
    batch_end: int = option(1, "... and at its end (gradient accumulation); 1: no ramp")
    batch_ramp: float = option(0.0, "fraction of the budget over which the batch ramps")
    optimizer: str = option("adamw", "robust on every task here", choices=("adamw", "sgd"))
    betas: tuple[float, float] = option((0.9, 0.999), "torch's AdamW defaults")
    eps: float = option(1e-8, "AdamW's epsilon (Cramming uses 1e-12)")
    momentum: float = option(0.9, "sgd only: the usual heavy-ball value")
    weight_decay: float = option(0.0, "off unless a task sets it; never on norms and biases")
    clip: float | None = option(None, "gradient-norm clipping only where a recipe needs it")
    precision: str = option("fp32", "exact everywhere; bf16 autocast is opt-in",
                            choices=("fp32", "bf16"))
    compile: bool = option(False, "compiling costs time up front; pays off on long runs")
    fused: bool | None = option(None, "fused AdamW kernel; None lets torch choose")
    foreach: bool | None = option(None, "multi-tensor AdamW; None lets torch choose")
    channels_last: bool = option(False, "NHWC for 4-d inputs and the model; helps GPUs")
    eval_every: float = option(0.1, "ten points on the learning curve")
    eval_share: float = option(0.15, "with a seconds budget, evaluations take at most this "
                               "share of it (the first is timed; the final always runs)")
    metric: str = option("accuracy", "the metric evaluate() returns that the run reports")
    higher_is_better: bool = option(True, "accuracy-like metrics")
    seed: int = option(0, "runs repeat exactly for a seed")
    out_dir: str | None = option(None, "nothing is written unless a folder is given")
    checkpoint_every: int = option(0, "optimizer steps between checkpoints (0: only when a "
                                   "stop signal or a non-finite loss ends the run)")
    keep_checkpoints: int = option(2, "the newest and one to fall back on if it is damaged")
    resume: bool = option(False, "continue from out_dir's newest valid checkpoint")
    allow_budget_change: bool = option(False, "a changed budget reshapes the schedule "
                                       "mid-run, so a resume refuses it unless asked")
    on_nonfinite: str = option("stop", "a NaN/Inf loss usually means a bad setting: stop "
                               "without applying it (skip: drop the update; rollback: "
                               "reload the last checkpoint at half the LR, once)",
                               choices=NONFINITE_ACTIONS)
    log_every: int = option(50, "optimizer steps between train rows in metrics.jsonl")
    progress_every: float = option(30.0, "seconds between plain progress lines when stdout "
                                   "is not a terminal (0: none)")
    quiet: bool = option(False, "no progress bar or progress lines")
    tensorboard: bool = option(True, "event files next to metrics.jsonl")
    device: str | None = option(None, "cuda if available, else cpu")
    collective_timeout: float | None = option(None, "seconds a rank waits for a dead or hung "
                                              "peer (None: 60 on gloo, 600 on NCCL)")
    memory_check: bool = option(True, "refuse a micro-batch that clearly cannot fit, before "
                                "allocating it")

    def validate(self) -> None:
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.micro_batch < 1:
            raise ConfigError(f"micro_batch must be >= 1, got {self.micro_batch}")
        if not 0 < self.eval_every <= 1:
            raise ConfigError(f"eval_every must be in (0, 1], got {self.eval_every}")
        if not 0 < self.eval_share <= 1:
            raise ConfigError(f"eval_share must be in (0, 1], got {self.eval_share}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("eps", "momentum", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ConfigError(f"log_every must be >= 1, got {self.log_every}")
        if self.clip is not None and self.clip <= 0:
            raise ConfigError(f"clip must be positive, got {self.clip}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.resume and not self.out_dir:
            raise ConfigError("resume needs an output folder (out_dir)")
        check_nonfinite_action(self.on_nonfinite)
        if self.on_nonfinite == "rollback" and not (self.out_dir and self.checkpoint_every):
            raise ConfigError("on_nonfinite=rollback reloads the last checkpoint: it needs "
                              "out_dir and checkpoint_every > 0")
        if self.progress_every < 0:
            raise ConfigError(f"progress_every must be >= 0, got {self.progress_every}")
        if self.collective_timeout is not None and not self.collective_timeout > 0:
            raise ConfigError(f"collective_timeout must be positive, got "
                              f"{self.collective_timeout}")
        Budget(self.budget)
        make_schedule(self.schedule, **self.schedule_params)
        batch_multiple(0.0, self.batch_start, self.batch_end, self.batch_ramp)
