"""Stop signals: SIGTERM and SIGINT end a command cleanly, never as a finished result.

The trainer turns a stop signal into a graceful stop at a step boundary (`RunResult.stopped`
is then "sigterm" or "sigint"), but code around it (a proxy trained inside a method, a
scorer, a distillation loop) would go on as if nothing happened. Two tools close that gap:

- `watch()`: while active, every SIGTERM or SIGINT the process receives is recorded, even one
  a trainer caught and turned into a graceful stop, through `signal.set_wakeup_fd` (the
  interpreter writes each signal's number there whichever Python handler runs). SIGTERM
  outside a trainer raises `Stopped("sigterm")`, as SIGINT raises `KeyboardInterrupt`.
  `received()` says whether a stop arrived; `check()` raises `Stopped` if one did, so a caller
  can refuse to write a result made by a cut run.
- `deferred()`: inside it both signals only set a flag that a loop polls at safe points (for
  loops that checkpoint before they stop, such as distillation).

`Stopped.exit_code` is 143 for SIGTERM and 130 for SIGINT, as a shell reports a killed job.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_CODES = {"sigterm": 128 + signal.SIGTERM, "sigint": 128 + signal.SIGINT}
_NAMES = {signal.SIGTERM: "sigterm", signal.SIGINT: "sigint"}


class Stopped(BaseException):
    """A command ended early by a stop signal. `signal` is "sigterm" or "sigint"; `saved`
    says, in words, what was kept and how to continue (empty when nothing was)."""

    def __init__(self, signal: str, saved: str = "") -> None:
        super().__init__(signal, saved)
        self.signal, self.saved = signal, saved

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, 1)


class _Watch:
    """The process-wide record of stop signals while `watch()` is active."""

    def __init__(self) -> None:
        self.depth = 0
        self.seen: list[str] = []
        self.read_fd: int | None = None
        self.write_fd: int | None = None
        self.old_fd = -1
        self.old_term: Any = None

    def drain(self) -> None:
        if self.read_fd is None:
            return
        try:
            data = os.read(self.read_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        self.seen += [_NAMES[n] for n in data if n in _NAMES]


_WATCH = _Watch()


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped("sigterm")


@contextmanager
def watch() -> Iterator[None]:
    """Record stop signals for the duration (re-entrant; main thread only, elsewhere a no-op).
    SIGTERM raises `Stopped` where no other handler is installed."""
    w = _WATCH
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if w.depth == 0:
        w.read_fd, w.write_fd = os.pipe()
        os.set_blocking(w.read_fd, False)
        os.set_blocking(w.write_fd, False)
        w.old_fd = signal.set_wakeup_fd(w.write_fd, warn_on_full_buffer=False)
        w.seen = []
        w.old_term = signal.getsignal(signal.SIGTERM)
        if w.old_term in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _raise_stopped)
    w.depth += 1
    try:
        yield
    finally:
        w.depth -= 1
        if w.depth == 0:
            signal.set_wakeup_fd(w.old_fd)
            if signal.getsignal(signal.SIGTERM) is _raise_stopped:
                signal.signal(signal.SIGTERM, w.old_term or signal.SIG_DFL)
            for fd in (w.read_fd, w.write_fd):
                if fd is not None:
                    os.close(fd)
            w.read_fd = w.write_fd = None
            w.seen = []


def received() -> str | None:
    """"sigterm" or "sigint" if such a signal arrived since the outermost `watch()` began
    (SIGTERM wins when both did), else None."""
    if _WATCH.depth == 0:
        return None
    _WATCH.drain()
    seen = _WATCH.seen
    if "sigterm" in seen:
        return "sigterm"
    return "sigint" if seen else None


def check(saved: str = "") -> None:
    """Raise `Stopped` (with `saved`) if a stop signal arrived during `watch()`."""
    stop = received()
    if stop is not None:
        raise Stopped(stop, saved)


@contextmanager
def deferred() -> Iterator[_Flag]:
    """Within: SIGTERM and SIGINT set `flag.signal` ("sigterm"/"sigint") instead of ending the
    process, for a loop to poll and stop at a safe point (main thread only)."""
    flag = _Flag()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _NAMES:
            previous[signum] = signal.signal(signum, flag.handle)
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Flag:
    """The signal `deferred()` caught, if any."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def handle(self, signum: int, frame: Any) -> None:
        self.signal = self.signal or _NAMES.get(signum)
