"""Step levers: each makes a unit of work cheaper (or shapes the schedule) by setting
`TrainConfig` fields, and needs nothing from a task.

  bf16            bf16 autocast for forward, backward and evaluation (weights and the
                  optimizer stay fp32; Micikevicius et al. 2018 for mixed precision)
  compile         torch.compile; the trainer books the first step (mostly compiling) apart
                  from training, in the ledger's "compile" phase
  channels-last   NHWC memory format for 4-d inputs and the model
  micro-batch     examples per forward/backward per process
  adamw           AdamW's kernel: fused, foreach (multi-tensor) or for-loop
  schedule        the LR schedule's shape and its parameters, a function of budget progress

None departs from a paper: they are torch's own switches and hasten's schedules. Their
measured costs per unit of work are in docs/benchmarks.md ("Step options").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hasten.core.config import option
from hasten.core.errors import ConfigError
from hasten.core.schedules import make_schedule
from hasten.core.train_config import TrainConfig
from hasten.levers.base import Lever, register_lever


def _set(config: TrainConfig, **fields: Any) -> dict[str, Any]:
    for key, value in fields.items():
        setattr(config, key, value)
    return fields


@register_lever
class Bf16(Lever):
    """bf16 autocast (weights and optimizer stay fp32)."""

    name = "bf16"

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        return _set(config, precision="bf16")


@register_lever
class Compile(Lever):
    """torch.compile of the model; compilation is booked apart from training."""

    name = "compile"

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        return _set(config, compile=True)


@register_lever
class ChannelsLast(Lever):
    """NHWC memory format for 4-d inputs and the model (other inputs are left as they are)."""

    name = "channels-last"

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        return _set(config, channels_last=True)


@dataclass
class MicroBatchSettings:
    size: int = option(64, "a common CPU size; the task's own is the baseline's")


@register_lever
class MicroBatch(Lever):
    """Examples per forward/backward per process (the LR stays the task's)."""

    name = "micro-batch"
    Settings = MicroBatchSettings

    def check(self) -> None:
        if self.settings.size < 1:
            raise ConfigError(f"micro-batch: size must be >= 1, got {self.settings.size}")

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        return _set(config, micro_batch=self.settings.size)


@dataclass
class AdamWSettings:
    impl: str = option("fused", "one kernel for the whole update: the fastest where torch has "
                       "it", choices=("fused", "foreach", "for-loop"))


@register_lever
class AdamWKernel(Lever):
    """AdamW's implementation: fused, foreach (multi-tensor) or for-loop."""

    name = "adamw"
    Settings = AdamWSettings

    def check(self) -> None:
        if self.settings.impl not in ("fused", "foreach", "for-loop"):
            raise ConfigError(f"adamw: impl must be fused, foreach or for-loop, got "
                              f"{self.settings.impl!r}")

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        impl = self.settings.impl
        return _set(config, fused=impl == "fused", foreach=impl == "foreach")


@dataclass
class ScheduleSettings:
    shape: str = option("cosine", "decays to its end at any budget")
    warmup: float | None = option(None, "None: the shape's own (a fraction of the budget)")
    peak_at: float | None = option(None, "one-cycle and triangle: None: the shape's own")
    start: float | None = option(None, "one-cycle and triangle: None: the shape's own start, "
                                 "as a fraction of the peak")
    final: float | None = option(None, "None: the shape's own end, as a fraction of the peak")


@register_lever
class Schedule(Lever):
    """The LR schedule's shape over the budget (`hasten.core.schedules`)."""

    name = "schedule"
    Settings = ScheduleSettings

    def params(self) -> dict[str, float]:
        s = self.settings
        return {k: v for k, v in (("warmup", s.warmup), ("peak_at", s.peak_at),
                                  ("start", s.start), ("final", s.final)) if v is not None}

    def check(self) -> None:
        make_schedule(self.settings.shape, **self.params())

    def configure(self, config: TrainConfig) -> dict[str, Any]:
        return _set(config, schedule=self.settings.shape, schedule_params=self.params())
