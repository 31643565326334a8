"""Print the lever stack's verdict by work and step cost (benchmarks/plans/stack-work.md) from
a phase's quality record and its iteration-cost record.

    python scripts/stack_verdict.py benchmarks/results/stack-work-T-test-DATE.json \
        benchmarks/results/iteration-cost-stack-T-DATE.json --margin 0.3

The statistics are `hasten.bench.stack_work`; the final quality beside is
`hasten.bench.evidence.compare` (paired by seed, the margin). `--out FILE` also keeps what it
prints as a record (the inputs by name; a run a configuration, `final` its median relative
time over seeds, null where that median never reaches the target; its seeds' times and how
many reached in `notes`), so that a page can cite the figures; an existing FILE is refused.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from hasten.bench import stack_work as sw
from hasten.bench.evidence import compare
from hasten.bench.records import load_record, provenance, write_record
from hasten.core.errors import run_script


def _interval(i: object) -> str:
    return "fewer than two finite seeds" if i is None else \
        f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]"  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("quality", type=Path, help="the phase's quality record")
    ap.add_argument("costs", type=Path, help="the phase's iteration-cost record")
    ap.add_argument("--margin", type=float, required=True, help="the task's margin (points)")
    ap.add_argument("--baseline", default="tuned-baseline")
    ap.add_argument("--max-relative", type=float, default=0.6)
    ap.add_argument("--pays", type=float, default=0.05)
    ap.add_argument("--out", type=Path, help="also write the verdict as a record here")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.exists():
        ap.error(f"{args.out} exists: records are never replaced")
    quality, costs = load_record(args.quality), load_record(args.costs)
    runs = quality["runs"]
    goal = sw.target(runs, args.baseline, args.margin)
    times = sw.relative_times(runs, sw.step_costs(costs, args.baseline), args.baseline, goal)
    print(f"target {goal:.2f} ({args.baseline}'s end of training on the evaluated part, "
          f"less {args.margin:g})")
    for method, by_seed in times.items():
        cells = ", ".join(f"{s}: {v:.3f}" if math.isfinite(v) else f"{s}: not reached"
                          for s, v in sorted(by_seed.items()))
        print(f"  {method}: relative time by seed {cells}")
    v = q = None
    if "stack" in times:
        v = sw.stack_verdict(times["stack"], args.max_relative)
        print(f"stack: {_interval(v['interval'])}, {v['verdict']} (at most "
              f"{args.max_relative:g}x the {args.baseline}'s time)")
        q = compare(runs, "stack", args.baseline, args.margin, "steps")
        if q is not None:
            i = q["interval"]
            print(f"stack's final quality minus {args.baseline}'s: {i.mean:+.2f} "
                  f"[{i.low:+.2f}, {i.high:+.2f}], {q['verdict']} at margin {args.margin:g}")
    removal = sw.removal_costs(times, args.pays)
    for lever, r in removal.items():
        print(f"  {lever}: removal cost {_interval(r['interval'])}: {r['verdict']}")
    if args.out is not None:
        write_record(_record(args, runs, goal, times, v, q, removal), args.out)
        print(f"wrote {args.out}")
    return 0


def _fields(i: object) -> dict[str, float] | None:
    return None if i is None else {k: getattr(i, k) for k in ("mean", "low", "high")}


def _record(args: argparse.Namespace, runs: list, goal: float, times: dict, v: dict | None,
            q: dict | None, removal: dict) -> dict:
    """What was printed, as a record: a run a configuration (`final` its median relative time,
    None where the median seed never reaches the target: `write_record` writes inf as null),
    the verdicts beside."""
    head = {**provenance(program="python scripts/stack_verdict.py"), "suite": "stack-verdict",
            "status": "complete"}
    task = runs[0]["task"] if runs else None
    rows = [{"task": task, "method": m, "seed": None, "metric": "relative time (modelled)",
             "higher_is_better": False, "final": statistics.median(by.values()),
             "notes": {"by_seed": dict(sorted(by.items())),
                       "reached": sum(math.isfinite(t) for t in by.values()),
                       "seeds": len(by)}} for m, by in times.items()]
    return {**head, "inputs": {"quality": args.quality.name, "costs": args.costs.name},
            "baseline": args.baseline, "margin": args.margin, "target": goal,
            "max_relative": args.max_relative, "pays": args.pays,
            "stack": None if v is None else {"verdict": v["verdict"],
                                             "interval": _fields(v["interval"]),
                                             "median": v["median"]},
            "stack_quality": None if q is None else {"verdict": q["verdict"],
                                                     **_fields(q["interval"])},
            "removal_costs": {lever: {"verdict": r["verdict"], "interval": _fields(r["interval"]),
                                      "by_seed": r["costs"]}
                              for lever, r in removal.items()},
            "runs": rows}


if __name__ == "__main__":
    run_script(main)
