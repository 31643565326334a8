"""Run logging: JSONL metrics, TensorBoard event files and a `rich` progress bar.

Only the main rank logs. The JSONL file (`metrics.jsonl`) is the record later tools read;
TensorBoard is for looking at it; the progress bar shows budget progress and an ETA, and is
off when stdout is not a terminal or the run is quiet.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any


class RunLog:
    """Writes one JSON object per line to `out_dir/metrics.jsonl` and mirrors scalars to
    TensorBoard under `out_dir/tb`. With `out_dir=None` it only drives the progress bar."""

    def __init__(self, out_dir: str | Path | None, enabled: bool = True, quiet: bool = False,
                 tensorboard: bool = True, description: str = "train"):
        self.enabled = enabled
        self._file = None
        self._tb = None
        self._bar = None
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
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=1000, info="")

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

    @property
    def shows_progress(self) -> bool:
        """Whether a progress bar is on (callers skip building its text otherwise)."""
        return self._bar is not None

    def progress(self, fraction: float, info: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=round(1000 * fraction), info=info)

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
