"""The cost of a unit of work: several trainings timed in turn on one core.

`alternate` runs trainings (arms) in turn, a block of optimizer steps each, each arm in its
own process with only one ever running, their order rotating from round to round
(`schedule`): the trainer's whole iteration (data, forward, backward, the lever's
bookkeeping) is timed for every arm under the same conditions, drift falling on all alike.

Two readings of the blocks:
- `time_ratio` (one instance an arm): the median, with its interquartile range, over cycles
  of rounds (every arm in every place once) of the ratio of seconds per step.
- `instance_ratio` (several instances an arm, `NAME#I`, each built apart): the ratio of the
  geometric means of the instances' median seconds per step, with the 95% Welch interval
  between instances. Use it: two arms of one recipe built apart can differ by more than
  the levers they price, a fixed offset for each process's life, while forks of one built
  object agree; the offset follows where the tensors land in the heap (with a fixed mmap
  threshold, every large tensor fresh from the kernel, it goes, at a higher cost a step).
  One instance an arm measures its layout, not its method.
Both scale by the lever's share of the baseline's steps and add its one-off costs over the
baseline's time; `checked_ratio` keeps whole runs' figure where the model differs from it by
more than 10%.

Departures: none from a paper; Welch's interval is `hasten.bench.ladder_verdicts.welch`.

Where its results are shown: docs/benchmarks.md, "How a lever is decided".
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from hasten.bench.ladder_verdicts import welch
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainState


class _Enough(Exception):
    """Ends an arm whose rivals have all finished."""


def schedule(names: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(round, arm) of every turn, forever: round r starts with arm r (mod the number of arms)
    and goes on in the given order, so every arm takes every place in a round, and follows
    every other arm, equally often over the rounds (a cost that falls on a place or on the
    turn after some arm falls on all alike)."""
    n, r = len(names), 0
    while True:
        for place in range(n):
            yield r, names[(r + place) % n]
        r += 1


class _PipeTimer(Hook):
    """An arm's side of the alternation: waits for its turn, times `block` optimizer steps,
    sends their seconds per step and waits again."""

    def __init__(self, conn: Any, block: int, clock: Callable[[], float]):
        self.conn, self.block, self.clock, self.steps, self.start = conn, block, clock, 0, 0.0

    def begin(self) -> None:
        if self.conn.recv() != "go":
            raise _Enough
        self.start, self.steps = self.clock(), 0

    def on_step_end(self, state: TrainState) -> None:
        self.steps += 1
        if self.steps < self.block:
            return
        self.conn.send(("block", (self.clock() - self.start) / self.block))
        self.begin()


def _arm_process(fn: Callable[[Hook], Any], conn: Any, block: int,
                 clock: Callable[[], float]) -> None:
    timer = _PipeTimer(conn, block, clock)
    try:
        timer.begin()
        fn(timer)
        conn.send(("finished", None))
    except _Enough:
        conn.send(("finished", None))
    except BaseException as err:  # noqa: BLE001  (raised in the parent)
        conn.send(("error", f"{type(err).__name__}: {err}"))


def alternate(arms: Mapping[str, Callable[[Hook], Any]], block: int,
              clock: Callable[[], float] = time.perf_counter,
              group: Callable[[str], str] = lambda arm: arm
              ) -> dict[str, list[tuple[int, float]]]:
    """Run every arm (a function that trains with the given hook among its hooks) in turn,
    `block` steps a turn, in the order of `schedule`, until the arms left belong to fewer
    than two groups (`group`: each arm its own; `instance_of`: its method); each
    arm's (round, seconds per step) of every whole block. An arm's first turn (its set-up)
    is in round 0 or 1; compare from round 1 (`time_ratio`). Each arm runs in its own
    process (forked: the arms are built once, in the caller), only one running at a time,
    so no arm shares an allocator, a thread pool or an interpreter lock with another; an
    arm's error is raised here."""
    if len(arms) < 2 or block < 1:
        raise ConfigError("alternate needs two arms or more and a block of >= 1 step")
    ctx = multiprocessing.get_context("fork")
    conns, procs = {}, []
    for name, fn in arms.items():
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_arm_process, args=(fn, theirs, block, clock), daemon=True)
        proc.start()
        theirs.close()  # the child's end lives in the child: its death reads as EOF here
        conns[name] = ours
        procs.append(proc)
    blocks: dict[str, list[tuple[int, float]]] = {name: [] for name in arms}
    alive, error = set(arms), None
    try:
        for round_, name in schedule(list(arms)):
            if len({group(a) for a in alive}) < 2 or error:
                break
            if name not in alive:
                continue
            try:
                conns[name].send("go")
                kind, value = conns[name].recv()
            except (EOFError, OSError):
                kind, value = "error", "its process ended without a word (killed?)"
            if kind == "block":
                blocks[name].append((round_, value))
            else:
                alive.discard(name)
                error = f"arm {name}: {value}" if kind == "error" else None
    finally:
        for name in alive:
            try:
                conns[name].send("stop")
            except OSError:
                pass
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
    if error:
        raise RuntimeError(error)
    return blocks


def _quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def time_ratio(blocks: Mapping[str, Sequence[tuple[int, float]]], lever: str, baseline: str,
               steps_share: float = 1.0, one_off: float = 0.0, base_seconds: float = 1.0
               ) -> dict[str, Any]:
    """The lever's time over the baseline's: per round (from round 1) the ratio of their
    seconds per step; per cycle of as many rounds as there are arms (every arm in every
    place once, `schedule`) the geometric mean of those ratios; the median of the cycles and
    their interquartile range, times `steps_share` (the lever's optimizer steps over the
    baseline's; f where their batches are equal), plus `one_off` seconds (a proxy's
    training, scoring) over `base_seconds` (the baseline's run). A last, partial cycle is
    left out when a whole one exists."""
    ours = {r: s for r, s in blocks[lever] if r >= 1}
    theirs = {r: s for r, s in blocks[baseline] if r >= 1}
    rounds = sorted(set(ours) & set(theirs))
    if not rounds:
        raise ConfigError(f"no round where both {lever} and {baseline} ran a whole block")
    n = len(blocks)
    cycles: dict[int, list[float]] = {}
    for r in rounds:
        cycles.setdefault((r - 1) // n, []).append(math.log(ours[r] / theirs[r]))
    whole = [c for c in cycles.values() if len(c) == n] or list(cycles.values())
    ratios = [math.exp(statistics.fmean(c)) for c in whole]
    q1, med, q3 = _quartiles(ratios)
    extra = one_off / base_seconds
    return {"lever": lever, "baseline": baseline, "rounds": len(rounds), "cycles": len(whole),
            "step_cost_ratio": med, "step_cost_iqr": [q1, q3],
            "seconds_per_step": {lever: statistics.median(ours[r] for r in rounds),
                                 baseline: statistics.median(theirs[r] for r in rounds)},
            "steps_share": steps_share, "one_off_share": extra,
            "ratio": med * steps_share + extra,
            "interval": [q1 * steps_share + extra, q3 * steps_share + extra]}


def instance_of(arm: str) -> str:
    """The method an arm runs: `NAME#I` is instance I of NAME (`instance_ratio`)."""
    return arm.split("#", 1)[0]


def instance_ratio(blocks: Mapping[str, Sequence[tuple[int, float]]], lever: str,
                   baseline: str, steps_share: float = 1.0, one_off: float = 0.0,
                   base_seconds: float = 1.0) -> dict[str, Any]:
    """The lever's time over the baseline's where each ran as several instances (`NAME#I`),
    each built apart in the caller: an instance's seconds per step is the median of its
    blocks in the rounds (from 1) where every instance of both ran one, so that all are
    read at the same stretch of training beside the same rivals; the ratio is that of the
    geometric means over instances, with the 95% Welch interval of the difference of mean
    logs. Instances of one recipe differ by where their tensors landed in memory (a
    process's heap history), a fixed offset for the instance's whole life (the module's
    note): one instance an arm measures its layout, not its method; the spread between
    instances is the noise."""
    arms = [a for a in blocks if instance_of(a) in (lever, baseline)]
    rounds = set.intersection(*({r for r, _ in blocks[a] if r >= 1} for a in arms)) \
        if arms else set()

    def logs(name: str) -> list[float]:
        return [math.log(statistics.median(s for r, s in blocks[a] if r in rounds))
                for a in arms if instance_of(a) == name]

    count = [sum(instance_of(a) == name for a in arms) for name in (lever, baseline)]
    if min(count) < 2 or not rounds:
        raise ConfigError(f"instance_ratio needs two instances or more of {lever} and of "
                          f"{baseline} with whole blocks in common rounds from round 1")
    ours, theirs = logs(lever), logs(baseline)
    d, low, high = welch(ours, theirs)
    scale = (lambda x: math.exp(x) * steps_share + one_off / base_seconds)
    return {"lever": lever, "baseline": baseline, "instances": [len(ours), len(theirs)],
            "rounds": len(rounds),
            "step_cost_ratio": math.exp(d), "step_cost_interval": [math.exp(low), math.exp(high)],
            "seconds_per_step": {lever: math.exp(statistics.fmean(ours)),
                                 baseline: math.exp(statistics.fmean(theirs))},
            "steps_share": steps_share, "one_off_share": one_off / base_seconds,
            "ratio": scale(d), "interval": [scale(low), scale(high)]}


def checked_ratio(model: float, run: float | None, tolerance: float = 0.10
                  ) -> tuple[float, str]:
    """The time ratio that stands: the model's, unless whole runs gave one that differs by
    more than `tolerance` of it; then the runs'."""
    if run is None or abs(model - run) <= tolerance * run:
        return model, "model"
    return run, "runs"
