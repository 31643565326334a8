"""Curves of a results dict: metric against training seconds, one subplot per task, a thin
line per seed coloured by method and the task's target dashed. Rendered with Agg (no
display, no pyplot global state) and written atomically."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hasten.bench.runs import first_number, group, is_number, metric_label, runs_of
from hasten.core.atomic import atomic_write


def _plot_task(ax: Any, task: str, runs: list[dict[str, Any]], colours: Mapping[str, str]) -> None:
    """One subplot: a thin line per seed, coloured by method, and the target dashed."""
    labelled: set[str] = set()
    for run in runs:
        method = str(run.get("method"))
        points = [
            (float(p[0]), float(p[2]))
            for p in run.get("curve") or []
            if len(p) >= 3 and is_number(p[0]) and is_number(p[2])
        ]
        if not points:
            continue
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        label = None if method in labelled else method
        labelled.add(method)
        ax.plot(xs, ys, color=colours[method], lw=1, alpha=0.7, marker=".", ms=3, label=label)
    target = first_number(r.get("target") for r in runs)
    if target is not None:
        ax.axhline(target, color="black", ls="--", lw=1, label="target")
    ax.set_title(task)
    ax.set_xlabel("train seconds")
    ax.set_ylabel(metric_label(runs[0].get("metric")))
    if labelled or target is not None:
        ax.legend(fontsize="small")


def plot_curves(results: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Plot metric vs train seconds, one subplot per task, to a PNG (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = runs_of(results)
    tasks = group(runs, "task")
    methods = dict.fromkeys(str(r.get("method")) for r in runs)
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    ncols = max(1, min(3, len(tasks)))
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig = Figure(figsize=(5 * ncols, 3.8 * nrows), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg: no display, no pyplot global state
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (task, task_runs) in zip(axes, tasks.items(), strict=False):  # spare axes stay blank
        _plot_task(ax, task, task_runs, colours)
    for ax in axes[len(tasks) :]:
        ax.set_axis_off()
    if not tasks:
        axes[0].text(0.5, 0.5, "no runs", ha="center", va="center")
    fig.suptitle(f"{results.get('suite', '?')}: metric vs train seconds")
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110))
