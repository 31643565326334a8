"""The lever stack's ablation table, its pay rule and its plot.

Rows are runs (tuned baseline, baseline, each lever alone, the stack, the stack less each
lever), the seed papers' ablation layout; columns lead with work to the target (examples
backpropagated and FLOPs, relative to the tuned baseline's), then wall-clock time to it.

The pay rule: a lever stays in the stack only if removing it costs at least `threshold`
(5%) more time to target on every seed (a stack less the lever that never reaches the
target costs infinitely much; a seed where the stack itself never reaches it cannot show
a cost, so the lever does not pay there). The table says which levers do not pay here.

`select_levers` is the validation phase's rule, milder on purpose: a lever is dropped from
the stack before the test runs only when removing it cost less than `threshold` on every
validation seed (one seed where it cost more keeps it; a seed where the stack missed the
target shows no cost).

`verdict` applies the pre-registered decision rule: the stack reaches the target in
<= `max_relative` (0.6) x the tuned baseline's time on the median seed (a seed that never
reaches counts as infinitely slow), with every lever paying its way.

Where its result is shown: docs/benchmarks.md, "A lever stack at one budget: does not pass here".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hasten.core.atomic import atomic_write

MINUS = "stack-minus-"


def _runs(results: Mapping[str, Any], task: str | None) -> list[Mapping[str, Any]]:
    runs = list(results.get("runs") or [])
    return [r for r in runs if task is None or r.get("task") == task]


def _times(runs: Iterable[Mapping[str, Any]], method: str) -> dict[int, float]:
    """Seed -> time to target of `method` (infinity where it never reached the target)."""
    out = {}
    for r in runs:
        if r.get("method") == method:
            t = r.get("time_to_target")
            out[int(r["seed"])] = float(t) if t is not None else math.inf
    return out


def lever_verdicts(results: Mapping[str, Any], threshold: float = 0.05,
                   task: str | None = None) -> dict[str, dict[str, Any]]:
    """For each lever with a `stack-minus-X` run: its removal cost per seed (time to
    target without it over the stack's, less 1) and whether it pays (cost >= threshold on
    every seed the stack ran). Targets must be filled (`fill_targets`)."""
    runs = _runs(results, task)
    full = _times(runs, "stack")
    out = {}
    levers = dict.fromkeys(str(r["method"])[len(MINUS):] for r in runs
                           if str(r.get("method", "")).startswith(MINUS))
    for lever in levers:
        minus = _times(runs, MINUS + lever)
        costs: dict[int, float | None] = {}
        for seed, t_stack in full.items():
            t_minus = minus.get(seed)
            if t_minus is None or math.isinf(t_stack):
                costs[seed] = None  # nothing to compare: cannot show that it pays
            elif math.isinf(t_minus):
                costs[seed] = math.inf
            else:
                costs[seed] = t_minus / t_stack - 1.0
        pays = bool(costs) and all(c is not None and c >= threshold for c in costs.values())
        out[lever] = {"costs": costs, "pays": pays, "threshold": threshold}
    return out


def select_levers(results: Mapping[str, Any], threshold: float = 0.05,
                  task: str | None = None) -> dict[str, Any]:
    """The validation phase's lever choice: `kept`, the levers whose removal cost at least
    `threshold` on some seed; `dropped`, those whose removal cost less on every seed (or
    could not be compared); `costs` per lever and seed (`lever_verdicts`)."""
    verdicts = lever_verdicts(results, threshold, task)
    kept = [x for x, v in verdicts.items()
            if any(c is not None and c >= threshold for c in v["costs"].values())]
    return {"kept": kept, "dropped": [x for x in verdicts if x not in kept],
            "costs": {x: v["costs"] for x, v in verdicts.items()}, "threshold": threshold}


def _median(values: Iterable[float]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return statistics.median(xs) if xs else None


def verdict(results: Mapping[str, Any], max_relative: float = 0.6, threshold: float = 0.05,
            task: str | None = None) -> dict[str, Any]:
    """Pass iff the stack's median relative time (misses as infinity) is <= max_relative
    and every lever of its `stack-minus-X` runs pays."""
    runs = [r for r in _runs(results, task) if r.get("method") == "stack"]
    rel = [r["relative_time"] if r.get("relative_time") is not None else math.inf for r in runs]
    median = statistics.median(rel) if rel else math.inf
    levers = lever_verdicts(results, threshold, task)
    return {"pass": median <= max_relative and all(v["pays"] for v in levers.values()),
            "relative_time": median, "max_relative": max_relative, "levers": levers,
            "kept": [x for x, v in levers.items() if v["pays"]],
            "not_paying": [x for x, v in levers.items() if not v["pays"]]}


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.{digits}f}"


def _row(method: str, runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    finals = [float(r["final"]) for r in runs if r.get("final") is not None]
    work = [r.get("relative_work") or {} for r in runs]
    return {"method": method, "seeds": len(runs),
            "reached": sum(1 for r in runs if r.get("time_to_target") is not None),
            "final": _median(finals), "lo": min(finals, default=None),
            "hi": max(finals, default=None),
            "examples": _median(w.get("examples_backpropagated") for w in work),
            "flops": _median(w.get("flops") for w in work),
            "time": _median(r.get("time_to_target") for r in runs),
            "relative": _median(r.get("relative_time") for r in runs)}


def stack_rows(results: Mapping[str, Any], task: str | None = None) -> list[dict[str, Any]]:
    """One row of medians over seeds per method, in the order the runs appear."""
    runs = _runs(results, task)
    methods = dict.fromkeys(str(r["method"]) for r in runs)
    return [_row(m, [r for r in runs if r["method"] == m]) for m in methods]


def stack_table(results: Mapping[str, Any], threshold: float = 0.05,
                task: str | None = None) -> str:
    """The ablation table in markdown, with the pay rule's verdict per lever."""
    levers = lever_verdicts(results, threshold, task)
    lines = ["| run | final (min–max) | rel. examples backprop. to target | rel. FLOPs to "
             "target | time to target (s) | relative time | reached | removing it |",
             "|:---|---:|---:|---:|---:|---:|---:|:---|"]
    for row in stack_rows(results, task):
        lever = row["method"][len(MINUS):] if row["method"].startswith(MINUS) else None
        pays = ""
        if lever in levers:
            costs = ", ".join(_fmt(c) for c in levers[lever]["costs"].values())
            pays = (f"costs {costs}: pays" if levers[lever]["pays"]
                    else f"costs {costs}: does not pay here")
        final = f"{_fmt(row['final'])} ({_fmt(row['lo'])}–{_fmt(row['hi'])})"
        lines.append(f"| {row['method']} | {final} | {_fmt(row['examples'])} | "
                     f"{_fmt(row['flops'])} | {_fmt(row['time'], 1)} | {_fmt(row['relative'])} "
                     f"| {row['reached']}/{row['seeds']} | {pays} |")
    rule = (f"A lever pays if the stack without it needs >= {threshold:.0%} more time to the "
            "target on every seed (costs listed per seed).")
    return "\n".join(lines) + "\n\n" + rule + "\n"


def plot_stack(results: Mapping[str, Any], path: str | Path, task: str | None = None) -> None:
    """Horizontal bars per run: relative examples backpropagated, FLOPs and time to the
    target (medians; runs that never reached it are left out). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in stack_rows(results, task) if r["relative"] is not None]
    fig = Figure(figsize=(7, 0.45 * max(4, len(rows)) + 1), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    height = 0.27
    for k, (key, label) in enumerate((("examples", "examples backpropagated"),
                                      ("flops", "FLOPs"), ("relative", "wall-clock time"))):
        ys = [i + (k - 1) * height for i in range(len(rows))]
        ax.barh(ys, [r[key] or 0.0 for r in rows], height=height, label=label, color=f"C{k}")
    ax.set_yticks(range(len(rows)), [r["method"] for r in rows])
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_xlabel("to the target, relative to the tuned baseline (median over seeds)")
    ax.legend(fontsize="small")
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110))


def write_stack_report(results: Mapping[str, Any], out_dir: str | Path,
                       threshold: float = 0.05) -> dict[str, Path]:
    """stack.md (table per task and verdict) and stack.png into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = list(dict.fromkeys(str(r["task"]) for r in _runs(results, None)))
    parts = []
    for task in tasks:
        v = verdict(results, threshold=threshold, task=task)
        parts += [f"## {task}", "", stack_table(results, threshold, task),
                  f"Stack relative time (median seed): {_fmt(v['relative_time'])}; levers "
                  f"that pay: {', '.join(v['kept']) or 'none'}; that do not pay here: "
                  f"{', '.join(v['not_paying']) or 'none'}.", ""]
    text = "\n".join([f"# Lever stack: {results.get('suite', '?')}", ""] + parts)
    paths = {"table": out / "stack.md", "plot": out / "stack.png"}
    atomic_write(paths["table"], lambda fh: fh.write(text.encode("utf-8")))
    plot_stack(results, paths["plot"], tasks[0] if tasks else None)
    return paths
