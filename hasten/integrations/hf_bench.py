"""At an equal wall-clock budget in the HF Trainer: HF's linear schedule sized by a step count
timed in advance, against hasten's budget schedule (`hasten bench hf-trainer`).

A user with ten minutes and the HF Trainer must turn the time into `max_steps`: time some
training, multiply, and add a wall-clock stop in case the guess runs long. The guess is
wrong one way or the other (the first steps are slower, the machine's load moves), so
either the schedule ends early and the rest of the time is lost, or the clock stops the run
before the LR has come down. hasten's arm needs no guess: `BudgetCallback` counts the budget
and `budget_lr` sets the LR from its progress.

The methods (arms), each run with a wall-clock stop at the budget:
  hf-linear    max_steps from a 10 s timing scaled to the budget (a quick user)
  hf-careful   max_steps from a 60 s timing scaled to the budget, times 0.9 (a careful user
               who times longer and leaves a margin for slower steps)
  hasten       `budget_lr` + `BudgetCallback`: no step count
Every arm trains the same SST-2 classifier (a small BERT built from a config, a WordPiece
vocabulary trained on the training sentences; `hasten.integrations.sst2`) from the same
initialisation and data order, with the same AdamW, peak LR and linear schedule with
warm-up; only how the schedule is sized differs. A timing is made once per process and
setting, at the first seed, before that arm's first run (a user times once); it is not
charged to the arm's budget. Each run records dev accuracy (872 sentences, GLUE's dev split),
training and wall seconds, whether it ended on time (wall seconds within 5% of the budget),
which rule stopped it, the LR of its last step as a fraction of the peak, its timing and
max_steps, and the cost of the arm's own callback per step.

It is a suite of the harness with its own run (the Trainer trains, not hasten's loop):

    hasten bench hf-trainer --seeds 3 --out runs/hf-trainer        # 3 seeds x 600 s x 3 arms
    hasten bench hf-trainer --quick --out runs/hf-quick            # a smoke test

`python -m hasten.integrations.hf_bench`, its earlier form, says so and exits 2.

Results: docs/benchmarks.md, "Your loop: the HF Trainer at ten minutes: the schedule ends on
time without a step count; accuracy undecided".
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from hasten.bench.harness import Suite, register_suite
from hasten.core.budget import Budget
from hasten.core.config import option, to_dict
from hasten.core.errors import ConfigError
from hasten.core.schedules import budget_lr
from hasten.core.trainer import param_groups
from hasten.integrations.hf import BudgetCallback
from hasten.integrations.sst2 import accuracy, load_sst2, tiny_bert

ARMS = ("hf-careful", "hf-linear", "hasten")
TASK = "sst2-hf-trainer"
BUDGET = "600s"  # ten minutes a run: long enough for a step-count guess to go visibly wrong
QUICK = {"budget": "2s", "probe_seconds": 0.5, "careful_probe_seconds": 0.5,
         "train_rows": 400, "test_rows": 64, "vocab_size": 600, "hidden": 32, "layers": 1,
         "batch_size": 16}


@dataclass
class HFTrainerOptions:
    """Settings of `hasten bench hf-trainer` (the budget, seeds and arms are the bench's)."""

    probe_seconds: float = option(10.0, "hf-linear: the short timing a quick user makes")
    careful_probe_seconds: float = option(60.0, "hf-careful: a timing six times longer")
    careful_factor: float = option(0.9, "hf-careful: the margin a careful user leaves for "
                                   "slower steps later (0.9 of the timed rate)")
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


def _settings(options: HFTrainerOptions, quick: bool, budget: str | None
              ) -> tuple[dict[str, Any], float]:
    """The run's settings (the quick smoke-test sizes when `quick`) and budget seconds; a
    ConfigError for a budget that is not wall-clock."""
    cfg = {**to_dict(options), **(QUICK if quick else {})}
    spec = budget or cfg.pop("budget", BUDGET)
    cfg.pop("budget", None)
    parsed = Budget(spec)
    if not parsed.is_wall_clock:
        raise ConfigError(f"the HF Trainer comparison is at equal wall-clock budgets; got "
                          f"--budget {spec!r}")
    if cfg["probe_seconds"] <= 0 or cfg["careful_probe_seconds"] <= 0 or not \
            0 < cfg["careful_factor"] <= 1:
        raise ConfigError("probe seconds must be > 0 and careful_factor in (0, 1]")
    return {**cfg, "budget": spec}, parsed.amount


@cache
def _task(train_rows: int, test_rows: int, vocab_size: int, max_len: int) -> Any:
    return load_sst2(train_rows or None, test_rows or None, vocab_size, max_len)


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


def _trainer(task: Any, cfg: dict[str, Any], seed: int, work_dir: Path, max_steps: int,
             optimizers: tuple[Any, Any] | None, callbacks: list[Any]) -> Any:
    from transformers import Trainer, TrainingArguments

    model = tiny_bert(task.vocab_size, hidden=cfg["hidden"], layers=cfg["layers"],
                      heads=cfg["heads"], max_len=cfg["max_len"], seed=seed, pad_id=task.pad_id)
    args = TrainingArguments(str(work_dir), max_steps=max_steps, seed=seed, data_seed=seed,
                             per_device_train_batch_size=cfg["batch_size"], report_to=[],
                             disable_tqdm=True, logging_strategy="no", save_strategy="no",
                             use_cpu=cfg["use_cpu"], learning_rate=cfg["lr"])
    if optimizers is not None and optimizers[0] is None:  # built here, on this model
        optimizers = optimizers[1](model)
    return Trainer(model=model, args=args, train_dataset=task.train, data_collator=task.collate,
                   optimizers=optimizers or (None, None), callbacks=callbacks)


_TIMINGS: dict[tuple[Any, ...], dict[str, Any]] = {}  # one timing per process and setting


def timed_max_steps(task: Any, cfg: dict[str, Any], probe: float, factor: float,
                    seconds: float, seed: int) -> dict[str, Any]:
    """A user's step count: train for `probe` seconds, scale the rate to `seconds`, times
    `factor`. Made once per process for the same settings (the first seed's)."""
    key = (probe, factor, seconds, astuple_of(cfg))
    if key not in _TIMINGS:
        wall_stop, _ = _callbacks()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = _trainer(task, cfg, seed, Path(tmp), 10**9, None, [wall_stop(probe)])
            start = time.perf_counter()
            trainer.train()
            elapsed = time.perf_counter() - start
        rate = trainer.state.global_step / max(1e-9, elapsed)
        _TIMINGS[key] = {"probe_seconds": probe, "probe_steps": trainer.state.global_step,
                         "steps_per_second": rate, "factor": factor, "seed": seed,
                         "max_steps": max(1, int(rate * seconds * factor))}
    return dict(_TIMINGS[key])


def astuple_of(cfg: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in cfg.items()))


def run_arm(task: Any, cfg: dict[str, Any], seed: int, arm: str, seconds: float,
            timing: dict[str, Any] | None, work_dir: Path) -> dict[str, Any]:
    """Train one arm for one seed; its measurements."""
    from transformers import get_linear_schedule_with_warmup

    wall_stop, watch_cls = _callbacks()
    watch = watch_cls()

    def adamw(model: Any) -> torch.optim.AdamW:
        return torch.optim.AdamW(param_groups(model, cfg["weight_decay"]), lr=cfg["lr"])

    if arm == "hasten":
        budget = Budget(cfg["budget"])
        own = BudgetCallback(budget)

        def build(model: Any) -> tuple[Any, Any]:
            opt = adamw(model)
            return opt, budget_lr(opt, budget, "linear", warmup=cfg["warmup"])
        max_steps = 10**9
    else:
        own = wall_stop(seconds)
        max_steps = timing["max_steps"]

        def build(model: Any) -> tuple[Any, Any]:
            opt = adamw(model)
            return opt, get_linear_schedule_with_warmup(
                opt, round(cfg["warmup"] * max_steps), max_steps)
    trainer = _trainer(task, cfg, seed, work_dir, max_steps, (None, build), [own, watch])
    trainer.train()
    wall = watch.end - watch.begin
    steps = trainer.state.global_step
    stopped = ("budget" if arm == "hasten" else
               "max_steps" if steps >= max_steps else "wall clock")
    return {"accuracy": accuracy(trainer.model, task.test, task.collate),
            "train_seconds": budget.ledger.current("train") if arm == "hasten" else wall,
            "wall_seconds": wall, "ended_on_time": abs(wall - seconds) <= 0.05 * seconds,
            "stopped_by": stopped, "steps": steps,
            "max_steps": None if arm == "hasten" else max_steps, "timing": timing,
            "last_lr_fraction": watch.last_lr / cfg["lr"],
            "callback_us_per_step": own.microseconds_per_step()}


def hf_trainer_run(task_name: str, arm: str, seed: int, quick: bool, budget: str | None,
                   options: HFTrainerOptions, say: Any = None) -> dict[str, Any]:
    """One (arm, seed) run (the harness's own-run protocol): its timing first when the arm
    needs one and none was made yet."""
    cfg, seconds = _settings(options, quick, budget)
    task = _task(cfg["train_rows"], cfg["test_rows"], cfg["vocab_size"], cfg["max_len"])
    timing = None
    if arm != "hasten":
        careful = arm == "hf-careful"
        timing = timed_max_steps(task, cfg, cfg["careful_probe_seconds" if careful else
                                                "probe_seconds"],
                                 cfg["careful_factor"] if careful else 1.0, seconds, seed)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_arm(task, cfg, seed, arm, seconds, timing, Path(tmp))
    if say is not None:
        say(f"    {arm}: {run['steps']} steps"
            + (f" of {run['max_steps']}" if run["max_steps"] else "")
            + f", stopped by {run['stopped_by']}, last LR {run['last_lr_fraction']:.3f} of "
              "peak")
    return {"metric": "accuracy", "final": run["accuracy"], "budget": cfg["budget"],
            "budget_seconds": seconds, **run}


register_suite(Suite(
    name="hf-trainer", tasks=[TASK], methods=list(ARMS), options=HFTrainerOptions,
    run=hf_trainer_run, budgets={TASK: BUDGET}, budget_units=("seconds",),
    description="the HF Trainer at an equal wall-clock budget: step counts timed by a quick "
                "and a careful user against hasten's budget schedule"))


def main(argv: list[str] | None = None) -> int:
    """The earlier entry point: one line naming the command that replaced it."""
    print("hasten: error: `python -m hasten.integrations.hf_bench` is now `hasten bench "
          "hf-trainer` (the same settings as its flags; --arms is --methods)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
