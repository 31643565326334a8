"""Verdicts of the pretraining ladder by its plan's rule (benchmarks/plans/pretrain-verdicts.md):
the noise floor from crammed's seeds, each row against crammed with a Welch interval, whether
the gap grows with compute, the ELECTRA gate, and the plan's commit before the rows'.

- `floor(values)`: the half-width of the crammed-vs-crammed seed interval, t(0.975, 2n - 2) x
  s x sqrt(2 / n) for n seeds of sample standard deviation s (the 95% interval of the
  difference between two n-seed means of one recipe); a gap inside it is "no difference".
- `compare(row, crammed, floor)`: d = mean(row) - mean(crammed), its 95% Welch interval, and
  the verdict: worse / no difference / better (for a loss, lower is better).
- `trend(d1, d4, floor)`: grows / holds / shrinks / changes sign between two rungs.
- `electra_gate(runs, floors)`: which linear probe (if any) separates crammed from the
  untrained control by more than its floor, the only way ELECTRA's discriminator can be
  compared with MLM here.
- `plan_order(results)`: the plan's first commit and whether every row ran at or after it.

`scripts/pretrain_verdicts.py` prints the results page's table from committed records. No
paper method here; the statistics are the plan's. Results: docs/benchmarks.md ("Pretraining
ladder: the Cramming ablation by held-out loss").
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import mean, stdev
from typing import Any

PLAN = "benchmarks/plans/pretrain-verdicts.md"
ROOT = Path(__file__).resolve().parents[2]
LOWER_IS_BETTER = {"mlm_loss_15": True, "blimp": False, "probe_sst2": False,
                   "probe_stsb": False}
PROBES = ("probe_sst2", "probe_stsb")
# the seed's table (Cramming's ablation, GLUE; ELECTRA vs BERT-Small), stated beside
SEED_DIRECTION = {
    "original-data": "slightly worse (77.3 vs 78.6)",
    "original-setup": "far worse (50.2)",
    "original-arch": "far worse (27.7)",
    "minimal-train": "close (78.1)",
    "minimal-arch": "close (76.7)",
    "electra": "ahead of MLM (79.9 vs 75.1)",
    "electra@0.5": "ahead of MLM (ELECTRA-Small at 50%: 79.0)",
    "electra@0.25": "ahead of MLM (ELECTRA-Small at 25%: 77.7)",
}


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (Welch's may be
    fractional)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def floor(values: Sequence[float]) -> float:
    """Half-width of the 95% interval of the difference between two n-seed means of one
    recipe, from one recipe's n seed values: t(0.975, 2n - 2) x s x sqrt(2 / n)."""
    n = len(values)
    if n < 2:
        return math.nan
    return t975(2 * n - 2) * stdev(values) * math.sqrt(2 / n)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(d, low, high): mean(a) - mean(b) and its 95% Welch interval."""
    d = mean(a) - mean(b)
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t975(df) * se
    return d, d - half, d + half


def compare(row: Sequence[float], crammed: Sequence[float], floor_value: float,
            lower_is_better: bool = True) -> dict[str, Any]:
    """The plan's verdict of `row` against `crammed` (seed values of one metric at one
    rung): worse when the gap exceeds the floor in the bad direction and its interval
    excludes 0 on that side, better likewise, else no difference."""
    d, low, high = welch(row, crammed)
    bad = d if lower_is_better else -d
    bad_low, bad_high = (low, high) if lower_is_better else (-high, -low)
    if bad > floor_value and bad_low > 0:
        verdict = "worse"
    elif bad < -floor_value and bad_high < 0:
        verdict = "better"
    else:
        verdict = "no difference"
    return {"d": d, "low": low, "high": high, "verdict": verdict}


def trend(first: Mapping[str, Any], second: Mapping[str, Any], floor_value: float) -> str:
    """How a row's gap to crammed moves from the smaller rung (`first`) to the larger."""
    if {first["verdict"], second["verdict"]} == {"worse", "better"}:
        return "changes sign"
    change = abs(second["d"]) - abs(first["d"])
    if change > floor_value:
        return "grows"
    if change < -floor_value:
        return "shrinks"
    return "holds"


def metric_value(run: Mapping[str, Any], metric: str, loss_rows: int | None = None,
                 mask_seeds: Sequence[int] | None = None) -> float | None:
    """A run's value of `metric`; for the loss with `loss_rows` (and `mask_seeds`), the mean
    over those masks of its `mlm_loss_grid` entry at that many rows."""
    if metric == "mlm_loss_15" and loss_rows is not None:
        grid = (run.get("eval_details") or {}).get("mlm_loss_grid") or {}
        at = grid.get(str(loss_rows))
        if not at:
            return None
        seeds = [str(s) for s in mask_seeds] if mask_seeds else list(at)
        return mean(at[s] for s in seeds)
    value = (run.get("metrics") or {}).get(metric)
    return None if value is None else float(value)


def values_by_row(runs: Sequence[Mapping[str, Any]], metric: str, **how: Any
                  ) -> dict[tuple[float, str], list[float]]:
    """{(rung FLOPs, row): [value per seed, by seed]} of `metric` over `runs`."""
    out: dict[tuple[float, str], list[tuple[int, float]]] = {}
    for run in runs:
        value = metric_value(run, metric, **how)
        if value is not None:
            out.setdefault((float(run["rung_flops"]), run["method"]), []).append(
                (int(run["seed"]), value))
    return {k: [v for _, v in sorted(vs)] for k, vs in out.items()}


def floors(runs: Sequence[Mapping[str, Any]], metrics: Sequence[str] = tuple(LOWER_IS_BETTER),
           **how: Any) -> dict[str, float]:
    """Each metric's floor from crammed's seeds at the smallest rung among `runs`."""
    out = {}
    for metric in metrics:
        values = values_by_row(runs, metric, **how)
        rungs = sorted(g for g, row in values if row == "crammed")
        out[metric] = floor(values[(rungs[0], "crammed")]) if rungs else math.nan
    return out


def choose_loss_rows(runs: Sequence[Mapping[str, Any]],
                     counts: Sequence[int] = (256, 1024, 4096)) -> dict[str, Any]:
    """Part 1's choice of the held-out row count N (the plan's rule): the smallest of
    `counts` at which, for every crammed seed at the smallest rung, the loss's spread over
    the mask seeds (max - min) is at most a quarter of the floor at that N (the floor of the
    loss averaged over the masks); the largest when none qualifies. Returns the choice and,
    per N, the floor and the largest spread."""
    crammed = [r for r in runs if r["method"] == "crammed"]
    if not crammed:
        return {"rows": None, "by_rows": {}}
    small = min(float(r["rung_flops"]) for r in crammed)
    crammed = [r for r in crammed if float(r["rung_flops"]) == small]
    by_rows: dict[int, dict[str, float]] = {}
    for n in counts:
        grids = [((r.get("eval_details") or {}).get("mlm_loss_grid") or {}).get(str(n))
                 for r in crammed]
        if not all(grids):
            continue
        spread = max(max(g.values()) - min(g.values()) for g in grids)
        by_rows[n] = {"floor": floor([mean(g.values()) for g in grids]), "spread": spread}
    fit = [n for n in counts if n in by_rows and by_rows[n]["spread"] <= by_rows[n]["floor"] / 4]
    return {"rows": fit[0] if fit else max(by_rows, default=None), "by_rows": by_rows}


def electra_gate(runs: Sequence[Mapping[str, Any]], floor_values: Mapping[str, float]
                 ) -> dict[str, dict[str, Any]]:
    """For each linear probe: crammed against the control at the smallest rung, and whether
    crammed's gain clears the probe's floor with its interval above 0."""
    out = {}
    for probe in PROBES:
        values = values_by_row(runs, probe)
        rungs = sorted(g for g, row in values if row == "crammed")
        if not rungs or (rungs[0], "control") not in values:
            continue
        gap = compare(values[(rungs[0], "crammed")], values[(rungs[0], "control")],
                      floor_values[probe], lower_is_better=False)
        out[probe] = {**gap, "clears": gap["verdict"] == "better",
                      "crammed": mean(values[(rungs[0], "crammed")]),
                      "control": mean(values[(rungs[0], "control")]),
                      "floor": floor_values[probe]}
    return out


def verdicts(runs: Sequence[Mapping[str, Any]], metric: str = "mlm_loss_15",
             floor_value: float | None = None, **how: Any) -> list[dict[str, Any]]:
    """One entry per (row, rung) with seeds of it and of crammed (the control aside): the
    plan's verdict on `metric`, and its trend over the rungs (on the larger rung's entry)."""
    values = values_by_row(runs, metric, **how)
    lower = LOWER_IS_BETTER.get(metric, True)
    fl = floors(runs, [metric], **how)[metric] if floor_value is None else floor_value
    out: list[dict[str, Any]] = []
    previous: dict[str, dict[str, Any]] = {}
    for rung, row in sorted(values, key=lambda k: (k[0], list(values).index(k))):
        base, mine = values.get((rung, "crammed")), values[(rung, row)]
        if row in ("crammed", "control") or base is None or min(len(base), len(mine)) < 2:
            continue
        entry = {"row": row, "rung": rung, "mean": mean(values[(rung, row)]),
                 "seeds": len(values[(rung, row)]), "floor": fl,
                 "seed_direction": SEED_DIRECTION.get(row, ""),
                 **compare(values[(rung, row)], base, fl, lower)}
        if row in previous:
            entry["trend"] = trend(previous[row], entry, fl)
        previous[row] = entry
        out.append(entry)
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def plan_order(results: Mapping[str, Any], plan: str = PLAN) -> dict[str, Any]:
    """When `plan` was first committed, and whether the code every part's rows ran at
    (`results["code"]`, or each joined part's) has that commit in its history: the plan
    came first."""
    first = _git("log", "--diff-filter=A", "--format=%h %cI", "--", plan).splitlines()
    commit, _, date = first[-1].partition(" ") if first else ("", "", "")
    parts = results.get("merged_from") or [results]
    codes = [str(p.get("code", "")).split(" ")[0] for p in parts if p.get("code")]
    after = bool(commit) and bool(codes) and all(
        subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit, c],
                       capture_output=True, timeout=30).returncode == 0 for c in codes)
    return {"plan": plan, "commit": commit, "date": date, "codes": codes,
            "plan_first": after}


def report_lines(results: Mapping[str, Any]) -> list[str]:
    """What `hasten report` prints under a ladder's tables: the plan's order and, where
    crammed has seeds, the verdicts on the held-out loss."""
    plan = (results.get("options") or {}).get("plan")
    if not plan:
        return ["the record names no plan (its options have no `plan`)"]
    order = plan_order(results, plan)
    lines = [f"plan {order['plan']}: first committed {order['commit'] or '(not found)'} "
             f"{order['date']}; rows ran at {', '.join(order['codes']) or '?'}: "
             + ("the plan came first" if order["plan_first"] else "NOT after the plan")]
    for v in verdicts(results.get("runs", [])):
        lines.append(f"  {v['row']} @ {v['rung']:.0e}: d = {v['d']:+.3f} "
                     f"[{v['low']:+.3f}, {v['high']:+.3f}], floor {v['floor']:.3f}: "
                     f"{v['verdict']}" + (f", {v['trend']}" if "trend" in v else "")
                     + f" (seed: {v['seed_direction'] or 'n/a'})")
    return lines
