"""The measured figures of docs/reliability.md, as one record (hasten.bench.records layout).

    python scripts/reliability_figures.py --out benchmarks/results/reliability-YYYYMMDD.json

Four parts, each a function returning its figures and its rows:

- `sigterm_exit`: SIGTERM-to-exit seconds of `hasten train` (fashion-mnist by default), over
  `runs` processes signalled at a random moment of their training (p50, max; the target
  is 10 s), with their exit codes and the checkpoint each left;
- `budget_overshoot`: the whole wall time of `hasten train`, `bench`, `cram` and `distill`
  (a subprocess each: imports, setup, training, evaluation, checkpoints, export) at a few
  seconds budgets, as wall / budget, against the limit 1.25 x budget + 15 s; cram's corpus
  is prepared (and cached) by one run first, which is reported and not counted;
- `fuzz_counts`: the properties of tests/fuzz run on `examples` fixed examples per reader
  (cases, failures, refusals);
- `chaos`: `run_chaos(ChaosConfig(kills=20, save_kills=4))`, bit-identical or not.

Run it on a quiet machine: about 20 minutes on 2 CPU cores (budgets about 11 min, chaos
about 4, fuzzing about 3, SIGTERM about 2). `--quick` runs every part tiny (a smoke test,
about a minute); `--parts` chooses parts. This is a measurement, not a command: it is not
in `hasten`, and CI runs only its smoke test.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hasten.core.budget import Budget
from hasten.core.trainer import wall_limit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hasten.bench.records import provenance, write_record  # noqa: E402

PARTS = ("sigterm", "budget", "fuzz", "chaos")
FAMILIES = ("train", "bench", "cram", "distill")
TARGET_EXIT_SECONDS = 10.0
Say = Callable[[str], None]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), **extra}


def _hasten(*args: str) -> list[str]:
    return [sys.executable, "-m", "hasten", *args]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"{shlex.join(proc.args)} ended or stalled before {path} "
                               f"appeared: {proc.communicate()[1][-500:]}")
        time.sleep(0.05)


# --- SIGTERM to exit -----------------------------------------------------------------------


def sigterm_exit(work: Path, runs: int = 10, task: str = "fashion-mnist", seed: int = 0,
                 say: Say = print) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`runs` trainings, each sent SIGTERM 0.5-3 s into its training (a seeded draw)."""
    from hasten.core.checkpoint import find_checkpoint

    rng, rows = random.Random(seed), []
    for i in range(runs):
        out = work / f"sigterm-{i}"
        proc = subprocess.Popen(_hasten("train", "--task", task, "--budget", "1e9steps",
                                        "--seed", str(i), "--out", str(out), "--quiet"),
                                cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        _wait_for(out / "metrics.jsonl", proc, timeout=600)
        time.sleep(rng.uniform(0.5, 3.0))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        seconds = time.monotonic() - sent
        found = find_checkpoint(out / "checkpoints")
        rows.append({"task": "sigterm-exit", "method": f"train {task}", "seed": i,
                     "metric": "seconds", "final": seconds, "exit_code": proc.returncode,
                     "checkpoint_step": found.step,
                     "line": (err.strip().splitlines() or [""])[-1]})
        say(f"sigterm {i + 1}/{runs}: exit {proc.returncode} after {seconds:.2f}s, "
            f"checkpoint step {found.step}")
    times = [r["final"] for r in rows]
    figures = {"runs": runs, "task": task, "p50_seconds": statistics.median(times),
               "max_seconds": max(times), "target_seconds": TARGET_EXIT_SECONDS,
               "within_target": max(times) <= TARGET_EXIT_SECONDS,
               "exit_codes": sorted({r["exit_code"] for r in rows}),
               "all_left_a_checkpoint": all(r["checkpoint_step"] is not None for r in rows)}
    return figures, rows


# --- budget overshoot ----------------------------------------------------------------------


def family_command(family: str, budget: str, out: Path, quick: bool) -> list[str]:
    """The command of one family at `budget` (quick: tiny data and models)."""
    from hasten.core.paths import data_root

    vision = "digits" if quick else "fashion-mnist"
    corpus = out.parent / "tiny-corpus.txt" if quick else data_root() / "gutenberg"
    if quick and not corpus.exists():
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text("The cat sat on the mat.\n\nA dog ran under the tree.\n" * 50)
    tiny_cram = [a for kv in ("layers=1", "hidden=32", "heads=2", "intermediate=64",
                              "vocab_size=200", "seq_len=32", "batch=8", "micro_batch=8")
                 for a in ("--set", kv)] if quick else []
    return {
        "train": ["train", "--task", vision, "--budget", budget],
        "bench": ["bench", "vision", "--tasks", vision, "--methods", "baseline",
                  "--budget", budget],
        "cram": ["cram", "--corpus", str(corpus), "--budget", budget, *tiny_cram],
        "distill": ["distill", "--data", vision, "--method", "dm", "--ipc",
                    "1" if quick else "10", "--budget", budget],
    }[family] + ["--out", str(out), "--quiet"]


def _timed_run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.monotonic()
    proc = subprocess.run(_hasten(*args), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)
    return time.monotonic() - started, proc.returncode, proc.stderr[-500:]


def budget_overshoot(work: Path, budgets: Sequence[float] = (10, 30, 60),
                     families: Sequence[str] = FAMILIES, quick: bool = False,
                     say: Say = print) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Whole wall seconds of each family at each seconds budget, over the budget."""
    env = _env(HASTEN_CACHE=str(work / "cache"))
    figures: dict[str, Any] = {"limit_rule": "1.25 x budget + 15 s", "families": {}}
    rows = []
    if "cram" in families:  # the corpus is prepared once and cached: not charged
        args = family_command("cram", f"{min(budgets):g}s", work / "cram-prepare", quick)
        wall, code, err = _timed_run(args, env)
        figures["cram_first_run_seconds"] = wall
        say(f"cram first run (prepares the corpus): {wall:.1f}s, exit {code}")
    for family in families:
        ratios = []
        for budget in budgets:
            out = work / f"budget-{family}-{budget:g}"
            wall, code, err = _timed_run(family_command(family, f"{budget:g}s", out, quick),
                                         env)
            limit = wall_limit(Budget(f"{budget:g}s"))
            ratios.append(wall / budget)
            rows.append({"task": f"budget-{family}", "method": f"{budget:g}s", "seed": 0,
                         "metric": "wall / budget", "final": wall / budget, "wall": wall,
                         "budget": budget, "limit": limit, "within_limit": wall <= limit,
                         "exit_code": code, "error": err if code else ""})
            say(f"{family} at {budget:g}s: {wall:.1f}s wall ({wall / budget:.2f}x), limit "
                f"{limit:.1f}s, exit {code}")
        mine = [r for r in rows if r["task"] == f"budget-{family}"]
        figures["families"][family] = {
            "median_ratio": statistics.median(ratios), "max_ratio": max(ratios),
            "all_within_limit": all(r["within_limit"] for r in mine),
            "all_exit_0": all(r["exit_code"] == 0 for r in mine)}
    return figures, rows


# --- fuzzing and chaos ---------------------------------------------------------------------


def fuzz_counts(examples: int = 500, seed: int = 0, say: Say = print
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """tests/fuzz's properties on `examples` fixed examples per reader."""
    sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
    import fuzz_api  # noqa: F401 - each import registers its properties
    import fuzz_checkpoints  # noqa: F401
    import fuzz_cli  # noqa: F401
    import fuzz_readers  # noqa: F401
    from fuzz_props import READERS, run_property

    readers, rows = {}, []
    for name in sorted(READERS):
        tally = run_property(name, examples, collect=True, seed=seed)
        readers[name] = tally.as_dict()
        rows.append({"task": "fuzz", "method": name, "seed": seed, "metric": "failures",
                     "final": tally.failures, **tally.as_dict()})
        say(f"fuzz {name}: {tally.cases} cases, {tally.failures} failures, "
            f"{tally.errors} refused in one line, {tally.seconds:.1f}s")
    figures = {"examples_per_reader": examples, "readers": readers,
               "cases": sum(r["cases"] for r in readers.values()),
               "failures": sum(r["failures"] for r in readers.values())}
    return figures, rows


def chaos(kills: int = 20, save_kills: int = 4, seed: int = 0, steps: int | None = None,
          say: Say = print) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One process killed `kills` times (`save_kills` inside a save), resumed each time."""
    from hasten.bench.chaos import ChaosConfig, run_chaos

    # a kill lands up to 1.5 checkpoint intervals after a resume: 40 steps a kill leave
    # room for every kill before the run ends
    config = ChaosConfig(kills=kills, save_kills=save_kills, seed=seed,
                         steps=steps if steps is not None else max(300, 40 * kills))
    record = run_chaos(config, say=say)
    figures = {"kills": record.kills, "kills_in_save": record.kills_in_save,
               "resumes": record.resumes, "fallbacks": record.fallbacks,
               "identical": record.identical, "mismatches": record.mismatches,
               "problems": record.problems, "seconds": record.seconds,
               "summary": record.summary()}
    rows = [{"task": "chaos", "method": "one process", "seed": seed, "metric": "identical",
             "final": float(record.identical), **figures}]
    return figures, rows


# --- the record ----------------------------------------------------------------------------


def reliability_record(parts: Sequence[str] = PARTS, quick: bool = False,
                       work: Path | None = None, say: Say = print) -> dict[str, Any]:
    """Every part's figures and rows, with the record header (machine, code, command)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    started = time.monotonic()
    figures: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hasten-reliability-") as tmp:
        work = Path(work or tmp)
        steps: dict[str, Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]] = {
            "sigterm": lambda: sigterm_exit(work, runs=1 if quick else 10,
                                            task="digits" if quick else "fashion-mnist",
                                            say=say),
            "budget": lambda: budget_overshoot(work, budgets=(3,) if quick else (10, 30, 60),
                                               quick=quick, say=say),
            "fuzz": lambda: fuzz_counts(examples=3 if quick else 500, say=say),
            "chaos": lambda: chaos(kills=1 if quick else 20, save_kills=0 if quick else 4,
                                   steps=40 if quick else None, say=say),
        }
        for part in parts:
            part_started = time.monotonic()
            figures[part], part_rows = steps[part]()
            figures[part]["part_seconds"] = time.monotonic() - part_started
            rows += part_rows
    return {**provenance(program="python scripts/reliability_figures.py"),
            "suite": "reliability", "status": "complete", "quick": quick,
            "notes": {"parts": list(parts), "what": __doc__.split("\n\n")[2]},
            "figures": figures, "runs": rows, "seconds": time.monotonic() - started}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / f"reliability-{stamp}.json")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"some of {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="every part tiny (a smoke test)")
    args = ap.parse_args(argv)
    record = reliability_record([p for p in args.parts.split(",") if p], quick=args.quick)
    write_record(record, args.out)
    print(f"wrote {args.out} in {record['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
