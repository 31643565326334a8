"""Run logging: JSONL metrics, TensorBoard event files and a `rich` progress bar.

Only the main rank logs. The JSONL file (`metrics.jsonl`) is the record later tools read;
TensorBoard is for looking at it. On a terminal a progress bar shows budget progress and an
ETA that the caller computes (evaluation time included); when stdout is not a terminal
(a log file, a CI job) one plain progress line goes to stderr every `progress_every`
seconds instead. A quiet run shows neither. `notice` lines (a resume, a fallback, a
warning) go to stderr on the main rank whatever `quiet` says, and into the JSONL record.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class RunLog:
    """Writes one JSON object per line to `out_dir/metrics.jsonl` and mirrors scalars to
    TensorBoard under `out_dir/tb`. With `out_dir=None` it only drives the progress bar."""

    def __init__(self, out_dir: str | Path | None, enabled: bool = True, quiet: bool = False,
                 tensorboard: bool = True, description: str = "train",
                 progress_every: float = 30.0):
        self.enabled = enabled
        self.description = description
        self._file = None
        self._tb = None
        self._bar = None
        # plain progress lines when stdout is not a terminal (0: none)
        self._line_every = progress_every if enabled and not quiet else 0.0
        self._next_line = time.monotonic() + self._line_every
        if not enabled:
            return
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            self._file = open(out / "metrics.jsonl", "a", buffering=1)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(out / "tb"))
        if not quiet and sys.stdout.isatty():
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                TextColumn("eta {task.fields[eta]}"), TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=1000, info="", eta="-:--:--")
            self._line_every = 0.0

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """Record `values` (scalars, or small dicts of them) at optimizer step `step`."""
        if not self.enabled:
            return
        row = {"kind": kind, "step": step, "time": time.time(), **values}
        if self._file is not None:
            self._file.write(json.dumps(row, default=_plain) + "\n")
        if self._tb is not None:
            for key, value in _flat(values):
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def notice(self, line: str, kind: str = "notice", step: int = 0) -> None:
        """One line for the user (and scripts) on stderr, also kept in the JSONL record."""
        if not self.enabled:
            return
        print(line, file=sys.stderr, flush=True)
        if self._file is not None:
            self._file.write(json.dumps({"kind": kind, "step": step, "time": time.time(),
                                         "message": line}) + "\n")

    @property
    def shows_progress(self) -> bool:
        """Whether progress is shown now: a bar, or a plain line that is due (callers skip
        building the text otherwise)."""
        return self._bar is not None or (
            self._line_every > 0 and time.monotonic() >= self._next_line)

    def progress(self, fraction: float, info: str = "", eta: float | None = None,
                 force: bool = False) -> None:
        """Show `fraction` of the budget done, `info` and the expected seconds left (`eta`,
        None when unknown). Plain lines come at most every `progress_every` seconds, or now
        when `force`."""
        if self._bar is not None:
            self._bar.update(self._task, completed=round(1000 * fraction), info=info,
                             eta=format_eta(eta))
            return
        if self._line_every <= 0 or not (force or time.monotonic() >= self._next_line):
            return
        self._next_line = time.monotonic() + self._line_every
        print(progress_line(self.description, fraction, info, eta), file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._file is not None:
            self._file.close()
            self._file = None


def progress_line(description: str, fraction: float, info: str = "",
                  eta: float | None = None) -> str:
    """The one plain progress line of a run off a terminal: `train  42.0% step 120 loss
    0.4100 accuracy 88.10 eta 0:01:05`."""
    return f"{description} {100 * fraction:5.1f}% {info} eta {format_eta(eta)}".replace(
        "  eta", " eta")


def format_eta(seconds: float | None) -> str:
    """H:MM:SS, or -:--:-- when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _flat(values: dict[str, Any], prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                yield f"{prefix}{key}", value


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
