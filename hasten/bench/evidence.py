"""The measurement standard: a lever is decided by its quality at reduced work, then priced by
the cost of a unit of work.

Anchors: MLPerf Training (a fixed quality target, several runs, the result a distribution),
airbench (a speed claim holds only with the mean accuracy over many runs above the target,
its spread published), InfoBatch (Qin et al. 2024: the claim is the full-data accuracy at a
fraction of the iterations, a statement about work; the time saving follows from it).

1. Quality at work fraction f. A data or step lever at f (`METHOD@F`) against the baseline
   at full work, paired by seed: the difference of their final test metric, its mean and
   95% paired t-interval (`paired_interval`). With margin m: "no loss" when the interval's
   lower end is at or above -m, "loss" when its upper end is below -m, else "undecided"
   (`decide`). The same interval against `baseline@F` (the plain recipe with its schedule
   fitted to f) says whether the lever beats simply training less. Work is examples
   backpropagated for a data lever and FLOPs for a step lever, scoring and proxy training
   included (a run's `work` counters; the harness charges a proxy's FLOPs to them); the
   realised fraction is the run's work over the baseline's. For a pruning sampler, whose
   epochs are shorter than the data, `pruned_fraction` is the share of each epoch's
   examples it trained (drawn over drawn plus pruned): the work fraction of the same
   epochs, which its prune ratio is set to land on.
2. Evaluation density. `dense_eval(every, parts)` is a suite's `prepare`: every arm is
   evaluated at the same points of work, every `every` of the baseline's, on a fixed part of
   the test set (its first 1/`parts`), and the final evaluation on all of it.
3. The cost of a unit of work. `alternate` runs several trainings in turn on one core, a
   block of steps each, each in its own process with only one ever running, their order
   rotating from round to round (`schedule`): the trainer's
   whole iteration (data, forward, backward, the lever's bookkeeping) is timed for every arm
   under the same conditions, drift falling on all alike. `time_ratio` turns the blocks into
   the lever's time over the baseline's: the median (and interquartile range) over cycles
   of rounds (every arm in every place once) of the ratio of seconds per step, times the
   lever's share of the baseline's steps,
   plus its one-off costs over the baseline's time. `checked_ratio` compares that model
   with whole runs and keeps the runs' figure when they differ by more than 10%.
4. Plans are files. `plan_stamp` records a plan's path, hash and commit in a record;
   `plan_status` says "planned" only when git shows the plan, with that hash, committed
   before the record's first run, else "exploratory".

Departures: the t quantiles are tabulated (95%, up to 30 degrees of freedom; beyond, scipy);
a run with no partner seed is left out of its pair's interval.

Where its results are shown: docs/benchmarks.md, "How a lever is decided".
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hasten.bench.harness import Recipe, split_method
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainState

# two-sided 95% Student t quantiles, t_{0.975}(df) for df = 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
VERDICTS = ("no loss", "loss", "undecided")
DATA_WORK, STEP_WORK = "examples_backpropagated", "flops"


# --- quality at reduced work ---------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences and its 95% t-interval (`n` pairs)."""

    mean: float
    low: float
    high: float
    n: int


def t975(df: int) -> float:
    """The two-sided 95% t quantile with `df` degrees of freedom."""
    if df < 1:
        raise ConfigError(f"a t-interval needs at least 2 pairs, got {df + 1}")
    if df <= len(T975):
        return T975[df - 1]
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def paired_interval(differences: Sequence[float]) -> Interval:
    """The mean of `differences` (lever - baseline, one per seed) and its 95% t-interval."""
    xs = [float(x) for x in differences]
    n = len(xs)
    mean = statistics.fmean(xs) if xs else math.nan
    half = t975(n - 1) * statistics.stdev(xs) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def decide(interval: Interval, margin: float) -> str:
    """"no loss" when the interval's lower end is at or above -margin, "loss" when its upper
    end is below -margin, else "undecided"."""
    if interval.low >= -margin:
        return "no loss"
    if interval.high < -margin:
        return "loss"
    return "undecided"


def finals_by_seed(runs: Sequence[Mapping[str, Any]], method: str) -> dict[int, float]:
    return {int(r["seed"]): float(r["final"]) for r in runs
            if r.get("method") == method and r.get("final") is not None}


def work_of(run: Mapping[str, Any], counter: str) -> float | None:
    value = (run.get("work") or {}).get(counter)
    return float(value) if value is not None else None


def pruned_fraction(run: Mapping[str, Any]) -> float | None:
    """A pruning sampler's share of each epoch's examples trained: drawn / (drawn + pruned),
    from the run's `notes["pruning"]` (None without one)."""
    stats = (run.get("notes") or {}).get("pruning")
    if not stats or not stats.get("drawn"):
        return None
    return stats["drawn"] / (stats["drawn"] + stats["pruned"])


def compare(runs: Sequence[Mapping[str, Any]], lever: str, against: str, margin: float,
            counter: str) -> dict[str, Any] | None:
    """`lever` against `against`, paired by seed: the interval of the final metric's
    difference, its verdict at `margin`, and the lever's median work over the rival's
    (None with fewer than two paired seeds)."""
    ours, theirs = finals_by_seed(runs, lever), finals_by_seed(runs, against)
    seeds = sorted(set(ours) & set(theirs))
    if len(seeds) < 2:
        return None
    interval = paired_interval([ours[s] - theirs[s] for s in seeds])
    work = {int(r["seed"]): work_of(r, counter) for r in runs if r.get("method") == lever}
    base = {int(r["seed"]): work_of(r, counter) for r in runs if r.get("method") == against}
    shares = [work[s] / base[s] for s in seeds if work.get(s) and base.get(s)]
    pruned = [p for r in runs if r.get("method") == lever
              if (p := pruned_fraction(r)) is not None]
    return {"lever": lever, "against": against, "seeds": seeds, "interval": interval,
            "verdict": decide(interval, margin), "margin": margin,
            "work_fraction": statistics.median(shares) if shares else None,
            "pruned_fraction": statistics.median(pruned) if pruned else None,
            "run_time_ratio": run_time_ratio(runs, lever, against)}


def run_time_ratio(runs: Sequence[Mapping[str, Any]], lever: str, against: str
                   ) -> Interval | None:
    """Whole runs' time over the rival's: per seed, the lever's `train_seconds` over the
    rival's (runs of a seed are interleaved, so drift falls on both); their mean and 95%
    t-interval (None with fewer than two such seeds). Seconds follow the machine's load: a
    record taken beside other work says so, and this figure carries it."""
    def seconds(method: str) -> dict[int, float]:
        return {int(r["seed"]): float(r["train_seconds"]) for r in runs
                if r.get("method") == method and r.get("train_seconds")}
    ours, theirs = seconds(lever), seconds(against)
    seeds = sorted(set(ours) & set(theirs))
    if len(seeds) < 2:
        return None
    return paired_interval([ours[s] / theirs[s] for s in seeds])


def decisions(record: Mapping[str, Any], counter: str, margin: float | None = None
              ) -> list[dict[str, Any]]:
    """For every method of a record other than the baseline and `baseline@F`: its
    comparison with the baseline at full work and, where the record has it, with
    `baseline@F` at the same nominal fraction."""
    runs = record.get("runs") or []
    margin = float(record.get("margin") or 0.0) if margin is None else margin
    baseline = next((r.get("baseline") for r in runs if r.get("baseline")), "baseline")
    methods = list(dict.fromkeys(r["method"] for r in runs))
    out = []
    for method in methods:
        base, fraction = split_method(method)
        if method == baseline or base == split_method(baseline)[0]:
            continue
        row = {"method": method, "fraction": fraction,
               "vs_baseline": compare(runs, method, baseline, margin, counter)}
        plain = f"{split_method(baseline)[0]}@{fraction:g}"
        row["vs_plain"] = compare(runs, method, plain, margin, counter) \
            if plain in methods else None
        out.append(row)
    return out


def decision_lines(record: Mapping[str, Any], counter: str, root: Path | None = None,
                   margin: float | None = None) -> list[str]:
    """The decisions as lines a person reads, under the plan's status: the verdicts only
    when the plan predates the runs, else each line marked exploratory."""
    status, why = plan_status(record, root)
    lines = [f"plan: {status} ({why})"]
    for row in decisions(record, counter, margin):
        c, p = row["vs_baseline"], row["vs_plain"]
        if c is None:
            lines.append(f"  {row['method']}: fewer than 2 seeds paired with the baseline")
            continue
        i = c["interval"]
        verdict = c["verdict"] if status == "planned" else "exploratory"
        work = "" if c["work_fraction"] is None else f", work {c['work_fraction']:.3f}"
        if c["pruned_fraction"] is not None:
            work += f", per-epoch share {c['pruned_fraction']:.3f}"
        text = (f"  {row['method']}: {verdict}: {i.mean:+.2f} [{i.low:+.2f}, {i.high:+.2f}] "
                f"vs {c['against']} (margin {c['margin']:g}, {i.n} seeds{work})")
        if p is not None:
            j = p["interval"]
            text += f"; vs {p['against']} {j.mean:+.2f} [{j.low:+.2f}, {j.high:+.2f}]"
        lines.append(text)
    return lines


# --- evaluation density --------------------------------------------------------------------


def subset_until_final(evaluate: Callable[..., dict[str, float]], parts: int
                       ) -> Callable[..., dict[str, float]]:
    """An evaluate function that scores the first 1/`parts` of `evaluate`'s set (a
    `sharded_eval` function) at every intermediate evaluation and all of it at the final."""
    partial, finish = getattr(evaluate, "partial", None), getattr(evaluate, "finish", None)
    if partial is None or finish is None:
        raise ConfigError("dense evaluation scores a fixed part of the test set: the task's "
                          "evaluate must be built by sharded_eval")

    def scored(model: Any, shard: tuple[int, int] = (0, 1), final: bool = False
               ) -> dict[str, float]:
        if final or shard[1] > 1:
            return evaluate(model, shard=shard)
        return finish(partial(model, 0, parts))

    scored.partial, scored.finish = partial, finish  # type: ignore[attr-defined]
    return scored


def dense_eval(every: float = 0.02, parts: int = 5) -> Callable[[Recipe, str], Recipe]:
    """A suite's `prepare`: evaluations every `every` of the baseline's work (a method at
    fraction F evaluates every `every`/F of its own budget, so every arm's points fall at
    the same work), on a fixed 1/`parts` of the test set, the final on all of it."""
    def prepare(recipe: Recipe, method: str) -> Recipe:
        fraction = split_method(method)[1]
        recipe.config.eval_every = min(1.0, every / fraction)
        recipe.evaluate = subset_until_final(recipe.evaluate, parts)
        recipe.notes["evaluation"] = {"every_baseline_work": every, "subset": f"1/{parts}",
                                      "final": "the whole test set"}
        return recipe
    return prepare


# --- the cost of a unit of work ------------------------------------------------------------


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
              clock: Callable[[], float] = time.perf_counter
              ) -> dict[str, list[tuple[int, float]]]:
    """Run every arm (a function that trains with the given hook among its hooks) in turn,
    `block` steps a turn, in the order of `schedule`, until fewer than two are left; each
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
            if len(alive) < 2 or error:
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


def checked_ratio(model: float, run: float | None, tolerance: float = 0.10
                  ) -> tuple[float, str]:
    """The time ratio that stands: the model's, unless whole runs gave one that differs by
    more than `tolerance` of it; then the runs'."""
    if run is None or abs(model - run) <= tolerance * run:
        return model, "model"
    return run, "runs"


# --- plans ---------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                             timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace")


def repo_root(start: Path | None = None) -> Path:
    """The git work tree holding `start` (default: this checkout)."""
    start = start or Path(__file__).resolve().parent
    top = _git(start, "rev-parse", "--show-toplevel")
    return Path(top.strip()) if top else start


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan_stamp(path: str | Path, root: Path | None = None) -> dict[str, Any]:
    """What a record keeps of the plan it runs: its path in the repository, its sha256 and
    the commit it is read at (None when the file has uncommitted changes: the runs are then
    exploratory). A missing plan is a ConfigError, before any work."""
    root = root or repo_root()
    p = Path(path)
    p = p if p.is_absolute() else Path.cwd() / p
    if not p.is_file():
        raise ConfigError(f"--plan: {path} is not a file")
    rel = p.resolve().relative_to(root.resolve()).as_posix() if p.resolve().is_relative_to(
        root.resolve()) else str(p)
    clean = _git(root, "status", "--porcelain", "--", rel) == ""
    head = (_git(root, "rev-parse", "HEAD") or "").strip() or None
    return {"path": rel, "sha256": sha256_of(p.read_bytes()),
            "commit": head if clean else None}


def plan_committed_at(root: Path, rel: str, sha256: str) -> tuple[str, float] | None:
    """The first commit whose copy of the plan at `rel` has this hash: (commit, time)."""
    log = _git(root, "log", "--reverse", "--format=%H %ct", "--", rel)
    for line in (log or "").splitlines():
        commit, stamp = line.split()
        blob = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{rel}"],
                              capture_output=True, timeout=60)
        if blob.returncode == 0 and sha256_of(blob.stdout) == sha256:
            return commit, float(stamp)
    return None


def plan_status(record: Mapping[str, Any], root: Path | None = None) -> tuple[str, str]:
    """("planned", why) when the record names a plan that git shows committed, with the
    recorded hash, before the record's first run; else ("exploratory", why)."""
    plan = (record.get("notes") or {}).get("plan") if isinstance(record.get("notes"),
                                                                  Mapping) else None
    if not plan:
        return "exploratory", "no plan recorded"
    found = plan_committed_at(root or repo_root(), plan["path"], plan["sha256"])
    if found is None:
        return "exploratory", f"{plan['path']} with this hash is in no commit"
    commit, stamp = found
    started = datetime.fromisoformat(str(record.get("created"))).timestamp()
    when = datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
    if stamp <= started:
        return "planned", f"{plan['path']} committed in {commit[:7]} at {when}, before the runs"
    return "exploratory", f"{plan['path']} committed in {commit[:7]} at {when}, after the " \
                          "runs began"
