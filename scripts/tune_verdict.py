"""Print the tune evaluation's reading (benchmarks/plans/tune.md) from its part records, and keep
it as a record a page can cite.

    python scripts/tune_verdict.py benchmarks/results/tune-eval-*.json --out FILE

The rule is `hasten.bench.tune_verdict` (the same lines `hasten report` prints on the joined
parts): per task the target is the baseline's median final quality over seeds, each arm's
median time to it (B where never reached) and median final quality, and the oracle's where
its three seeds are in. `--out FILE` writes a record: a run per task and arm (`final` its
median final quality, `notes.time_to_target` its median seconds to the task's target,
`notes.seeds` the seeds read), each task's reading under `tasks`, the verdict and its lines;
an existing FILE is refused. `--supersedes OLD` names the earlier reading this one replaces (the
old file then moves to results/superseded/). Parts whose runs repeat a (task, method, seed)
are refused.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from hasten.bench.records import load_record, provenance, write_record
from hasten.bench.tune_verdict import (
    planned_runs,
    readings,
    time_to,
    verdict_of,
)
from hasten.core.errors import DataError, run_script

ARMS = ("baseline", "throughput-autotune", "tuned", "oracle")


def joined_runs(paths: list[Path]) -> list[dict]:
    """The runs of every part, each (task, method, seed) once."""
    runs, seen = [], {}
    for path in paths:
        for run in load_record(path)["runs"]:
            key = (run["task"], run["method"], run.get("seed"))
            if key in seen:
                raise DataError(f"{path.name} repeats {key[0]} / {key[1]} / seed {key[2]}, "
                                f"already in {seen[key]}")
            seen[key] = path.name
            runs.append(run)
    return runs


def arm_rows(runs: list[dict], readings: list[dict]) -> list[dict]:
    """A run per task and arm: median final quality, median time to the task's target."""
    rows = []
    for reading in readings:
        if "target" not in reading:
            continue
        task = reading["task"]
        planned = planned_runs(runs, task)
        for arm in ARMS:
            mine = [r for r in planned if r["method"] == arm]
            if not mine:
                continue
            rows.append({
                "task": task, "method": arm, "seed": None, "metric": mine[0].get("metric"),
                "higher_is_better": mine[0].get("higher_is_better", True),
                "final": statistics.median(r["final"] for r in mine),
                "notes": {"time_to_target": statistics.median(
                    time_to(r, reading["target"]) for r in mine),
                    "seeds": sorted(r["seed"] for r in mine)}})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", type=Path, nargs="+", help="the evaluation's part records")
    ap.add_argument("--out", type=Path, help="also write the reading as a record here")
    ap.add_argument("--supersedes", metavar="OLD", help="the earlier reading's file name, "
                    "which this record replaces")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.exists():
        ap.error(f"{args.out} exists: records are never replaced")
    if args.supersedes and args.out is None:
        ap.error("--supersedes names what the --out record replaces: give --out")
    runs = joined_runs(args.parts)
    task_readings = readings(runs)
    verdict, lines = verdict_of(task_readings)
    print("\n".join(lines))
    if args.out is not None:
        write_record({**provenance(program="python scripts/tune_verdict.py"),
                      "suite": "tune-verdict", "status": "complete",
                      "inputs": [p.name for p in args.parts], "verdict": verdict,
                      "lines": lines, "tasks": {r["task"]: r for r in task_readings},
                      "runs": arm_rows(runs, task_readings),
                      **({"supersedes": args.supersedes} if args.supersedes else {})}, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main)
