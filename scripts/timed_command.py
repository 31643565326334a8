"""Time a hasten command end to end, as a user waits for it, and keep the figures as a record.

    python scripts/timed_command.py --budget 60 --summary runs/cram60/summary.json \
        --out benchmarks/results/cram-60s-YYYYMMDD.json --repeats 3 -- \
        taskset -c 1 env OMP_NUM_THREADS=1 hasten cram \
        --corpus ../shared/data/tinyshakespeare/input.txt --budget 60s --out runs/cram60

Each repeat runs the command as a subprocess and measures its whole wall time (imports, data
preparation, training, evaluation, export) and the children's peak resident memory, and
checks it against the budget limit of docs/reliability.md (1.25 x budget + 15 s). With
`--summary`, the figures the command wrote there (steps, tokens, its own timing ledger,
held-out loss, chosen size) are kept beside each run. The first repeat may prepare data that
later repeats reuse from the cache; each run keeps its `prepare` seconds when the summary
has them. The record follows `hasten.bench.records` (`hasten report FILE` renders it).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hasten.bench.records import pinning, provenance, write_record
from hasten.core.budget import Budget
from hasten.core.trainer import wall_limit

SUMMARY_KEYS = ("steps", "stopped", "work", "ledger", "seconds", "heldout_loss_start",
                "heldout_loss", "parameters", "size")


def limit_seconds(budget: float) -> float:
    """The wall time a seconds budget promises at most (docs/reliability.md)."""
    return float(wall_limit(Budget(f"{budget}s")))


def timed_run(command: Sequence[str], budget: float, summary: Path | None) -> dict[str, Any]:
    """Run `command` once; its wall seconds, exit code, peak memory and summary figures."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    code = subprocess.run(list(command), stdout=subprocess.DEVNULL, check=False).returncode
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run: dict[str, Any] = {
        "exit_code": code, "wall_seconds": round(wall, 2), "budget_seconds": budget,
        "limit_seconds": limit_seconds(budget), "within_limit": wall <= limit_seconds(budget),
        "wall_over_budget": round(wall / budget, 3),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1)}
    if summary is not None and summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        run["summary"] = {k: data[k] for k in SUMMARY_KEYS if k in data}
    return run


def _cpus(spec: str) -> list[int]:
    """A taskset CPU list ("0", "0,2", "0-3") as core numbers."""
    cpus: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(cpus))


def command_pinning(command: Sequence[str], own: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The timed command's pinning, read from its `taskset -c LIST` and `env VAR=VALUE`
    prefix (the record's `pinning`); without a taskset prefix, this process's own, which the
    command inherits. `timer` keeps this process's own (`own`, else read) either way."""
    own, args = own or pinning(), list(command)
    pins: dict[str, Any] = {**own, "env": dict(own["env"]), "torch_threads": None,
                            "timer": own}
    if args[:2] == ["taskset", "-c"] and len(args) > 2:
        pins["cpus"] = _cpus(args[2])
        pins["all_cpus"] = len(pins["cpus"]) >= own["cpu_count"]
        args = args[3:]
    if args[:1] == ["env"]:
        for arg in args[1:]:
            if "=" not in arg:
                break
            key, _, value = arg.partition("=")
            pins["env"][key] = value
    return pins


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, required=True, help="the command's seconds budget")
    ap.add_argument("--summary", type=Path, help="a JSON file the command writes (optional)")
    ap.add_argument("--out", type=Path, required=True, help="the record to write")
    ap.add_argument("--repeats", type=int, default=1, help="runs of the same command")
    ap.add_argument("--task", default="command", help="the record's task name")
    ap.add_argument("--notes", default="", help="how the figures were made, what they mean")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to time after --")
    runs = []
    for i in range(args.repeats):
        run = timed_run(command, args.budget, args.summary)
        print(f"run {i + 1}/{args.repeats}: exit {run['exit_code']}, {run['wall_seconds']:.1f}s"
              f" wall for a {args.budget:g}s budget (limit {run['limit_seconds']:g}s)",
              flush=True)
        runs.append({"task": args.task, "method": "as-run", "seed": i, "metric": "wall_seconds",
                     "higher_is_better": False, "final": run["wall_seconds"], **run})
    head = provenance(command=shlex.join(command))
    record = {**head, "pinning": command_pinning(command, head["pinning"]),
              "suite": "timed-command", "status": "complete", "notes": args.notes, "runs": runs}
    write_record(record, args.out)
    print(f"wrote {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
