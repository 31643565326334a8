"""At an equal wall-clock budget in the HF Trainer: HF's linear schedule sized by a guessed step
count against hasten's budget schedule.

A user with ten minutes and the HF Trainer must turn the time into `max_steps`: time a few
seconds of training, multiply, and add a wall-clock stop in case the guess runs long. The
guess is wrong one way or the other (the first steps are slower, the machine's load moves),
so either the schedule ends early and the rest of the time is lost, or the clock stops the
run before the LR has come down. hasten's arm needs no guess: `BudgetCallback` counts the
budget and `budget_lr` sets the LR from its progress.

Both arms train the same SST-2 classifier (a small BERT built from a config, a WordPiece
vocabulary trained on the training sentences; `hasten.integrations.sst2`) from the same
initialisation and data order, with the same AdamW, peak LR and linear schedule with warm-up;
only how the schedule is sized differs. Each run records dev accuracy (872 sentences, GLUE's
dev split), training and wall seconds, whether it ended on time (wall seconds within 5% of
the budget), which rule stopped it, the LR of its last step as a fraction of the peak, and
the cost of the arm's own callback per step.

    python -m hasten.integrations.hf_bench --out runs/hf-bench            # 3 seeds x 600 s
    python -m hasten.integrations.hf_bench --quick --out runs/hf-quick    # a smoke test

Results: docs/benchmarks.md, "Your loop: the HF Trainer at an equal wall-clock budget".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hasten.bench.harness import provenance
from hasten.core.atomic import atomic_write
from hasten.core.budget import Budget
from hasten.core.config import (
    add_config_arguments,
    add_flags,
    from_args,
    option,
    to_dict,
    write_config,
)
from hasten.core.errors import ConfigError, HastenError
from hasten.core.schedules import budget_lr
from hasten.core.trainer import param_groups
from hasten.integrations.hf import BudgetCallback
from hasten.integrations.sst2 import accuracy, load_sst2, tiny_bert

ARMS = ("hf-linear", "hasten")


@dataclass
class HFBenchConfig:
    """The settings of `python -m hasten.integrations.hf_bench`."""

    budget: str = option("600s", "ten minutes a run: long enough for the step-count guess to "
                         "go visibly wrong, short enough for 3 seeds x 2 arms in an hour")
    seeds: int = option(3, "three seeds show whether a gap is larger than seed noise")
    first_seed: int = option(0, "split seeds across machines by starting elsewhere")
    arms: list[str] = option(list(ARMS), "HF's step-sized schedule, then hasten's",
                             flag=False)
    probe_seconds: float = option(10.0, "the timing a user does before choosing max_steps")
    train_rows: int = option(0, "0: all 67,349 SST-2 training sentences")
    test_rows: int = option(0, "0: all 872 dev sentences (the test set here)")
    vocab_size: int = option(8000, "enough WordPiece units for SST-2's short sentences")
    max_len: int = option(64, "SST-2 sentences are short; longer ones are cut")
    hidden: int = option(128, "a small encoder that learns SST-2 within minutes on a CPU")
    layers: int = option(2, "two layers: the smallest that still attends over context")
    heads: int = option(2, "64-wide heads at hidden 128")
    batch_size: int = option(32, "a common fine-tuning batch")
    lr: float = option(1e-3, "a peak LR that suits a small encoder trained from scratch")
    warmup: float = option(0.06, "the RoBERTa/GLUE fine-tuning warm-up fraction")
    weight_decay: float = option(0.01, "the usual fine-tuning value; none on norms and biases")
    use_cpu: bool = option(False, "run on the CPU even where CUDA is available")
    quick: bool = option(False, "a seconds-long smoke test: tiny data, model and budget")
    out: str = option("", "folder for result.json and config.json; empty: print only")

    def quick_version(self) -> HFBenchConfig:
        return replace(self, budget="2s", seeds=1, probe_seconds=0.5, train_rows=400,
                       test_rows=64, vocab_size=600, hidden=32, layers=1, batch_size=16)

    def validate(self) -> float:
        """The budget in seconds; a ConfigError for anything else wrong."""
        budget = Budget(self.budget)
        if not budget.is_wall_clock:
            raise ConfigError(f"the benchmark compares wall-clock budgets; got {self.budget!r}")
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ConfigError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
        if self.seeds < 1 or self.probe_seconds <= 0:
            raise ConfigError("seeds must be >= 1 and probe_seconds > 0")
        return budget.amount


def _callbacks() -> Any:
    """The small TrainerCallbacks of this benchmark (transformers imported on use)."""
    from transformers import TrainerCallback

    class WallClockStop(TrainerCallback):
        """What users add to the HF Trainer for a time limit: stop after `seconds` of wall
        time since training began (evaluation and saving included)."""

        def __init__(self, seconds: float):
            self.seconds, self.start, self.overhead, self.steps = seconds, 0.0, 0.0, 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            t0 = time.perf_counter()
            self.steps += 1
            if t0 - self.start >= self.seconds:
                control.should_training_stop = True
            self.overhead += time.perf_counter() - t0

        def microseconds_per_step(self) -> float:
            return 1e6 * self.overhead / max(1, self.steps)

    class Watch(TrainerCallback):
        """Wall seconds of `train()` (first to last event) and the LR of the last step."""

        def __init__(self) -> None:
            self.begin = self.end = 0.0
            self.last_lr = float("nan")

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.begin = time.perf_counter()

        def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                          **kw: Any) -> None:
            self.last_lr = optimizer.param_groups[0]["lr"]

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.end = time.perf_counter()

    return WallClockStop, Watch


def _trainer(task: Any, cfg: HFBenchConfig, seed: int, work_dir: Path, max_steps: int,
             optimizers: tuple[Any, Any] | None, callbacks: list[Any]) -> Any:
    from transformers import Trainer, TrainingArguments

    model = tiny_bert(task.vocab_size, hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads,
                      max_len=cfg.max_len, seed=seed, pad_id=task.pad_id)
    args = TrainingArguments(str(work_dir), max_steps=max_steps, seed=seed, data_seed=seed,
                             per_device_train_batch_size=cfg.batch_size, report_to=[],
                             disable_tqdm=True, logging_strategy="no", save_strategy="no",
                             use_cpu=cfg.use_cpu, learning_rate=cfg.lr)
    if optimizers is not None and optimizers[0] is None:  # built here, on this model
        optimizers = optimizers[1](model)
    return Trainer(model=model, args=args, train_dataset=task.train, data_collator=task.collate,
                   optimizers=optimizers or (None, None), callbacks=callbacks)


def guess_max_steps(task: Any, cfg: HFBenchConfig, seconds: float, work_dir: Path) -> int:
    """The user's guess: train for `cfg.probe_seconds`, then scale the steps to `seconds`."""
    wall_stop, _ = _callbacks()
    trainer = _trainer(task, cfg, cfg.first_seed, work_dir, 10**9, None,
                       [wall_stop(cfg.probe_seconds)])
    start = time.perf_counter()
    trainer.train()
    rate = trainer.state.global_step / max(1e-9, time.perf_counter() - start)
    return max(1, int(rate * seconds))


def run_arm(task: Any, cfg: HFBenchConfig, seed: int, arm: str, seconds: float,
            max_steps_guess: int, work_dir: Path) -> dict[str, Any]:
    """Train one arm for one seed; its record."""
    from transformers import get_linear_schedule_with_warmup

    wall_stop, watch_cls = _callbacks()
    watch = watch_cls()

    def adamw(model: Any) -> torch.optim.AdamW:
        return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)

    if arm == "hasten":
        budget = Budget(cfg.budget)
        own = BudgetCallback(budget)

        def build(model: Any) -> tuple[Any, Any]:
            opt = adamw(model)
            return opt, budget_lr(opt, budget, "linear", warmup=cfg.warmup)
        max_steps = 10**9
    else:
        own = wall_stop(seconds)
        max_steps = max_steps_guess

        def build(model: Any) -> tuple[Any, Any]:
            opt = adamw(model)
            return opt, get_linear_schedule_with_warmup(
                opt, round(cfg.warmup * max_steps), max_steps)
    trainer = _trainer(task, cfg, seed, work_dir, max_steps, (None, build), [own, watch])
    trainer.train()
    wall = watch.end - watch.begin
    steps = trainer.state.global_step
    stopped = ("budget" if arm == "hasten" else
               "max_steps" if steps >= max_steps else "wall clock")
    return {"seed": seed, "arm": arm, "accuracy": accuracy(trainer.model, task.test,
                                                           task.collate),
            "train_seconds": budget.ledger.current("train") if arm == "hasten" else wall,
            "wall_seconds": wall, "ended_on_time": abs(wall - seconds) <= 0.05 * seconds,
            "stopped_by": stopped, "steps": steps,
            "max_steps": None if arm == "hasten" else max_steps,
            "last_lr_fraction": watch.last_lr / cfg.lr,
            "callback_us_per_step": own.microseconds_per_step()}


def run_hf_bench(cfg: HFBenchConfig, work_dir: str | Path, say: Any = None,
                 command: str = "") -> dict[str, Any]:
    """Run every (seed, arm) pair, interleaved (seed 0: both arms, seed 1: ...), and return
    the results: the settings, the step-count guess and one record per run."""
    cfg = cfg.quick_version() if cfg.quick else cfg
    seconds = cfg.validate()
    say = say or (lambda _text: None)
    work = Path(work_dir)
    task = load_sst2(cfg.train_rows or None, cfg.test_rows or None, cfg.vocab_size, cfg.max_len)
    guess = 0
    if "hf-linear" in cfg.arms:
        guess = guess_max_steps(task, cfg, seconds, work / "probe")
        say(f"timing guess: {guess} steps in {seconds:g} s (from {cfg.probe_seconds:g} s)")
    runs = []
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        for arm in cfg.arms:
            record = run_arm(task, cfg, seed, arm, seconds, guess, work / f"{arm}-{seed}")
            say(f"seed {seed} {arm}: accuracy {record['accuracy']:.2f}, "
                f"{record['wall_seconds']:.1f} s wall, stopped by {record['stopped_by']}, "
                f"last LR {record['last_lr_fraction']:.3f} of peak")
            runs.append(record)
    return as_record({**provenance(command), "config": to_dict(cfg), "budget_seconds": seconds,
                      "max_steps_guess": guess, "runs": runs})


def as_record(results: dict[str, Any]) -> dict[str, Any]:
    """`results` in the harness's record layout (`hasten.bench.records`): suite, status and,
    per run, task, method (the arm), metric and final (dev accuracy); other keys kept."""
    runs = [{"task": "sst2-hf-trainer", "method": r["arm"], "metric": "accuracy",
             "higher_is_better": True, "final": r["accuracy"], **r} for r in results["runs"]]
    return {"suite": "hf-bench", "status": "complete", **results, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hasten.integrations.hf_bench",
                                     description=__doc__.splitlines()[0])
    add_flags(parser, HFBenchConfig)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _main(from_args(HFBenchConfig, args), argv)
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        return err.exit_code


def _main(cfg: HFBenchConfig, argv: list[str] | None) -> int:
    command = "python -m hasten.integrations.hf_bench " + " ".join(argv or sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        results = run_hf_bench(cfg, tmp, say=lambda t: print(t, flush=True), command=command)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        write_config(cfg, out, {"command": command})
        atomic_write(out / "result.json",
                     lambda fh: fh.write((json.dumps(results, indent=1) + "\n").encode()))
        print(f"wrote {out / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
