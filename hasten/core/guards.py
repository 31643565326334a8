"""Guards around a training run: stop signals, non-finite losses, memory, slow steps.

- `StopSignals` turns SIGTERM and SIGINT (Ctrl-C) into a flag the trainer checks once per
  micro-batch, so a stop always ends at a step boundary with a checkpoint; inside an
  evaluation (no training state changes there) it interrupts at once instead.
- `nonfinite_step` tells whether a step's loss or gradients are NaN/Inf before the
  optimizer applies it, so poisoned weights are never written.
- `check_memory` refuses a micro-batch that clearly cannot fit, from a small probe's
  measured memory growth, before the run allocates it.
- `EXIT_CODES` maps `RunResult.stopped` to the exit status a command should return.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from hasten.core.errors import ConfigError

# Why a run stopped (RunResult.stopped) -> a command's exit status: 0 for a finished run, 128 +
# the signal number for a stopped one (as a shell reports a killed process), 3 for a run
# stopped because its loss or gradients became NaN/Inf.
EXIT_CODES = {"budget": 0, "sigterm": 128 + signal.SIGTERM, "sigint": 128 + signal.SIGINT,
              "nonfinite": 3}
NONFINITE_ACTIONS = ("stop", "skip", "rollback")
SLOW_STEP_SHARE = 0.05  # a micro-batch longer than this share of a seconds budget warns


class Interrupted(Exception):
    """Raised inside `StopSignals.interruptible()` when a stop signal arrives."""


class TimedOut(Exception):
    """Raised inside `time_limit(seconds)` when the block runs longer."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise `TimedOut` in the block once it has run `seconds` (SIGALRM; main thread only,
    elsewhere, without SIGALRM or with `seconds=None` the block runs unlimited). An alarm
    set outside is suspended for the block and set again after it, less the time spent."""
    if seconds is None or not hasattr(signal, "setitimer") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise TimedOut(f"over {seconds:.1f}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    outer, interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            left = max(1e-3, outer - (time.monotonic() - started))
            signal.setitimer(signal.ITIMER_REAL, left, interval)


class StopSignals:
    """SIGTERM and SIGINT as a flag (main thread only; elsewhere signals keep their handlers).

    `reason` is None, "sigterm" or "sigint" (SIGINT wins when both came). `code` is the same
    as a number (0, 1, 2) so ranks can agree on it with one all-reduce (max)."""

    _REASONS = {1: "sigterm", 2: "sigint"}

    def __init__(self) -> None:
        self.code = 0
        self.count = 0
        self._raise = False
        self._previous: dict[int, Any] = {}

    @property
    def reason(self) -> str | None:
        return self._REASONS.get(self.code)

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.code = max(self.code, 2 if signum == signal.SIGINT else 1)
        if self._raise:
            self._raise = False
            raise Interrupted(self.reason)

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside the block a stop signal raises `Interrupted` at once (for evaluations,
        which change no training state); outside it only sets the flag."""
        self._raise = True
        try:
            yield
        finally:
            self._raise = False


def clip_and_check(model: nn.Module, clip: float | None) -> torch.Tensor:
    """Clip the gradients to total norm `clip` when it is set; return a tensor that is
    finite iff every gradient is (the total norm when clipping, else 0 or inf from one fused
    pass per device, the check torch's GradScaler uses)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    flags = []
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for p in params:
        by_device.setdefault(p.grad.device, []).append(p.grad)
    for device, grads in by_device.items():
        found = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=device))
        flags.append(found.to(params[0].device).reshape(()))
    if not flags:
        return torch.zeros(())
    total = torch.stack(flags).sum()
    return torch.where(total > 0, torch.full_like(total, float("inf")), torch.zeros_like(total))


def nonfinite_step(loss: torch.Tensor, grad_check: torch.Tensor,
                   all_reduce: Callable[[torch.Tensor], None] | None = None) -> bool:
    """Whether this step's mean loss or its gradients (`clip_and_check`) are NaN/Inf, on any
    rank (`all_reduce` takes the max of a flag across ranks). One host sync."""
    bad = ~torch.isfinite(loss.detach().float()) | ~torch.isfinite(grad_check.float())
    flag = bad.to(torch.float64).reshape(1)
    if all_reduce is not None:
        all_reduce(flag)
    return bool(flag.item() > 0)


# --- memory ---------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident memory (since the last `reset_peak_rss`)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return kib * 1024


def rss_bytes() -> int:
    """This process's resident memory now (the peak where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else peak_rss_bytes()


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark (Linux), so a probe's growth can be measured."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def available_bytes(device: torch.device) -> int | None:
    """Memory a run can still take: free GPU memory, or MemAvailable from /proc/meminfo."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory(device: torch.device) -> dict[str, int]:
    """Peak resident memory of the process, and peak CUDA memory allocated when CUDA is used."""
    out = {"rss_bytes": peak_rss_bytes()}
    if device.type == "cuda":
        out["cuda_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out


def _probe_growth(model: nn.Module, loss_fn: Callable[..., torch.Tensor], batch: Any,
                  device: torch.device, precision: Any) -> int | None:
    """Peak memory growth of one forward + backward of `batch` (None if unmeasurable)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    elif reset_peak_rss():
        before = rss_bytes()
    else:
        return None
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with precision:
                loss = loss_fn(model, batch).float().mean()
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)) - before
    return peak_rss_bytes() - before


def check_memory(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                 small_batch: Callable[[int], Any], micro_batch: int, optimizer: str,
                 device: torch.device, precision: Any) -> None:
    """Refuse (one-line ConfigError) a micro-batch whose estimated memory clearly exceeds
    what is available: a probe of k examples gives the activations' growth, scaled to the
    micro-batch, plus gradients and optimizer moments (AdamW 2, SGD 1 per parameter)."""
    available = available_bytes(device)
    if available is None:
        return
    k = max(1, min(micro_batch, max(2, micro_batch // 8), 16))
    try:
        growth = _probe_growth(model, loss_fn, small_batch(k), device, precision)
    except Exception:  # e.g. a loss that needs a full batch: the real probe will tell
        return
    if growth is None:
        return
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    moments = {"adamw": 2, "sgd": 1}.get(optimizer, 2) * params
    activations = max(0, growth - params) * micro_batch / k
    need = activations + params + moments
    if device.type == "cpu":  # the ranks of a CPU job on this machine share its memory
        need *= int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if need > available:
        raise ConfigError(f"micro_batch {micro_batch} needs about {need / 2**30:.1f} GiB "
                          f"(measured on {k} examples), {available / 2**30:.1f} GiB is "
                          "available; use a smaller micro_batch (batch_start/batch_end keep "
                          "the batch by accumulation)")


def stop_line(stopped: str, steps: int, out_dir: str | None) -> str | None:
    """The line a command prints for a run that did not finish (None for a finished one).
    The non-finite case was already explained by the trainer; this line says what to do."""
    if stopped == "budget":
        return None
    saved = (f"; checkpoint saved in {out_dir}/checkpoints (continue with --resume)"
             if out_dir else "; nothing saved (no output folder)")
    what = {"sigterm": "stopped by SIGTERM", "sigint": "stopped by Ctrl-C (SIGINT)",
            "nonfinite": "stopped by a non-finite loss or gradient"}[stopped]
    return f"{what} after {steps} steps{saved}"


def slow_step_line(seconds: float, budget_seconds: float) -> str:
    """The one warning a seconds-budgeted run gives when a micro-batch is long."""
    return (f"warning: one micro-batch takes {seconds:.1f}s, {100 * seconds / budget_seconds:.0f}% "
            f"of the {budget_seconds:g}s budget; a smaller micro_batch, or a batch ramp "
            "(batch_start < batch_end), keeps steps short")


def check_nonfinite_action(action: str) -> None:
    if action not in NONFINITE_ACTIONS:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_ACTIONS)}, "
                          f"got {action!r}")
