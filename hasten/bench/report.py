"""Benchmark reports: targets, relative time and work, tables and curves from a results dict.

The harness runs tasks x methods x seeds and hands back one results dict per suite:
`{"suite", "created", "machine", "code", "command", "runs": [run, ...]}`, where each run has `task`,
`method`, `seed`, `metric`, `higher_is_better`, `final`, `train_seconds`, `work` (counters) and
`curve` (a list of `[seconds, work, value]`).

This module turns that into what the seed paper's tables show. Each task's target is the
baseline's median final quality less a margin; every run is judged by when (and after how much
work) it first reached that target, relative to the baseline's median. Medians over seeds
throughout, so one lucky or unlucky seed does not move a number, and a method that never
reached the target says "not reached" instead of getting a made-up number.

Typical use: `write_report(fill_targets(results, margins={"digits": 0.5}), out_dir)`.
Reading and writing results files is `hasten.bench.records`; the curves are
`hasten.bench.curves`.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from hasten.bench.curves import plot_curves
from hasten.bench.machine import timing_marker, timing_note
from hasten.bench.records import load_record, write_record
from hasten.bench.runs import PERCENT_METRICS  # noqa: F401  (re-exported)
from hasten.bench.runs import first_number as _first_number
from hasten.bench.runs import group as _group
from hasten.bench.runs import is_number as _is_number
from hasten.bench.runs import metric_label as _metric_label
from hasten.bench.runs import runs_of as _runs
from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError
from hasten.core.target import time_to_target

load_results = load_record  # the name earlier code used

DEFAULT_BASELINE = "baseline"
NOT_REACHED = "not reached"
NOT_AVAILABLE = "n/a"

# Work counters that get a "relative ..." row in the tables: (counter name, row label).
# Tokens get a row only where runs count them (a `tokens_fn`): with variable-length examples
# (translation) tokens track compute where examples and per-example FLOPs do not.
WORK_ROWS = (
    ("examples_backpropagated", "relative examples backpropagated"),
    ("tokens", "relative tokens"),
    ("flops", "relative FLOPs"),
)
OPTIONAL_WORK_ROWS = frozenset({"tokens"})


# --- small helpers -------------------------------------------------------------------------


def _median(values: Iterable[Any]) -> float | None:
    """Median of the finite numbers in `values`, or None if there are none."""
    xs = [float(v) for v in values if _is_number(v)]
    return statistics.median(xs) if xs else None


def _ratio(num: Any, den: Any) -> float | None:
    """num / den, or None when either is missing or the denominator is not positive."""
    if not _is_number(num) or not _is_number(den) or den <= 0:
        return None
    return float(num) / float(den)


def _higher_is_better(runs: list[dict[str, Any]]) -> bool:
    """The metric direction of a group of runs (higher is better unless a run says otherwise)."""
    for run in runs:
        if run.get("higher_is_better") is not None:
            return bool(run["higher_is_better"])
    return True


def _baseline_name(task: str, runs: list[dict[str, Any]],
                   baselines: Mapping[str, str] | None) -> str:
    """The task's baseline method: `baselines[task]`, else a run's "baseline" field."""
    if baselines and task in baselines:
        return str(baselines[task])
    for run in runs:
        if run.get("baseline"):
            return str(run["baseline"])
    return DEFAULT_BASELINE


def _median_work(works: Iterable[Any]) -> dict[str, float]:
    """Per-counter median over a set of work dicts (missing dicts and values skipped)."""
    dicts = [w for w in works if isinstance(w, Mapping)]
    names = dict.fromkeys(name for w in dicts for name in w)
    medians = {name: _median(w.get(name) for w in dicts) for name in names}
    return {name: m for name, m in medians.items() if m is not None}


# --- targets -------------------------------------------------------------------------------


def _task_target(base_runs: list[dict[str, Any]], margin: float, higher: bool) -> float | None:
    """Baseline median final, moved by the margin towards "worse"; None without baseline finals."""
    median = _median(r.get("final") for r in base_runs)
    if median is None:
        return None
    return median - margin if higher else median + margin


def _fill_hit(run: dict[str, Any], target: float | None, higher: bool) -> None:
    """Set the run's target, time_to_target and work_to_target from its curve."""
    hit = None
    curve = [p for p in run.get("curve") or [] if len(p) >= 3 and _is_number(p[0])]
    if target is not None and curve:
        hit = time_to_target(curve, target, higher_is_better=higher)
    run["target"] = target
    run["time_to_target"] = hit.seconds if hit else None
    run["work_to_target"] = dict(hit.work) if hit else None


def _relative_work(work: Any, base_work: Mapping[str, float]) -> dict[str, float | None] | None:
    """Per-counter ratio of a run's work to target over the baseline's median work to target."""
    if not isinstance(work, Mapping) or not base_work:
        return None
    names = dict.fromkeys([*work, *base_work])
    return {name: _ratio(work.get(name), base_work.get(name)) for name in names}


def fill_targets(results: dict[str, Any], baselines: Mapping[str, str] | None = None,
                 margins: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Set each run's target and its time and work to reach it, absolute and vs the baseline.

    Per task, target = median over seeds of the baseline's `final` minus `margins[task]`
    (plus it when lower is better; default margin 0). Every run gets `target`, `baseline`,
    `target_margin`, `time_to_target` and `work_to_target` (None if never reached), then
    `relative_time` and `relative_work` (per counter): the run's value over the median of the
    baseline seeds that reached the target, None when either side is missing. Baseline per
    task: `baselines[task]`, else the runs' "baseline" field, else "baseline". Mutates and
    returns `results`.
    """
    for task, runs in _group(_runs(results), "task").items():
        baseline = _baseline_name(task, runs, baselines)
        margin = float((margins or {}).get(task, 0.0))
        base_runs = [r for r in runs if str(r.get("method")) == baseline]
        higher = _higher_is_better(base_runs or runs)
        target = _task_target(base_runs, margin, higher)
        for run in runs:
            _fill_hit(run, target, higher)
            run["baseline"] = baseline
            run["target_margin"] = margin
        base_time = _median(r["time_to_target"] for r in base_runs)
        base_work = _median_work(r["work_to_target"] for r in base_runs)
        for run in runs:
            run["relative_time"] = _ratio(run["time_to_target"], base_time)
            run["relative_work"] = _relative_work(run["work_to_target"], base_work)
    return results


def merge_results(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Join result files of one suite run in pieces (say `--seeds 2` on one core and
    `--first-seed 2` on another): same suite, quick flag, margin and baseline, no (task,
    method, seed) twice. Targets and relative times are recomputed over all the runs."""
    if len(parts) < 2:
        raise ConfigError("merge needs at least two result files")
    first = parts[0]
    for key in ("suite", "quick", "margin"):
        values = {json.dumps(p.get(key)) for p in parts}
        if len(values) > 1:
            raise ConfigError(f"cannot merge results with different {key}: "
                              f"{', '.join(sorted(values))}")
    runs: list[dict[str, Any]] = []
    seen: set[tuple[Any, Any, Any]] = set()
    for part in parts:
        for run in _runs(part):
            key = (run.get("task"), run.get("method"), run.get("seed"))
            if key in seen:
                raise ConfigError(f"run {key[0]} / {key[1]} / seed {key[2]} appears in more "
                                  "than one file")
            seen.add(key)
            runs.append(dict(run))
    # columns in the suite's order, whatever order the parts came in (listed methods first)
    position = {m: i for i, m in enumerate(first.get("suite_methods") or [])}
    runs.sort(key=lambda r: position.get(str(r.get("method")), len(position)))
    baselines: dict[Any, set[Any]] = {}  # a task's baseline must agree across the parts
    for run in runs:
        baselines.setdefault(run.get("task"), set()).add(run.get("baseline"))
    clash = sorted(str(task) for task, names in baselines.items() if len(names) > 1)
    if clash:
        raise ConfigError(f"cannot merge results whose runs of {clash[0]} name different "
                          "baselines")
    merged = {**first, "created": min(str(p.get("created")) for p in parts),
              "command": " ; ".join(str(p.get("command")) for p in parts),
              "seeds": len({r.get("seed") for r in runs}), "runs": runs,
              "merged_from": [{k: p.get(k) for k in ("created", "command", "machine", "code")}
                              for p in parts]}
    merged.pop("first_seed", None)
    margin = float(first.get("margin") or 0.0)  # equal in every part (checked above)
    return fill_targets(merged, margins={r["task"]: margin for r in runs})


# --- summary -------------------------------------------------------------------------------


def _summarize_method(runs: list[dict[str, Any]], baseline: str) -> dict[str, Any]:
    """Medians over one (task, method)'s seeds, plus how many seeds reached the target."""
    finals = [float(r["final"]) for r in runs if _is_number(r.get("final"))]
    n_reached = sum(1 for r in runs if _is_number(r.get("time_to_target")))
    return {
        "metric": runs[0].get("metric"),
        "higher_is_better": _higher_is_better(runs),
        "baseline": baseline,
        "is_baseline": str(runs[0].get("method")) == baseline,
        "target": _first_number(r.get("target") for r in runs),
        "margin": _first_number(r.get("target_margin") for r in runs),
        "seeds": len(runs),
        "n_reached": n_reached,
        "reached": f"{n_reached}/{len(runs)}",
        "final": _median(finals),
        "final_min": min(finals) if finals else None,
        "final_max": max(finals) if finals else None,
        "train_seconds": _median(r.get("train_seconds") for r in runs),
        "time_to_target": _median(r.get("time_to_target") for r in runs),
        "relative_time": _median(r.get("relative_time") for r in runs),
        "relative_work": _median_work(r.get("relative_work") for r in runs),
        "ms_per_step": _median(_ms_per_step(r) for r in runs),
        "extra": _extra_rows(runs),
        "has_curve": any(r.get("curve") is not None for r in runs),
    }


def _extra_rows(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median over seeds of each number a run asks to show: `notes["report_rows"]`, a
    {row label: value} dict (e.g. a test score measured once after training)."""
    rows = [(r.get("notes") or {}).get("report_rows") or {} for r in runs]
    labels = dict.fromkeys(label for row in rows if isinstance(row, Mapping) for label in row)
    return {label: _median(row.get(label) for row in rows if isinstance(row, Mapping))
            for label in labels}


def _ms_per_step(run: Mapping[str, Any]) -> float | None:
    """Milliseconds of training per optimizer step (the ledger's train clock over steps)."""
    train, steps = (run.get("ledger") or {}).get("train"), run.get("steps")
    if not _is_number(train) or not _is_number(steps) or steps <= 0:
        return None
    return 1000.0 * float(train) / float(steps)


def _method_order(methods: Iterable[str], baseline: str) -> list[str]:
    """Baseline first, the others in first-appearance order."""
    methods = list(methods)
    return [baseline] + [m for m in methods if m != baseline] if baseline in methods else methods


def summarize(results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per task and method (baseline first): medians over seeds of the filled-in run fields.

    Each entry has final (with final_min/final_max), train_seconds, time_to_target,
    relative_time, relative_work (per counter), seeds, n_reached and reached ("2/3"), extra
    (medians of the runs' `notes["report_rows"]`, shown as rows under the metric), plus the
    task's target, margin and baseline. Medians of times and ratios are over the seeds that
    reached the target. Call `fill_targets` first; without it no run has a target.
    """
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for task, runs in _group(_runs(results), "task").items():
        baseline = _baseline_name(task, runs, None)
        by_method = _group(runs, "method")
        summary[task] = {
            m: _summarize_method(by_method[m], baseline) for m in _method_order(by_method, baseline)
        }
    return summary


# --- tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TaskTable:
    """One task's table as text cells, shared by the markdown and rich renderings."""

    task: str
    header: list[str]
    rows: list[list[str]]
    note: str


def _fmt_value(x: float | None) -> str:
    """A metric value: 2 decimals, or 4 significant digits for small values like losses."""
    if x is None:
        return NOT_AVAILABLE
    return f"{x:.2f}" if abs(x) >= 1 or x == 0 else f"{x:.4g}"


def _fmt_seconds(x: float | None) -> str:
    if x is None:
        return NOT_AVAILABLE
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _fmt_ratio(x: float | None) -> str:
    return NOT_AVAILABLE if x is None else f"{x:.2f}"


def _fmt_final(s: Mapping[str, Any]) -> str:
    """Median final with its min-max range over seeds when there is more than one."""
    text = _fmt_value(s["final"])
    if s["final"] is not None and s["seeds"] > 1:
        text += f" ({_fmt_value(s['final_min'])}–{_fmt_value(s['final_max'])})"
    return text


def _fmt_reached(s: Mapping[str, Any], value: float | None, fmt: Callable[[Any], str]) -> str:
    """A to-target number, "not reached" if no seed got there, marked "(k/n)" if only some did."""
    if s["target"] is None:
        return NOT_AVAILABLE
    if s["n_reached"] == 0:
        return NOT_REACHED
    text = fmt(value)
    if value is not None and s["n_reached"] < s["seeds"]:
        text += f" ({s['reached']})"
    return text


def _seed_text(methods: Mapping[str, Mapping[str, Any]]) -> str:
    counts = {m: s["seeds"] for m, s in methods.items()}
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} seed{'s' if n != 1 else ''} per method"
    return "seeds: " + ", ".join(f"{m} {n}" for m, n in counts.items())


def _target_note(methods: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: how the target was set, and how many seeds each method ran."""
    first = next(iter(methods.values()))
    baseline, metric = first["baseline"], first["metric"] or "metric"
    base = methods.get(baseline)
    seeds = _seed_text(methods)
    if base is None or base["target"] is None:
        return f"No target: no `{baseline}` run with a final {metric}; {seeds}."
    higher = base["higher_is_better"]
    op, sign = ("≥", "−") if higher else ("≤", "+")
    margin = base["margin"] or 0.0
    return (
        f"Target: {metric} {op} {_fmt_value(base['target'])} = `{baseline}` median "
        f"{_fmt_value(base['final'])} {sign} margin {margin:g}; {seeds}."
    )


def _task_table(task: str, methods: Mapping[str, Mapping[str, Any]]) -> _TaskTable:
    """Rows of the seed paper's table for one task; columns are the methods. Runs without
    curves (rows of a table read from an older results file) show their values only."""
    ss = list(methods.values())
    rows = [
        [_metric_label(ss[0]["metric"])] + [_fmt_final(s) for s in ss],
        *([label] + [_fmt_value(s["extra"].get(label)) for s in ss]
          for label in dict.fromkeys(k for s in ss for k in s["extra"])),
    ]
    if not any(s["has_curve"] for s in ss):
        rows.append(["train seconds"] + [_fmt_seconds(s["train_seconds"]) for s in ss])
        return _TaskTable(task, [""] + list(methods), rows,
                          f"Values as recorded (no curves, so no time to target); "
                          f"{_seed_text(methods)}.")
    rows += [
        ["time to target (s)"] + [_fmt_reached(s, s["time_to_target"], _fmt_seconds) for s in ss],
        ["relative time"] + [_fmt_reached(s, s["relative_time"], _fmt_ratio) for s in ss],
    ]
    for counter, label in WORK_ROWS:
        if counter in OPTIONAL_WORK_ROWS and not any(
                _is_number(s["relative_work"].get(counter)) for s in ss):
            continue
        rows.append(
            [label] + [_fmt_reached(s, s["relative_work"].get(counter), _fmt_ratio) for s in ss]
        )
    rows.append(["reached target"] + [s["reached"] for s in ss])
    rows.append(["train seconds"] + [_fmt_seconds(s["train_seconds"]) for s in ss])
    base_ms = next((s["ms_per_step"] for s in ss if s["is_baseline"]), None)
    if any(s["ms_per_step"] is not None for s in ss):
        rows.append(["ms per step"] + [_fmt_value(s["ms_per_step"]) for s in ss])
        rows.append(["relative ms per step"] + [
            _fmt_ratio(s["ms_per_step"] / base_ms)
            if _is_number(s["ms_per_step"]) and _is_number(base_ms) and base_ms > 0 else "n/a"
            for s in ss])
    return _TaskTable(task, [""] + list(methods), rows, _target_note(methods))


def _task_tables(results: Mapping[str, Any]) -> list[_TaskTable]:
    """Each task's table; columns with a run timed on a busy machine get the timing marker
    in their header, and the table's note says which runs and why."""
    tables = []
    for task, methods in summarize(results).items():
        t, runs = _task_table(task, methods), _group(_runs(results), "task")[task]
        by_method = _group(runs, "method")
        header = t.header[:1] + [m + timing_marker(by_method[m]) for m in t.header[1:]]
        note = "\n\n".join(x for x in (t.note, timing_note(runs)) if x)
        tables.append(_TaskTable(task, header, t.rows, note))
    return tables


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md_cell(c) for c in cells) + " |"


def _md_table(table: _TaskTable) -> list[str]:
    lines = [f"## {table.task}", "", _md_row(table.header)]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(table.header) - 1)) + "|")
    lines += [_md_row(row) for row in table.rows]
    return lines + ["", table.note, ""]


def markdown_report(results: Mapping[str, Any]) -> str:
    """A GitHub-markdown report: a header, then one table per task (methods as columns)."""
    lines = [
        f"# Benchmark report: {results.get('suite', '?')}",
        "",
        f"- created: {results.get('created', '?')}",
        f"- machine: {results.get('machine', '?')}",
        f"- code: {results.get('code', '?')}",
        f"- command: `{results.get('command', '?')}`",
        "",
        "Medians over seeds (min–max in brackets). Relative rows are a method's time or work to "
        'reach the target over the baseline\'s median; below 1.00 is faster. "not reached": '
        'no seed reached the target; "(k/n)": only k of n seeds did, and the median is over '
        "those.",
        "",
    ]
    tables = _task_tables(results)
    for table in tables:
        lines += _md_table(table)
    if not tables:
        lines += ["No runs.", ""]
    return "\n".join(lines)


def rich_tables(results: Mapping[str, Any]) -> list[Table]:
    """The markdown report's tables as `rich` tables, for printing to a terminal."""
    suite = results.get("suite", "?")
    tables = []
    for t in _task_tables(results):
        table = Table(title=f"{suite}: {t.task}", caption=t.note)
        table.add_column(t.header[0])
        for method in t.header[1:]:
            table.add_column(method, justify="right")
        for row in t.rows:
            table.add_row(*row)
        tables.append(table)
    return tables


# --- files ---------------------------------------------------------------------------------


def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write result.json, report.md and curves.png into `out_dir` (created); return their paths.

    Keys of the returned dict: "results", "report", "curves". Call `fill_targets` first.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "result.json", "report": out / "report.md",
             "curves": out / "curves.png"}
    write_record(results, paths["results"])
    markdown = markdown_report(results)
    atomic_write(paths["report"], lambda fh: fh.write(markdown.encode("utf-8")))

    plot_curves(results, paths["curves"])
    return paths
