"""The decision rule of `hasten tune`'s evaluation (benchmarks/plans/tune.md), read from its
parts joined: per task the target is the baseline's median final quality over seeds (margin 0),
a run's time to target its curve's first evaluation at or past it (charged measuring included,
as the suite's curves start when the measuring ends), B where it never gets there.

It passes when (1) on at least 3 of the 4 tasks the tuned arm's median time to target is within
0.7 x B and no later than the throughput-only arm's median; (2) on no task its median final
quality falls below the baseline's median less the task's margin; (3) on Fashion-MNIST and
SST-2-small its median time is within 10% of the oracle's (the fastest configuration of the lever
stack's test phase, `hasten.bench.tune_oracle`: its runs' median time to the same target, once
all three seeds are in; or given): without the oracle's times, item 3 is "not decided". A run
whose recipe's fingerprint is not the plan's is left out. Until every task has its three seeds,
the reading is "incomplete". Where it is shown: docs/tune.md, "How well it chooses".
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from hasten.core.target import time_to_target

BUDGET_SECONDS = 1200.0  # B, the plan's 20 minutes of training a run
WITHIN = 0.7  # item 1: the tuned arm's median time to target at most 0.7 x B
TASKS_NEEDED = 3  # item 1: on at least 3 of the 4 tasks
ORACLE_SLACK = 0.10  # item 3: within 10% of the oracle's time
SEEDS = (0, 1, 2)
MARGINS = {"fashion-mnist": 0.3, "sst2-small": 1.0, "mt-en-de": 0.5,
           "shakespeare-char": 0.02}  # the plan's, fixed before any run
FINGERPRINTS = {"fashion-mnist": "ac0cc9ac421dfdbe", "sst2-small": "f1c6efbb15f271d7",
                "mt-en-de": "1ab0c4c971499ede",
                "shakespeare-char": "edea2a963acc56bf"}  # the plan's addendum


def _reaches(value: float, target: float, higher: bool) -> bool:
    return value >= target if higher else value <= target


def time_to(run: Mapping[str, Any], target: float, budget: float = BUDGET_SECONDS) -> float:
    """Seconds (charged measuring included) at the run's first evaluation at or past the
    target; `budget` where none is."""
    hit = time_to_target(run.get("curve") or [], target, run.get("higher_is_better", True))
    return budget if hit is None else hit.seconds


def planned_runs(runs: Sequence[Mapping[str, Any]], task: str) -> list[Mapping[str, Any]]:
    """The runs of `task` whose recipe is the one the plan fixed (its fingerprint)."""
    return [r for r in runs if r["task"] == task
            and (r.get("notes") or {}).get("recipe_fingerprint") == FINGERPRINTS[task]]


def task_reading(runs: Sequence[Mapping[str, Any]], task: str,
                 oracle_seconds: float | None = None) -> dict[str, Any]:
    """One task's figures and items: medians over the seeds present of each arm's final
    quality and time to the target."""
    ours = [r for r in runs if r["task"] == task]
    mine = planned_runs(ours, task)
    arm = {m: [r for r in mine if r["method"] == m]
           for m in ("baseline", "throughput-autotune", "tuned")}
    if not all(arm.values()):
        return {"task": task, "seeds": 0, "left_out": len(ours) - len(mine)}
    higher = arm["baseline"][0].get("higher_is_better", True)
    target = statistics.median(r["final"] for r in arm["baseline"])
    times = {m: statistics.median(time_to(r, target) for r in rs) for m, rs in arm.items()}
    finals = {m: statistics.median(r["final"] for r in rs) for m, rs in arm.items()}
    floor = target - MARGINS[task] if higher else target + MARGINS[task]
    seeds = min(len({r["seed"] for r in rs} & set(SEEDS)) for rs in arm.values())
    out: dict[str, Any] = {
        "task": task, "seeds": seeds, "left_out": len(ours) - len(mine), "target": target,
        "times": times, "finals": finals,
        "spread": [min(r["final"] for r in arm["baseline"]),
                   max(r["final"] for r in arm["baseline"])],
        "fast": times["tuned"] <= WITHIN * BUDGET_SECONDS
        and times["tuned"] <= times["throughput-autotune"],
        "no_worse": _reaches(finals["tuned"], floor, higher)}
    oracle_runs = [r for r in mine if r["method"] == "oracle"]
    out["oracle_seeds"] = len({r["seed"] for r in oracle_runs} & set(SEEDS))
    if oracle_seconds is None and out["oracle_seeds"] == len(SEEDS):
        oracle_seconds = statistics.median(time_to(r, target) for r in oracle_runs)
    if oracle_seconds is not None:
        out["oracle"] = oracle_seconds
        out["near_oracle"] = times["tuned"] <= (1 + ORACLE_SLACK) * oracle_seconds
    return out


def tune_verdict(runs: Sequence[Mapping[str, Any]],
                 oracle: Mapping[str, float] | None = None) -> tuple[str, list[str]]:
    """("pass" | "fail" | "undecided" | "incomplete", the lines that say why)."""
    return verdict_of(readings(runs, oracle))


def readings(runs: Sequence[Mapping[str, Any]],
             oracle: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """`task_reading` of every task of the plan, in MARGINS' order."""
    oracle = oracle or {}
    return [task_reading(runs, t, oracle.get(t)) for t in MARGINS]


def verdict_of(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """`tune_verdict` from the four tasks' readings (`task_reading`, in MARGINS' order)."""
    lines = []
    for row in rows:
        if row["left_out"]:
            lines.append(f"{row['task']}: {row['left_out']} run(s) left out, their recipe's "
                         f"fingerprint not the plan's {FINGERPRINTS[row['task']]}")
        if not row["seeds"]:
            lines.append(f"{row['task']}: no complete part")
            continue
        t, f = row["times"], row["finals"]
        lines.append(
            f"{row['task']} ({row['seeds']} seed(s)): target {row['target']:g}; time to it "
            f"tuned {t['tuned']:.0f} s, throughput {t['throughput-autotune']:.0f} s, baseline "
            f"{t['baseline']:.0f} s; final tuned {f['tuned']:g}, baseline {f['baseline']:g} "
            f"(seeds {row['spread'][0]:g}-{row['spread'][1]:g}); "
            f"{'fast' if row['fast'] else 'not fast'}, "
            f"{'no worse' if row['no_worse'] else 'worse than the margin'}"
            + (f"; oracle {row['oracle']:.0f} s, {'near' if row['near_oracle'] else 'far'}"
               if "oracle" in row else
               f"; oracle {row['oracle_seeds']} of {len(SEEDS)} seeds" if row["oracle_seeds"]
               else ""))
    done = [r for r in rows if r["seeds"] == len(SEEDS)]
    if len(done) < len(rows):
        parts = sum(r["seeds"] for r in rows)
        return "incomplete", [*lines, f"verdict: incomplete ({parts} of "
                                      f"{len(rows) * len(SEEDS)} parts)"]
    fast = sum(r["fast"] for r in done)
    worse = [r["task"] for r in done if not r["no_worse"]]
    near = [r.get("near_oracle") for r in done if r["task"] in ("fashion-mnist", "sst2-small")]
    if fast < TASKS_NEEDED or worse or False in near:
        why = [f"fast on {fast} of {len(done)} tasks"] + \
              ([f"worse than the margin on {', '.join(worse)}"] if worse else []) + \
              (["far from the oracle"] if False in near else [])
        return "fail", [*lines, f"verdict: fail ({'; '.join(why)})"]
    if None in near:
        return "undecided", [*lines, f"verdict: undecided (items 1-2 hold, fast on {fast} of "
                                     f"{len(done)} tasks; the oracle's times are not recorded)"]
    return "pass", [*lines, f"verdict: pass (fast on {fast} of {len(done)} tasks)"]
