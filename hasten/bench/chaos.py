"""Chaos runs: kill training at random moments, resume it, and check nothing changed.

`run_chaos(ChaosConfig(...))` trains a small run that carries state beyond the model (a
selective-backprop queue and loss history, a competence curriculum sampler, a batch ramp
from 1 to 3 micro-batches) once without interruption, then again while SIGKILLing it
`kills` times at random moments after a checkpoint exists, `save_kills` of them inside a
checkpoint write (those processes pause between the files they write, through
`--save-pause`, and the kill is aimed at the pause), resuming after each kill.
The resumed run must end with the same weights and work counters, bit for bit.

With `ranks=2` the run is a DDP pair (gloo, launched with torchrun's environment
variables). One rank is SIGKILLed: the other must exit within `exit_within` seconds with a
one-line error, and the pair resumed must finish bit-identical to an uninterrupted pair.

Each run is a subprocess, `python -m hasten.bench.chaos --out DIR ...` (this module's
`main`, a worker the suite launches). The result is a `ChaosRecord`. `hasten bench chaos`
runs it as a suite of the harness with its own run (`chaos_run`): one run per seed, task
"chaos", method "kill-resume", whose `final` is 1 when the resumed run was bit-identical
(its counts as report rows); the command exits 1 unless every run was (`chaos_verdict`).
Where its figures are shown: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_model
from torch.utils.data import TensorDataset

from hasten.bench.harness import Suite, register_suite
from hasten.bench.vision import accuracy_on, per_example_cross_entropy
from hasten.core.atomic import atomic_write
from hasten.core.checkpoint import checkpoint_steps, pause_between_files
from hasten.core.config import option, to_dict
from hasten.core.distributed import is_main_process, shutdown
from hasten.core.errors import HastenError
from hasten.core.guards import EXIT_CODES
from hasten.core.trainer import TrainConfig, train
from hasten.models.vision import ConvNet3
from hasten.select.curriculum import CompetenceSampler
from hasten.steps.selective_backprop import SelectiveBackprop

FINAL = "final.safetensors"
RESULT = "result.json"


@dataclass
class ChaosConfig:
    """How hard to shake a run."""

    kills: int = option(5, "enough kills to hit several phases of a run")
    save_kills: int = option(1, "kills aimed inside a checkpoint write (counted in kills)")
    steps: int = option(300, "optimizer steps of the run (a steps budget: bit-exact resume)")
    checkpoint_every: int = option(10, "frequent checkpoints, so kills land between and "
                                   "inside them")
    micro_batch: int = option(32, "small steps: many of them per second")
    seed: int = option(0, "the kill moments and the run's own seed")
    save_pause: float = option(0.25, "seconds a save pauses between files when a kill "
                               "aims at it")
    spread: float = option(1.5, "a kill lands up to this many checkpoint intervals after a "
                           "checkpoint (so kills fall anywhere in steps and saves, on a slow "
                           "machine or a fast one)")
    ranks: int = option(1, "1: one process; 2: a DDP pair (gloo) where one rank dies",
                        choices=(1, 2))
    kill_rank: int = option(1, "DDP: the rank that is SIGKILLed")
    exit_within: float = option(60.0, "DDP: seconds the surviving rank may take to exit")
    collective_timeout: float = option(20.0, "DDP: seconds a rank waits for a hung peer")
    timeout: float = option(600.0, "seconds any one process may run before it is failed")
    work_dir: str | None = option(None, "keep the runs' folders here (default: a temporary "
                                  "folder, deleted afterwards)")


@dataclass
class ChaosRecord:
    """What a chaos run found."""

    kills: int = 0  # SIGKILLs sent to the run under test
    kills_in_save: int = 0  # ... of them while a checkpoint was half written
    resumes: int = 0  # processes that printed "resumed from step N"
    fallbacks: int = 0  # warning lines "checkpoint step-N is damaged (...); falling back"
    identical: bool = False  # final weights, work counters and steps equal the reference's
    mismatches: list[str] = field(default_factory=list)  # what differs, when not identical
    problems: list[str] = field(default_factory=list)  # a run that failed or ended early
    survivor_exit_seconds: list[float] = field(default_factory=list)  # DDP
    survivor_lines: list[str] = field(default_factory=list)  # DDP: its stderr lines
    seconds: float = 0.0  # wall time of the whole chaos run

    @property
    def ok(self) -> bool:
        """Every kill happened, every run worked, and the result is bit-identical."""
        return self.identical and not self.problems

    def summary(self) -> str:
        """One line for a command to print."""
        verdict = "bit-identical" if self.identical else f"DIFFERENT ({'; '.join(self.mismatches)})"
        line = (f"{self.kills} kills ({self.kills_in_save} inside a save), {self.resumes} "
                f"resumes, {self.fallbacks} fallbacks: {verdict}")
        if self.survivor_exit_seconds:
            line += f"; survivor exited in {max(self.survivor_exit_seconds):.1f}s"
        if self.problems:
            line += f"; problems: {'; '.join(self.problems)}"
        return f"{line}; {self.seconds:.1f}s"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the run under test (the subprocess side) --------------------------------------------


def _recipe(steps: int, micro_batch: int, seed: int) -> dict[str, Any]:
    """A small image-classification run with state beyond the model: selective backprop,
    a competence curriculum, a batch ramp. The data is generated (8x8 images labelled by a
    fixed random teacher), so a process starts in a few seconds."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2048, 1, 8, 8, generator=g)
    y = (x.flatten(1) @ torch.randn(64, 10, generator=g)).argmax(1)
    train_data, test = TensorDataset(x[:1536], y[:1536]), TensorDataset(x[1536:], y[1536:])
    torch.manual_seed(seed)
    model = ConvNet3((1, 8, 8), 10, width=16, depth=2)
    difficulty = x[:1536].flatten(1).abs().sum(1).numpy()  # a fixed score per example
    sampler = CompetenceSampler(difficulty, p=2.0, T=steps, seed=seed)
    hook = SelectiveBackprop("sb", beta=2.0, prime=0.2, seed=seed)
    return {"model": model, "train_data": train_data, "loss_fn": per_example_cross_entropy,
            "evaluate": accuracy_on(test), "hooks": [hook], "sampler": sampler}


def main(argv: list[str] | None = None) -> int:
    """Train the chaos recipe (see `_recipe`) into `--out`; on rank 0 write the final
    weights and the result. Exit codes as `hasten train` (guards.EXIT_CODES; errors 2, a
    lost DDP peer 1)."""
    ap = argparse.ArgumentParser(prog="python -m hasten.bench.chaos")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--collective-timeout", type=float)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--save-pause", type=float, default=0.0,
                    help="seconds each checkpoint save pauses between its files")
    args = ap.parse_args(argv)
    pause_between_files(args.save_pause)

    try:
        parts = _recipe(args.steps, args.micro_batch, args.seed)
        cfg = TrainConfig(budget=f"{args.steps}steps", lr=3e-3, micro_batch=args.micro_batch,
                          batch_start=1, batch_end=3, batch_ramp=0.5, eval_every=0.25,
                          seed=args.seed, out_dir=args.out, resume=args.resume,
                          checkpoint_every=args.checkpoint_every, quiet=True,
                          tensorboard=False, device="cpu",
                          collective_timeout=args.collective_timeout)
        result = train(config=cfg, **parts)
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    finally:
        shutdown()
    if result.stopped == "budget" and is_main_process():
        out = Path(args.out)
        save_model(parts["model"], str(out / ".final.tmp"))
        os.replace(out / ".final.tmp", out / FINAL)
        body = {"steps": result.steps, "work": result.work, "final": result.final}
        atomic_write(out / RESULT, lambda fh: fh.write(json.dumps(body).encode()))
    return EXIT_CODES[result.stopped]


# --- the controller ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(config: ChaosConfig, out: Path, resume: bool, logs: Path, pause: bool = False
            ) -> list[subprocess.Popen]:
    """Start the run (one process per rank); stderr goes to files under `logs`."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hasten.bench.chaos", "--out", str(out), "--steps",
           str(config.steps), "--checkpoint-every", str(config.checkpoint_every),
           "--micro-batch", str(config.micro_batch), "--seed", str(config.seed)]
    if resume:
        cmd.append("--resume")
    if pause:
        cmd += ["--save-pause", str(config.save_pause)]
    port = _free_port()
    procs = []
    for rank in range(config.ranks):
        rank_env = dict(env)
        if config.ranks > 1:
            rank_env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(config.ranks),
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        extra = (["--collective-timeout", str(config.collective_timeout)]
                 if config.ranks > 1 else [])
        n = len(list(logs.glob("*-rank0.err"))) - (1 if rank else 0)
        err = open(logs / f"{n:03d}-rank{rank}.err", "w")  # noqa: SIM115 (closed by the OS)
        procs.append(subprocess.Popen(cmd + extra, cwd=root, env=rank_env,
                                      stdout=subprocess.DEVNULL, stderr=err))
        err.close()
    return procs


def _newest(out: Path) -> int:
    steps = checkpoint_steps(out / "checkpoints")
    return steps[0][0] if steps else -1


def _wait(predicate: Callable[[], bool], procs: list[subprocess.Popen], limit: float,
          poll: float = 0.002) -> bool:
    """Poll until `predicate()` holds (True) or a process exits or `limit` passes (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        if any(p.poll() is not None for p in procs):
            return predicate()
        time.sleep(poll)
    return False


def _finish(procs: list[subprocess.Popen], limit: float) -> list[int]:
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=limit))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


def _compare(ref: Path, got: Path) -> list[str]:
    """What differs between two finished runs' weights, work counters and steps."""
    if not (got / FINAL).exists():
        return ["the run under test did not finish"]
    a, b = load_file(str(ref / FINAL)), load_file(str(got / FINAL))
    diff = [f"weights {k}" for k in sorted(set(a) | set(b))
            if k not in a or k not in b or not a[k].equal(b[k])]
    ra, rb = (json.loads((p / RESULT).read_text()) for p in (ref, got))
    diff += [f"{k}: {ra[k]} != {rb[k]}" for k in ("steps", "work") if ra[k] != rb[k]]
    return diff


def _count_lines(logs: Path, record: ChaosRecord) -> None:
    for path in sorted(logs.glob("*-rank0.err")):
        lines = path.read_text().splitlines()
        record.resumes += sum(line.startswith("resumed from step ") for line in lines)
        record.fallbacks += sum(line.startswith("checkpoint ") and "is damaged" in line
                                for line in lines)


def _kill_once(config: ChaosConfig, out: Path, logs: Path, rng: random.Random, resume: bool,
               in_save: bool, record: ChaosRecord) -> bool:
    """Start the run, SIGKILL it at a random moment after a new checkpoint (inside a save
    when `in_save`). False when it finished before the kill."""
    seen = _newest(out)
    procs = _launch(config, out, resume, logs, pause=in_save)
    ckpts = out / "checkpoints"
    if not _wait(lambda: _newest(out) > seen, procs, config.timeout):
        _finish(procs, config.timeout)
        return False
    if in_save:  # the next save: kill it while its files are half written
        if not _wait(lambda: any(ckpts.glob(".tmp-ckpt-*")), procs, config.timeout):
            _finish(procs, config.timeout)
            return False
        time.sleep(rng.uniform(0.0, 1.5 * config.save_pause))
    else:  # time one checkpoint interval, then kill anywhere in the next `spread` of them
        first, since = _newest(out), time.monotonic()
        if not _wait(lambda: _newest(out) > first, procs, config.timeout):
            _finish(procs, config.timeout)
            return False
        time.sleep(rng.uniform(0.0, config.spread * (time.monotonic() - since)))
    victim = procs[config.kill_rank if config.ranks > 1 else 0]
    if victim.poll() is not None:
        _finish(procs, config.timeout)
        return False
    victim.send_signal(signal.SIGKILL)
    half_written = any(ckpts.glob(".tmp-ckpt-*"))
    victim.wait()
    record.kills += 1
    record.kills_in_save += int(in_save and half_written)
    if config.ranks > 1:
        _watch_survivors(config, procs, victim, logs, record)
    return True


def _watch_survivors(config: ChaosConfig, procs: list[subprocess.Popen],
                     victim: subprocess.Popen, logs: Path, record: ChaosRecord) -> None:
    """The other ranks must exit on their own, soon, with one line."""
    started = time.monotonic()
    for p in procs:
        if p is victim:
            continue
        try:
            p.wait(timeout=config.exit_within)
            record.survivor_exit_seconds.append(time.monotonic() - started)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            record.survivor_exit_seconds.append(float("inf"))
    newest = sorted(logs.glob("*.err"))[-config.ranks:]
    for path in newest:
        if f"rank{config.kill_rank}." not in path.name:
            record.survivor_lines += [line for line in path.read_text().splitlines() if line]


def run_chaos(config: ChaosConfig, say: Callable[[str], None] | None = None) -> ChaosRecord:
    """Run the reference, then the killed-and-resumed run; compare them (see the module
    docstring). `say` gets one progress line per phase."""
    say = say or (lambda line: None)
    started = time.monotonic()
    record = ChaosRecord()
    with tempfile.TemporaryDirectory(prefix="hasten-chaos-") as tmp:
        work = Path(config.work_dir or tmp)
        ref, out, logs = work / "reference", work / "chaos", work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        say(f"reference run: {config.steps} steps, {config.ranks} process(es)")
        codes = _finish(_launch(config, ref, False, logs), config.timeout)
        if any(codes):
            record.problems.append(f"the reference run failed with exit codes {codes}")
            record.seconds = time.monotonic() - started
            return record
        rng = random.Random(config.seed)
        kinds = [True] * min(config.save_kills, config.kills)
        kinds += [False] * (config.kills - len(kinds))
        rng.shuffle(kinds)
        for i, in_save in enumerate(kinds):
            say(f"kill {i + 1}/{len(kinds)}{' inside a save' if in_save else ''}")
            if not _kill_once(config, out, logs, rng, i > 0, in_save, record):
                record.problems.append(f"the run finished before kill {i + 1}")
                break
        say("final resume")
        codes = _finish(_launch(config, out, record.kills > 0, logs), config.timeout)
        if any(codes):
            record.problems.append(f"the resumed run failed with exit codes {codes}")
        record.mismatches = _compare(ref, out)
        _count_lines(logs, record)
        record.identical = not record.mismatches
    record.seconds = time.monotonic() - started
    return record



# --- the suite (`hasten bench chaos`) -----------------------------------------------------


def chaos_run(task: str, method: str, seed: int, quick: bool, budget: str | None,
              options: ChaosConfig, say: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """One chaos run (the harness's own-run protocol): `options` with its seed moved by the
    run's seed; `final` 1.0 when bit-identical, else 0.0; the counts as report rows and the
    whole `ChaosRecord` in the notes."""
    config = replace(options, seed=options.seed + seed)
    record = run_chaos(config, say=say)
    rows = {"kills": record.kills, "kills inside a save": record.kills_in_save,
            "resumes": record.resumes, "fallbacks": record.fallbacks,
            "problems": len(record.problems)}
    if record.survivor_exit_seconds:
        rows["survivor exit seconds (max)"] = max(record.survivor_exit_seconds)
    return {"metric": "bit-identical", "final": 1.0 if record.identical else 0.0,
            "metrics": {"ok": record.ok}, "train_seconds": record.seconds,
            "budget": f"{config.steps}steps", "config": to_dict(config),
            "notes": {"report_rows": rows, "chaos": record.as_dict(),
                      "summary": record.summary(), "processes": config.ranks}}


def chaos_verdict(results: dict[str, Any]) -> tuple[int, list[str]]:
    """Exit 0 when every run was bit-identical and worked, else 1; a line per run."""
    runs = results.get("runs") or []
    ok = bool(runs) and all((r.get("metrics") or {}).get("ok") for r in runs)
    return (0 if ok else 1), [f"chaos: {(r.get('notes') or {}).get('summary', 'no summary')}"
                              for r in runs]


register_suite(Suite(
    name="chaos", tasks=["chaos"], methods=["kill-resume"], options=ChaosConfig,
    run=chaos_run, budget_units=(), verdict=chaos_verdict,
    description="kill a run at random moments, resume it, check it ends bit-identical"))

if __name__ == "__main__":
    sys.exit(main())
