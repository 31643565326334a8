"""Timing a user can trust: the machine's state around every benchmark run, and a flag when
it was not quiet.

Wall-clock comparisons (relative time, time to target) are only as good as the machine they
ran on: another process on the same cores slows whichever runs happen to overlap it, and a
table of relative times then reports the load, not the method. Each run is measured with:

- a calibration probe before it: a fixed small matmul and convolution workload, timed
  (about 0.2 s on a quiet core; its chunks' mean scaled to the whole, cut short after
  0.5 s), run with the run's own thread settings. A probe that moved by more
  than `tolerance` (25%) from the suite's first probe means the machine's speed changed
  between runs;
- the load average (`os.getloadavg`) before and after. It is machine-wide, so it is compared
  with the machine's cores: above them, some runnable thread had to wait;
- the run-queue wait of this process's threads during the run (Linux schedstat: time
  runnable but not running, over time running plus waiting). Above `wait_tolerance` (10%),
  the run's own cores were shared, which the load average cannot see when runs are pinned;
- the CPU affinity (`os.sched_getaffinity`), torch's intra- and inter-op threads and the
  OMP_NUM_THREADS / MKL_NUM_THREADS settings.

A flagged run gets `timing_flag` = {"reasons": [...], "repeated": bool} in its record (None
when clean); with `repeat=True` it is run once more and the second run is kept, its first
reasons under "first_reasons". `timing_note(runs)` turns the flags into the note a report
prints under its table, and `timing_marker(runs)` the marker its column gets.

`choose_threads()` sets torch's threads to the cores this process may use, the deliberate
choice `hasten demo` and `hasten bench` make and record.

Departure from the simplest rule, on purpose: the load average is compared with the
machine's cores, not the cores given to the run, because it counts every process: two runs
pinned one per core would each see a load of 2 on their 1 core while neither waits. The
run-queue wait measures contention on the run's own cores directly.

Where its result is shown: docs/benchmarks.md, "How to read these figures".
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

PROBE_TOLERANCE = 0.25  # probe time moved by more than this fraction: the machine changed
WAIT_TOLERANCE = 0.10  # threads waited for a CPU more than this fraction of their time
MARKER = "†"
_PROBE_ROUNDS = 1000  # the probe's nominal workload


def cores_available() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def thread_settings() -> dict[str, Any]:
    """torch's intra- and inter-op threads and the thread variables of the environment."""
    return {"torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS")}


def choose_threads(cores: int | None = None) -> dict[str, Any]:
    """Set torch's intra-op threads to `cores` (default: the cores in this process's
    affinity mask, so a run pinned with taskset uses exactly its cores) and return the
    resulting settings, to record with the results."""
    n = cores if cores is not None else len(cores_available())
    if n < 1:
        raise ValueError(f"need at least one thread, got {n}")
    torch.set_num_threads(n)
    return {**thread_settings(), "cores": cores_available()}


def probe_seconds(quick: bool = False) -> float:
    """Wall seconds a fixed small workload (1,000 rounds of a 128x128 matmul and a small
    convolution, about 0.2 s on a quiet core) takes: chunks of 10 rounds are timed and
    their mean is scaled to 1,000 rounds, so time the process spends preempted counts, as
    it does in a run. It stops after half a second, so a busy machine does not stretch it
    much. `quick` times at most 10 chunks of 2 rounds for 0.02 s (for smoke tests)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(128, 128, generator=g)
    x, w = torch.randn(4, 8, 28, 28, generator=g), torch.randn(16, 8, 3, 3, generator=g)
    rounds, chunks, cap = (2, 10, 0.02) if quick else (10, 100, 0.5)
    with torch.no_grad():
        for _ in range(1 if quick else 3):  # warm-up: allocations, thread pool start
            a @ a
            F.conv2d(x, w, padding=1)
        times: list[float] = []
        begin = time.perf_counter()
        while len(times) < chunks and (not times or time.perf_counter() - begin < cap):
            start = time.perf_counter()
            for _ in range(rounds):
                a @ a
                F.conv2d(x, w, padding=1)
            times.append(time.perf_counter() - start)
    return statistics.fmean(times) * _PROBE_ROUNDS / rounds


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (None where the system has none)."""
    try:
        return [round(v, 3) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_and_wait_seconds() -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for one), summed over this process's
    threads (Linux schedstat); None where the kernel does not provide it."""
    run = wait = 0.0
    try:
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = (task / "schedstat").read_text().split()
            except OSError:  # the thread ended meanwhile
                continue
            run += int(fields[0]) / 1e9
            wait += int(fields[1]) / 1e9
    except OSError:
        return None
    return run, wait


def snapshot(probe: bool = True, quick: bool = False) -> dict[str, Any]:
    """The machine's state now: load, cores, threads, the scheduler's counters of this
    process and, with `probe`, the calibration probe's seconds."""
    counters = cpu_and_wait_seconds()
    return {"time": time.time(), "loadavg": load_average(), "cpu_count": os.cpu_count(),
            "cores": cores_available(), **thread_settings(),
            "cpu_seconds": counters[0] if counters else None,
            "wait_seconds": counters[1] if counters else None,
            "probe_seconds": probe_seconds(quick) if probe else None}


def wait_fraction(before: Mapping[str, Any], after: Mapping[str, Any]) -> float | None:
    """The share of its threads' time the run spent waiting for a CPU between two
    snapshots: wait / (cpu + wait), or None without scheduler counters."""
    keys = ("cpu_seconds", "wait_seconds")
    if any(not _number(s.get(k)) for s in (before, after) for k in keys):
        return None
    cpu = max(0.0, after["cpu_seconds"] - before["cpu_seconds"])
    wait = max(0.0, after["wait_seconds"] - before["wait_seconds"])
    return wait / (cpu + wait) if cpu + wait > 0 else None


def flag_reasons(state: Mapping[str, Any], tolerance: float = PROBE_TOLERANCE,
                 wait_tolerance: float = WAIT_TOLERANCE) -> list[str]:
    """Why a run's timing is suspect, from its `machine_state` (empty when it is not)."""
    before, after = state.get("before") or {}, state.get("after") or {}
    reasons = []
    probe, reference = before.get("probe_seconds"), state.get("reference_probe")
    if _number(probe) and _number(reference) and reference > 0:
        ratio = probe / reference
        if abs(ratio - 1.0) > tolerance:
            reasons.append(f"probe {ratio:.2f}x the suite's first")
    loads = [s["loadavg"][0] for s in (before, after) if s.get("loadavg")]
    cores = before.get("cpu_count")
    if loads and _number(cores) and max(loads) > cores:
        reasons.append(f"load average {max(loads):.2f} over {cores} cores")
    waited = state.get("wait_fraction")
    if _number(waited) and waited > wait_tolerance:
        reasons.append(f"threads waited {100 * waited:.0f}% of their time for a CPU")
    return reasons


class TimingMonitor:
    """Measures the machine around each run of a suite and flags (and optionally repeats
    once) the runs timed on a busy machine. The suite's first probe is the reference."""

    def __init__(self, tolerance: float = PROBE_TOLERANCE,
                 wait_tolerance: float = WAIT_TOLERANCE, repeat: bool = False,
                 quick: bool = False):
        self.tolerance, self.wait_tolerance = tolerance, wait_tolerance
        self.repeat, self.quick = repeat, quick
        self.reference: float | None = None

    def _once(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        before = snapshot(probe=True, quick=self.quick)
        if self.reference is None:
            self.reference = before["probe_seconds"]
        result = fn(*args, **kwargs)
        after = snapshot(probe=False)
        state = {"before": before, "after": after, "reference_probe": self.reference,
                 "wait_fraction": wait_fraction(before, after),
                 "tolerance": self.tolerance, "wait_tolerance": self.wait_tolerance}
        run = _record(result)
        run["machine_state"] = state
        reasons = flag_reasons(state, self.tolerance, self.wait_tolerance)
        run["timing_flag"] = {"reasons": reasons, "repeated": False} if reasons else None
        return result

    def measure(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, whose result is a run record or a tuple starting with one
        (as `run_one` returns), with `machine_state` and `timing_flag` added to the record.
        A flagged run runs once more when `repeat` is set, and the second result is kept."""
        result = self._once(fn, args, kwargs)
        flag = _record(result)["timing_flag"]
        if flag is None or not self.repeat:
            return result
        result = self._once(fn, args, kwargs)
        run = _record(result)
        again = run["timing_flag"] or {"reasons": []}
        run["timing_flag"] = {"reasons": again["reasons"], "repeated": True,
                              "first_reasons": flag["reasons"]}
        return result


def _record(result: Any) -> dict[str, Any]:
    return result[0] if isinstance(result, tuple) else result


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def timing_marker(runs: Sequence[Mapping[str, Any]]) -> str:
    """The marker a table column gets when any of its runs was flagged ("" otherwise)."""
    return MARKER if any(r.get("timing_flag") for r in runs) else ""


def timing_note(runs: Sequence[Mapping[str, Any]]) -> str:
    """One paragraph for under a table: which runs were timed on a busy machine and why,
    and which were repeated; "" when every run was clean."""
    flagged = [r for r in runs if r.get("timing_flag")]
    if not flagged:
        return ""
    parts = []
    for r in flagged:
        flag = r["timing_flag"]
        name = f"{r.get('task')}/{r.get('method')} seed {r.get('seed')}"
        if flag.get("repeated"):
            first = "; ".join(flag.get("first_reasons") or [])
            now = "; ".join(flag["reasons"]) or "clean"
            parts.append(f"{name}: {first}; repeated once: {now}")
        else:
            parts.append(f"{name}: {'; '.join(flag['reasons'])}")
    still = sum(1 for r in flagged if r["timing_flag"]["reasons"])
    return (f"{MARKER} Timing flagged in {len(flagged)} of {len(runs)} runs ({still} still "
            f"flagged): " + "; ".join(parts) + ". Their wall-clock numbers may reflect other "
            "load on the machine; work counters are unaffected.")
