"""The lever stack decided by the measurement standard: work to a fixed target, times the cost
of a step, against the tuned baseline.

A stack run and the tuned baseline's are evaluated at the same points of work (every 2% of
the tuned baseline's examples, on a fixed part of the test set). The target is the tuned
baseline's quality at the end of training on that part (the median over its seeds of the
mean of its last three intermediate evaluations) less the task's margin; a run's work to
target is its optimizer steps at the first intermediate evaluation at or above it. Its
time to target is modelled, not clocked, so that the quality runs may share a machine:

    time = steps to target x seconds per step (its configuration's) + one-off seconds

with seconds per step from `scripts/iteration_cost.py`: every configuration trained in turn
with the tuned baseline on one quiet core (`hasten.bench.step_cost`), its step cost
ratio to the tuned baseline's, and its one-off seconds (a proxy's training, compilation).
Per seed, the relative time is a run's time over the tuned baseline's of the same seed; a
seed that never reaches the target is infinitely slow.

Verdicts, fixed in `benchmarks/plans/stack-work.md` before the runs:
- the stack passes when the 95% t-interval of its relative time (over seeds) lies at or
  below `max_relative` (0.6), fails when it lies above, else undecided; a seed that never
  reaches the target makes it fail when it is the median seed, else undecided;
- a lever pays inside the stack when removing it costs at least `pays` (5%) of the stack's
  time: per seed, time without it over time with it, less 1; "pays" when the interval's
  lower end is at or above 5%, "does not pay" when its upper end is below, else undecided.
  The validation phase drops only the levers that do not pay.

No paper here: the rule is the plan's. Departure from `hasten.bench.stack_report`, the
wall-clock reading it replaces: no seconds of a run on a shared machine enter a verdict.
Results: docs/benchmarks.md, "A lever stack at one budget: does not pass here".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from hasten.bench.evidence import Interval, paired_interval
from hasten.core.errors import DataError

MINUS = "stack-minus-"


def subset_points(run: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(optimizer steps, metric) of a run's intermediate evaluations, on the fixed part of
    the test set (the last point of a curve is the final evaluation, on all of it)."""
    curve = run.get("curve") or []
    return [(int(work["steps"]), float(metric)) for _, work, metric in curve[:-1]]


def target(runs: Sequence[Mapping[str, Any]], baseline: str, margin: float) -> float:
    """The baseline's end-of-training quality on the evaluation part, less `margin`: the
    median over its seeds of the mean of each run's last three intermediate evaluations."""
    ends = [statistics.fmean(m for _, m in subset_points(r)[-3:])
            for r in runs if r.get("method") == baseline and subset_points(r)]
    if not ends:
        raise DataError(f"no {baseline} run with intermediate evaluations to set the target")
    return statistics.median(ends) - margin


def steps_to_target(run: Mapping[str, Any], goal: float) -> float:
    """Optimizer steps at the first intermediate evaluation at or above `goal`, else inf."""
    return next((float(s) for s, m in subset_points(run) if m >= goal), math.inf)


def step_costs(cost_record: Mapping[str, Any], baseline: str) -> dict[str, tuple[float, float]]:
    """{configuration: (step cost over the baseline's, one-off seconds over the baseline's
    seconds per step)} from an iteration-cost record whose baseline is `baseline`."""
    base = (cost_record.get("notes") or {}).get("baseline") or {}
    if base.get("method") != baseline:
        raise DataError(f"the step costs were measured against {base.get('method')!r}, "
                        f"not {baseline!r}")
    costs = {baseline: (1.0, float(base.get("one_off_seconds") or 0.0))}
    for run in cost_record.get("runs") or []:
        rows = (run.get("notes") or {}).get("report_rows") or {}
        costs[run["method"]] = (float(run["final"]), float(rows.get("one-off seconds") or 0.0))
    seconds = [r["notes"]["report_rows"]["baseline ms per step"] / 1000.0
               for r in cost_record.get("runs") or []]
    per_step = statistics.median(seconds) if seconds else 1.0
    return {m: (ratio, one_off / per_step) for m, (ratio, one_off) in costs.items()}


def relative_times(runs: Sequence[Mapping[str, Any]], costs: Mapping[str, tuple[float, float]],
                   baseline: str, goal: float) -> dict[str, dict[int, float]]:
    """{method: {seed: its modelled time to `goal` over the baseline's, same seed}} for every
    method with a step cost; inf where the method never reaches the goal."""
    def modelled(run: Mapping[str, Any]) -> float:
        ratio, one_off = costs[run["method"]]
        return steps_to_target(run, goal) * ratio + one_off
    base = {int(r["seed"]): modelled(r) for r in runs if r.get("method") == baseline}
    out: dict[str, dict[int, float]] = {}
    for run in runs:
        seed, method = int(run["seed"]), run["method"]
        if method in costs and math.isfinite(base.get(seed, math.inf)):
            out.setdefault(method, {})[seed] = modelled(run) / base[seed]
    return out


def _interval(values: Sequence[float]) -> Interval | None:
    finite = [v for v in values if math.isfinite(v)]
    return paired_interval(finite) if len(finite) == len(values) and len(values) > 1 else None


def stack_verdict(times: Mapping[int, float], max_relative: float = 0.6) -> dict[str, Any]:
    """The stack's relative time over seeds and the plan's verdict at `max_relative`."""
    values = [times[s] for s in sorted(times)]
    i = _interval(values)
    if i is None:
        median = statistics.median(values) if values else math.inf
        verdict = "fails" if not math.isfinite(median) else "undecided"
    else:
        verdict = ("passes" if i.high <= max_relative else
                   "fails" if i.low > max_relative else "undecided")
    return {"interval": i, "median": statistics.median(values) if values else math.inf,
            "verdict": verdict, "max_relative": max_relative}


def removal_costs(times: Mapping[str, Mapping[int, float]], pays: float = 0.05
                  ) -> dict[str, dict[str, Any]]:
    """For each `stack-minus-X`: per seed (where the stack reached the target) its time over
    the stack's, less 1 (inf where it never reached it); the interval and whether X pays
    (lower end >= `pays`, or the target lost on most seeds), does not pay (upper end <
    `pays`) or is undecided."""
    stack, out = times.get("stack") or {}, {}
    for method, mine in times.items():
        if not method.startswith(MINUS):
            continue
        seeds = [s for s in sorted(set(mine) & set(stack)) if math.isfinite(stack[s])]
        costs = {s: mine[s] / stack[s] - 1.0 for s in seeds}
        i = _interval(list(costs.values()))
        lost = sum(not math.isfinite(c) for c in costs.values())
        if i is not None:
            verdict = "pays" if i.low >= pays else "does not pay" if i.high < pays else \
                "undecided"
        else:
            verdict = "pays" if lost * 2 > len(costs) else "undecided"
        out[method[len(MINUS):]] = {"costs": costs, "interval": i, "verdict": verdict}
    return out
