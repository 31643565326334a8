"""Evaluations that fit a seconds budget, the ETA that counts them, and sharded evaluation."""

import re
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.bench.vision import accuracy_on
from hasten.core.budget import Budget
from hasten.core.eval_plan import (
    EVAL_PARTS,
    EvalPlan,
    count_wall_from,
    mark_run_end,
    process_start,
    shard_bounds,
    takes_deadline,
    takes_shard,
    wall_since,
)
from hasten.core.train_loop import eta_seconds
from hasten.core.trainer import TrainConfig, train


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(1))


@pytest.mark.parametrize("n", [0, 1, 5, 10, 11, 1000])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_bounds_split_evenly_and_cover_everything(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(n))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_sharded_accuracy_sums_to_the_whole_evaluation():
    test = _data(1001)
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    evaluate = accuracy_on(test, batch=100)
    assert takes_shard(evaluate) and not takes_shard(lambda m: {})
    torch.set_grad_enabled(False)  # as the trainer runs it
    whole = evaluate(model)
    x, y = test.tensors
    assert whole["accuracy"] == 100.0 * int((model(x).argmax(1) == y).sum()) / 1001
    for world in (2, 3):
        parts = [evaluate.partial(model, r, world) for r in range(world)]
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        assert total["count"] == 1001 and total["correct"] == whole["accuracy"] * 1001 / 100
        merged = evaluate.finish(total)
        assert merged["accuracy"] == whole["accuracy"]
        assert merged["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-6)
    torch.set_grad_enabled(True)


def test_plan_spreads_what_fits_and_keeps_the_final_one():
    plan = EvalPlan(0.1, allowance=3.0)
    assert plan.should_run(0.1)  # the first evaluation is always timed
    line = plan.record(0.5, 0.1)
    assert line == ("evaluation takes 0.5s: 4 of the 8 remaining evaluations fit in 3.0s, "
                    "plus the final one")
    assert plan.planned == [0.3, 0.5, 0.6, 0.8]
    assert [p for p in (0.2, 0.3, 0.4, 0.5) if plan.should_run(p)] == [0.3, 0.5]
    assert plan.seconds_left(0.1) == 0.5 * 5  # four planned and the final
    unlimited = EvalPlan(0.25)
    assert unlimited.record(9.0, 0.25) is None
    assert all(unlimited.should_run(p) for p in (0.5, 0.75))
    assert unlimited.seconds_left(0.25) == 9.0 * 3
    assert unlimited.summary()["points"] == 4


def test_eta_counts_the_evaluations_still_to_come():
    budget = Budget("100s")
    budget.ledger.seconds["train"] = 40.0
    plan = EvalPlan(0.1, allowance=10.0)
    plan.record(2.0, 0.4)  # 10 - 2 spent - 2 for the final: 3 of the 5 points after 0.4 fit
    run = SimpleNamespace(state=SimpleNamespace(budget=budget), plan=plan, evaluate=print)
    assert eta_seconds(run) == pytest.approx(60.0 + 2.0 * 4)
    steps = Budget("100steps")
    steps.work.steps, steps.ledger.seconds["train"] = 25, 10.0
    run = SimpleNamespace(state=SimpleNamespace(budget=steps), plan=EvalPlan(0.5),
                          evaluate=None)
    assert eta_seconds(run) == pytest.approx(30.0)


def _slow_ce(clock, seconds):
    """The loss, with every micro-batch taking `seconds` of the fake clock."""

    def loss(model, batch):
        clock.sleep(seconds)
        return ce(model, batch)

    return loss


def test_a_short_seconds_budget_bounds_the_whole_wait(capfd, fake_clock):
    data = _data()
    calls = []

    def slow_eval(model):
        calls.append(1)
        fake_clock.sleep(0.4)  # ten of these would take longer than the training itself
        return {"accuracy": 50.0}

    started = fake_clock.perf_counter()
    res = train(nn.Linear(8, 3), data, _slow_ce(fake_clock, 1 / 32),
                TrainConfig(budget="4s", micro_batch=16, eval_every=0.1, progress_every=0),
                evaluate=slow_eval)
    wall = fake_clock.perf_counter() - started
    assert res.stopped == "budget" and len(calls) == 2  # the timed first one and the final
    assert res.evaluations["done"] == 2 and res.evaluations["points"] == 10
    assert res.evaluations["skipped"] >= 7
    assert res.seconds["budget"] == 4.0 and res.seconds["limit"] == 20.0
    assert res.seconds["eval_allowance"] == pytest.approx(0.6)
    assert res.ledger["eval"] < 1.5 and wall <= res.seconds["limit"]
    assert res.seconds["wall"] == pytest.approx(wall, abs=0.5)
    lines = capfd.readouterr().err.splitlines()
    assert lines == ["evaluation takes 0.4s: 0 of the 8 remaining evaluations fit in 0.6s, "
                     "plus the final one"]


def test_a_slow_micro_batch_warns_once(capfd, fake_clock):
    res = train(nn.Linear(8, 3), _data(), _slow_ce(fake_clock, 0.25),
                TrainConfig(budget="2s", micro_batch=16, quiet=True))
    assert res.steps >= 3
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"warning: one micro-batch takes 0\.\ds, \d+% of the 2s budget; a smaller "
        r"micro_batch, or a batch ramp \(batch_start < batch_end\), keeps steps short",
        lines[0])


def test_progress_lines_without_a_terminal_show_no_loss_before_there_is_one(capfd):
    res = train(nn.Linear(8, 3), _data(), ce, TrainConfig(budget="12steps", micro_batch=16,
                                                          log_every=6, progress_every=1e-9))
    assert res.steps == 12
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 12 + 1  # one per step (every 1e-9 s) and the last
    assert re.fullmatch(r"train {3}8\.3% step 1 eta 0:00:\d\d", lines[0])
    assert all("loss" not in line for line in lines[:5]) and "nan" not in "".join(lines)
    assert re.fullmatch(r"train  50\.0% step 6 loss \d\.\d{4} eta 0:00:\d\d", lines[5])
    assert lines[-1] == "train 100.0% step 12 done eta 0:00:00"


def test_a_final_evaluation_past_its_deadline_scores_whole_tenths():
    test = _data(1000)
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    evaluate = accuracy_on(test, batch=100)
    assert takes_deadline(evaluate) and not takes_deadline(lambda m, shard=(0, 1): {})
    with torch.no_grad():
        whole = evaluate(model)
        late = evaluate(model, deadline=time.monotonic() - 1.0)  # one part, then stop
        first = evaluate.finish(evaluate.partial(model, 0, EVAL_PARTS))
        early = evaluate(model, deadline=time.monotonic() + 60.0)
    assert late == {**first, "eval_fraction": 1 / EVAL_PARTS}
    assert early["accuracy"] == whole["accuracy"] and "eval_fraction" not in early
    assert early["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-6)


def test_process_start_is_before_now_and_marks_move_only_in_a_command():
    assert time.monotonic() - 3600 * 24 * 365 < process_start() <= time.monotonic()
    count_wall_from(None)
    mark_run_end()
    assert wall_since() is None  # train() from a program: each run counts from its start
    count_wall_from(123.0)
    try:
        before = time.monotonic()
        mark_run_end()
        assert wall_since() >= before  # in a command the next run counts from here
    finally:
        count_wall_from(None)


def test_a_command_long_past_its_limit_scores_a_tenth_and_says_so(capfd, fake_clock):
    test = _data(1000)
    count_wall_from(fake_clock.monotonic() - 1000.0)  # as if the command had started long ago
    try:
        res = train(nn.Linear(8, 3), _data(), _slow_ce(fake_clock, 1 / 16),
                    TrainConfig(budget="1s", micro_batch=16, progress_every=0),
                    evaluate=accuracy_on(test, batch=100))
    finally:
        count_wall_from(None)
    assert res.metrics["eval_fraction"] == 1 / EVAL_PARTS
    err = capfd.readouterr().err
    assert "the final evaluation scored 10% of its set to end within the budget's wall " \
           "limit; a longer budget scores it all" in err
    res = train(nn.Linear(8, 3), _data(), _slow_ce(fake_clock, 1 / 16),
                TrainConfig(budget="1s", micro_batch=16, progress_every=0),
                evaluate=accuracy_on(test, batch=100))
    assert "eval_fraction" not in res.metrics  # counted from its own start: time to spare
