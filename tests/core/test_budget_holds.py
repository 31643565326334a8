"""Budgets hold: with a seconds budget a command's whole wall time (setup, training,
evaluation, checkpoints, writing its results) stays within `1.25 x budget + 15 s`
(`hasten.core.trainer.wall_limit`) for every command family (train, bench, cram, distill); an
evaluation too slow for the budget is cut short instead of stretching the wait; a step or
an iteration longer than 5% of the budget warns once.

The command-family tests run in this process (the imports are paid once per test run,
so the measured wait is the command's own) with a 4-second budget and tiny settings: each
takes the budget plus the command's fixed costs, about 5-7 s. They and the cut evaluation
read the real clock (`wallclock`: `make test` runs them apart, after the rest); the warning
about a slow iteration reads a fake one."""

from __future__ import annotations

import json
import re
import time

import pytest
import torch
import torch.nn.functional as F
from conftest import CLOCKED, FakeClock, use_clock
from torch import nn
from torch.utils.data import TensorDataset

from hasten.cli import main
from hasten.core.budget import Budget
from hasten.core.trainer import TrainConfig, train, wall_limit

BUDGET = "4s"
LIMIT = wall_limit(Budget(BUDGET))  # 20 s
TASK = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.harness import Recipe
from hasten.core.trainer import TrainConfig

X = torch.randn(256, 6, generator=torch.Generator().manual_seed(0))
DATA = TensorDataset(X, (X[:, 0] > 0).long())


def make_recipe(seed, quick):
    torch.manual_seed(seed)
    return Recipe(nn.Linear(6, 2), DATA,
                  lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                  lambda m: {"accuracy": 100.0 * (m(X).argmax(1) == DATA.tensors[1]).float()
                             .mean().item()},
                  TrainConfig(budget="8steps", lr=0.05, micro_batch=32))
"""
TINY_CRAM = [a for kv in ("layers=1", "hidden=32", "heads=2", "intermediate=64",
                          "vocab_size=200", "seq_len=32", "batch=8", "micro_batch=8",
                          "filter=false") for a in ("--set", kv)]


def _data(n: int = 256) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(1))


def _ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def write_task(folder) -> str:
    path = folder / "budget_task.py"
    path.write_text(TASK)
    return str(path)


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    assert main(argv) == 0
    return time.perf_counter() - started


@pytest.mark.wallclock
def test_an_evaluation_slower_than_the_allowance_is_cut_short(capfd):
    calls = []

    def slow_eval(model):
        calls.append(time.perf_counter())
        time.sleep(1.5)  # each longer than the 0.3 s all evaluations may take
        return {"accuracy": 50.0}

    started = time.perf_counter()
    res = train(nn.Linear(8, 3), _data(), _ce,
                TrainConfig(budget="2s", micro_batch=16, eval_every=0.1, progress_every=0),
                evaluate=slow_eval)
    wall = time.perf_counter() - started
    assert res.stopped == "budget" and len(calls) == 2  # the one cut short, and the final
    assert res.evaluations["done"] == 1 and res.evaluations["skipped"] == 9
    assert res.metrics == {"accuracy": 50.0}  # the final one ran in full
    assert res.seconds["eval_allowance"] == pytest.approx(0.3)
    assert 1.5 + 0.3 <= res.ledger["eval"] < 1.5 + 0.3 + 0.5  # not 2 x 1.5 s
    assert wall <= res.seconds["limit"]
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"evaluation takes over 0\.\ds, more than the 0\.3s allowed for all evaluations: it "
        r"was cut short and only the final one runs", lines[0])


def test_a_cut_plan_survives_a_resume(tmp_path):
    from hasten.core.eval_plan import EvalPlan

    plan = EvalPlan(0.1, allowance=0.3)
    assert plan.limit(final=False) == 0.3 and plan.limit(final=True) is None
    plan.cut(0.31)
    again = EvalPlan(0.1, allowance=0.3)
    again.load_state_dict(json.loads(json.dumps(plan.state_dict())))
    assert not any(again.should_run(p) for p in (0.2, 0.5, 0.9))
    assert again.limit(final=False) is None and again.cost == pytest.approx(0.31)
    assert EvalPlan(0.1).limit(final=False) is None  # other budgets: nothing is cut


@pytest.mark.wallclock
def test_train_waits_no_longer_than_the_limit(tmp_path):
    out = tmp_path / "run"
    wall = _timed(["train", "--task", f"{write_task(tmp_path)}:make_recipe", "--budget",
                   BUDGET, "--out", str(out), "--quiet"])
    seconds = json.loads((out / "result.json").read_text())["seconds"]
    assert seconds["budget"] == 4.0 and seconds["limit"] == LIMIT == 20.0
    assert seconds["train"] >= 4.0 - 0.1 and seconds["wall"] <= wall <= LIMIT


@pytest.mark.wallclock
def test_bench_waits_no_longer_than_the_limit(tmp_path):
    out = tmp_path / "bench"
    wall = _timed(["bench", "vision", "--tasks", f"{write_task(tmp_path)}:make_recipe",
                   "--methods", "baseline", "--budget", BUDGET, "--out", str(out), "--quiet"])
    run, = json.loads((out / "result.json").read_text())["runs"]
    assert run["seconds"]["limit"] == LIMIT and (out / "report.md").is_file()
    assert wall <= LIMIT  # one run: the record, report and curves included


@pytest.mark.wallclock
def test_cram_waits_no_longer_than_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("HASTEN_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat on the mat.\n\nA dog ran under the tree and away.\n" * 40)
    out = tmp_path / "cram"
    wall = _timed(["cram", "--corpus", str(corpus), "--budget", BUDGET, *TINY_CRAM, "--out",
                   str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "budget" and (out / "model").is_dir()
    assert summary["ledger"]["train"] >= 4.0 - 0.1 and wall <= LIMIT  # export included


@pytest.mark.wallclock
def test_distill_waits_no_longer_than_the_limit(tmp_path):
    out = tmp_path / "dm"
    wall = _timed(["distill", "--data", "digits", "--method", "dm", "--ipc", "1", "--budget",
                   BUDGET, "--out", str(out), "--quiet"])
    assert (out / "set.safetensors").is_file() and wall <= LIMIT


def test_a_slow_distillation_iteration_warns_once(capfd, monkeypatch):
    from hasten.data.vision import load_digits
    from hasten.distill.methods import DistillConfig, distill_with

    class Slow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            clock.sleep(0.08)  # one iteration: one forward each of real and synthetic images
            return self.net(x)

    clock = use_clock(monkeypatch, FakeClock(), (*CLOCKED, "hasten.distill.methods"))
    syn = distill_with(load_digits(), DistillConfig(method="dm", ipc=1, budget="1s",
                                                    device="cpu"),
                       model_fn=Slow, progress=False)
    assert syn.meta["iterations"] >= 3
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"warning: one iteration takes \d\.\ds, \d+% of the 1s budget; a smaller ipc, "
        r"batch_real or width keeps iterations short", lines[0])
