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
3. The cost of a unit of work: `hasten.bench.step_cost` (each arm's iteration timed in turn
   on one core, several instances an arm).
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
import statistics
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hasten.bench.harness import Recipe, split_method
from hasten.core.errors import ConfigError

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


PLAN_LINE = "plan: {} ({})"  # a record's plan status, as printed


def decision_lines(record: Mapping[str, Any], counter: str, root: Path | None = None,
                   margin: float | None = None) -> list[str]:
    """The decisions as lines a person reads, under the plan's status: the verdicts only
    when the plan predates the runs, else each line marked exploratory."""
    status, why = plan_status(record, root)
    lines = [PLAN_LINE.format(status, why)]
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


def plan_line(record: Mapping[str, Any], root: Path | None = None) -> str:
    """`plan_status` as the line `hasten report` prints: "plan: STATUS (WHY)"."""
    return PLAN_LINE.format(*plan_status(record, root))


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
