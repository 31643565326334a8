"""Budgets: how much training a run may spend, and how far through it the run is.

A `Budget` is a limit in one unit: wall-clock seconds of training ("90s", "20m", "24h"),
optimizer steps ("2000steps"), examples ("1e6ex"), tokens ("3e9tok") or estimated FLOPs
("1e15flop"). Every schedule in hasten is a function of `Budget.progress()` in [0, 1], so the
same recipe works for a 5-second smoke test and a day-long run, and a wall-clock budget ends
with the learning rate at its final value (24h-BERT and Cramming both sync the schedule to
the clock; Composer refuses wall-clock durations outright).

The wall clock counts training only. A `Ledger` keeps the seconds of each phase (train, eval,
checkpoint, setup, compile) apart, so evaluation or checkpointing never eat the budget.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from hasten.core.errors import ConfigError

UNITS = ("seconds", "steps", "examples", "tokens", "flops")
# The work counter each non-time unit reads. "examples" counts every example forwarded,
# scoring passes of selection methods included.
COUNTER = {"steps": "steps", "examples": "examples_forwarded", "tokens": "tokens",
           "flops": "flops"}
PHASES = ("train", "eval", "checkpoint", "setup", "compile")

_SUFFIX = {
    "s": ("seconds", 1.0), "sec": ("seconds", 1.0), "m": ("seconds", 60.0),
    "min": ("seconds", 60.0), "h": ("seconds", 3600.0), "d": ("seconds", 86400.0),
    "step": ("steps", 1.0), "steps": ("steps", 1.0), "ba": ("steps", 1.0),
    "ex": ("examples", 1.0), "examples": ("examples", 1.0), "sp": ("examples", 1.0),
    "tok": ("tokens", 1.0), "tokens": ("tokens", 1.0),
    "flop": ("flops", 1.0), "flops": ("flops", 1.0),
}
_PATTERN = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]+)\s*$")


def seconds_spec(seconds: float) -> str:
    """A wall-clock budget string to the millisecond, without trailing zeros (750.0 -> "750s",
    1/3 -> "0.333s")."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def parse_budget(text: str) -> tuple[str, float]:
    """Parse "90s", "20m", "24h", "1.5h", "2000steps", "1e6ex", "3e9tok", "1e15flop".

    Returns (unit, amount) with seconds for time. Raises ConfigError naming the bad text.
    """
    match = _PATTERN.match(str(text))
    suffix = match.group(2).lower() if match else ""
    if not match or suffix not in _SUFFIX:
        raise ConfigError(
            f"cannot parse budget {text!r}: use a number and a unit, e.g. 90s, 20m, 24h, "
            "2000steps, 1e6ex, 3e9tok, 1e15flop"
        )
    unit, scale = _SUFFIX[suffix]
    amount = float(match.group(1)) * scale
    if not amount > 0:
        raise ConfigError(f"budget {text!r} must be positive: a number above 0 and a unit, "
                          "e.g. 90s, 20m, 2000steps")
    if not math.isfinite(amount):
        raise ConfigError(f"budget {text!r} is too large to count")
    if unit == "steps" and amount != math.floor(amount):
        raise ConfigError(f"budget {text!r} counts whole optimizer steps: use a whole number, "
                          f"e.g. {max(1, math.ceil(amount))}steps")
    if unit in ("examples", "tokens") and amount < 1:
        raise ConfigError(f"budget {text!r} is less than one {unit[:-1]}: use at least "
                          f"1{suffix}")
    return unit, amount


@dataclass
class Work:
    """Counters of the work a run did; they make comparisons survive a noisy machine."""

    steps: int = 0
    examples_forwarded: int = 0
    examples_backpropagated: int = 0
    tokens: int = 0
    flops: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Ledger:
    """Seconds spent in each phase; only `train` counts against a wall-clock budget."""

    seconds: dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PHASES})
    _phase: str | None = None
    _since: float = 0.0

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the enclosed block as `name`. Phases do not nest: an inner phase pauses the
        outer one, so eval inside a training step is not counted as training."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; known: {', '.join(self.seconds)}")
        outer = self._phase
        if outer is not None:
            self._stop()
        self._start(name)
        try:
            yield
        finally:
            self._stop()
            if outer is not None:
                self._start(outer)

    def _start(self, name: str) -> None:
        self._phase, self._since = name, time.perf_counter()

    def _stop(self) -> None:
        if self._phase is not None:
            self.seconds[self._phase] += time.perf_counter() - self._since
            self._phase = None

    def start(self, name: str = "train") -> None:
        """Start timing phase `name` (no-op if it is already the running phase). Ends any
        other running phase. For loops that are not `with`-shaped (framework callbacks)."""
        if self._phase == name:
            return
        self._stop()
        self._start(name)

    def stop(self) -> None:
        """Stop the running phase, if any (no-op otherwise)."""
        self._stop()

    def current(self, name: str) -> float:
        """Seconds in phase `name` so far, including a block still running."""
        running = time.perf_counter() - self._since if self._phase == name else 0.0
        return self.seconds[name] + running

    def state_dict(self) -> dict[str, float]:
        return {k: self.current(k) for k in self.seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for k, v in state.items():
            self.seconds[k] = float(v)
        if self._phase is not None:
            self._since = time.perf_counter()


def _unit_amount(spec: object) -> tuple[str, float]:
    """A `(unit, amount)` pair given to `Budget`, checked; anything else is one ConfigError
    saying what a budget is."""
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and \
            isinstance(spec[1], (int, float)) and not isinstance(spec[1], bool):
        return spec[0], float(spec[1])
    hint = ""
    if isinstance(spec, int) and not isinstance(spec, bool):
        hint = f" (a number needs its unit: Budget('{spec}steps') or Budget('{spec}s'))"
    elif isinstance(spec, float):
        hint = f" (a number needs its unit, e.g. Budget('{spec:g}s'))"
    shown = " ".join(repr(spec).split())  # one line, whatever the value prints as
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise ConfigError(f"Budget: spec must be a string such as '90s', '20m', '2000steps', "
                      f"'1e6ex', '3e9tok' or '1e15flop', or a (unit, amount) pair, got "
                      f"{shown} ({type(spec).__name__}){hint}")


class Budget:
    """A training limit in one unit, with the clock and work counters that measure it.

    `progress()` is the fraction spent, clipped to [0, 1]; `exhausted()` is progress >= 1.
    For wall-clock budgets the trainer also asks `projected_progress(step_seconds)`: where the
    run will be when the next step ends, so the last step can use the schedule's final value.
    """

    def __init__(self, spec: str | tuple[str, float]):
        self.unit, self.amount = parse_budget(spec) if isinstance(spec, str) else \
            _unit_amount(spec)
        if self.unit not in UNITS:
            raise ConfigError(f"unknown budget unit {self.unit!r}; known: {', '.join(UNITS)}")
        if not self.amount > 0 or not math.isfinite(self.amount):
            raise ConfigError(f"budget amount must be a positive number, got {self.amount}")
        if self.unit == "steps" and self.amount != math.floor(self.amount):
            raise ConfigError(f"a steps budget counts whole steps, got {self.amount:g}")
        self.spec = spec if isinstance(spec, str) else f"{self.amount:g}{self.unit}"
        self.ledger = Ledger()
        self.work = Work()

    def __repr__(self) -> str:
        return f"Budget({self.spec!r})"

    @property
    def is_wall_clock(self) -> bool:
        return self.unit == "seconds"

    def used(self) -> float:
        """How much of the budget's unit has been spent."""
        if self.unit == "seconds":
            return self.ledger.current("train")
        return float(getattr(self.work, COUNTER[self.unit]))

    def progress(self) -> float:
        return min(1.0, max(0.0, self.used() / self.amount))

    def exhausted(self) -> bool:
        return self.used() >= self.amount

    def start(self) -> None:
        """Start (or resume) the training clock. Idempotent: a second `start()` while it runs
        changes nothing. Use it, with `stop()`, around the training steps of a loop hasten
        does not drive (a framework's callbacks); evaluation between them stays off the
        clock."""
        self.ledger.start("train")

    def stop(self) -> None:
        """Pause the training clock (idempotent)."""
        if self.ledger._phase == "train":
            self.ledger.stop()

    @property
    def running(self) -> bool:
        """Whether the training clock is counting now."""
        return self.ledger._phase == "train"

    def projected_progress(self, next_cost: float) -> float:
        """Progress once a step costing `next_cost` more units (seconds, one step, its
        examples, tokens or FLOPs) has run; clipped to [0, 1]."""
        return min(1.0, max(0.0, (self.used() + next_cost) / self.amount))

    def state_dict(self) -> dict:
        return {"spec": self.spec, "ledger": self.ledger.state_dict(), "work": self.work.as_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ledger.load_state_dict(state["ledger"])
        kinds = Work()  # each counter keeps its type (a wrong one is a TypeError here)
        self.work = Work(**{k: type(getattr(kinds, k))(v) for k, v in state["work"].items()})
