import pytest
import torch

from hasten.core.budget import Budget
from hasten.core.errors import ConfigError
from hasten.core.schedules import (
    SCHEDULES,
    batch_multiple,
    budget_lr,
    constant,
    cosine,
    linear,
    make_schedule,
    one_cycle,
    triangle,
)

# (schedule, params, value at p=0, p=0.5, p=1), worked out by hand
CASES = [
    (constant, {}, 1.0, 1.0, 1.0),
    (constant, {"warmup": 0.5}, 0.0, 1.0, 1.0),
    (linear, {}, 1.0, 0.5, 0.0),
    (linear, {"warmup": 0.25, "final": 0.1}, 0.0, 1 - 0.9 * (0.25 / 0.75), 0.1),
    (cosine, {}, 1.0, 0.5, 0.0),
    (cosine, {"warmup": 0.0, "final": 0.2}, 1.0, 0.6, 0.2),
    (one_cycle, {"peak_at": 0.5, "start": 0.04, "final": 0.0}, 0.04, 1.0, 0.0),
    (triangle, {}, 0.25, 0.25 + 0.75 * 0.5 / 0.75, 0.0),
]


@pytest.mark.parametrize("fn, params, at0, at_half, at1", CASES)
def test_schedule_values(fn, params, at0, at_half, at1):
    assert fn(0.0, **params) == pytest.approx(at0, abs=1e-12)
    assert fn(0.5, **params) == pytest.approx(at_half, abs=1e-12)
    assert fn(1.0, **params) == pytest.approx(at1, abs=1e-12)


def test_triangle_is_cramming_shape():
    # 25% of peak at the start, the peak at 75% of the budget, zero at the end
    assert triangle(0.0) == 0.25
    assert triangle(0.75) == 1.0
    assert triangle(0.875) == pytest.approx(0.5)
    assert triangle(1.0) == 0.0


def test_every_schedule_stays_in_range_and_clips_progress():
    for name, fn in SCHEDULES.items():
        values = [fn(i / 100) for i in range(101)]
        assert all(0.0 <= v <= 1.0 for v in values), name
        assert fn(-1.0) == fn(0.0) and fn(2.0) == fn(1.0), name


def test_make_schedule_binds_parameters_and_rejects_bad_ones():
    s = make_schedule("cosine", warmup=0.1)
    assert s(0.05) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown schedule 'zigzag'"):
        make_schedule("zigzag")
    with pytest.raises(ConfigError, match="bad parameters for schedule 'triangle'"):
        make_schedule("triangle", warmup=0.1)


def test_batch_ramp():
    assert batch_multiple(0.0, start=1, end=8, until=0.5) == 1
    assert batch_multiple(0.25, start=1, end=8, until=0.5) == 4  # floor(1 + 7 * 0.5)
    assert batch_multiple(0.5, start=1, end=8, until=0.5) == 8
    assert batch_multiple(1.0, start=1, end=8, until=0.5) == 8
    assert batch_multiple(0.3, start=4, end=4) == 4
    with pytest.raises(ConfigError):
        batch_multiple(0.1, start=0, end=4, until=0.5)


def test_step_schedule_drops_once_at_its_point():
    from hasten.core.schedules import make_schedule

    s = make_schedule("step")
    assert [s(p) for p in (0.0, 0.49, 0.5, 1.0)] == [1.0, 1.0, 0.1, 0.1]
    s = make_schedule("step", at=0.25, factor=0.5)
    assert (s(0.2), s(0.25)) == (1.0, 0.5)


# -- budget_lr: a torch scheduler whose factor follows a Budget -------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def _opt(lr=0.5):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_budget_lr_on_a_steps_budget_is_the_schedule_at_the_next_steps_end():
    import math

    budget = Budget("10steps")
    opt = _opt(0.5)
    sched = budget_lr(opt, budget, "cosine")
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(12):
        budget.work.steps += 1  # the step is counted, then the scheduler steps
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    # the LR of step k (k = 1..10) is the schedule at k/10, where that step ends
    expected = [0.5 * 0.5 * (1 + math.cos(math.pi * min(1.0, k / 10))) for k in range(1, 14)]
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[9] == 0.0 and seen[-1] == 0.0


def test_budget_lr_with_warmup_and_two_groups():
    budget = Budget("4steps")
    opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0},
                             {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    sched = budget_lr(opt, budget, "linear", warmup=0.5)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for _ in range(3):
        budget.work.steps += 1
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    # progress 1/4, 2/4, 3/4, 4/4: warmup to 1 at 0.5, then linear decay to 0 at 1
    assert lrs == [pytest.approx([0.5, 0.05]), pytest.approx([1.0, 0.1]),
                   pytest.approx([0.5, 0.05]), pytest.approx([0.0, 0.0], abs=1e-12)]


def test_budget_lr_on_a_seconds_budget_projects_the_mean_step(monkeypatch):
    import types

    import hasten.core.budget

    clock = FakeClock()
    fake_time = types.SimpleNamespace(perf_counter=clock.perf_counter)
    monkeypatch.setattr(hasten.core.budget, "time", fake_time)
    budget = Budget("10s")
    opt = _opt(1.0)
    sched = budget_lr(opt, budget, "linear")
    assert opt.param_groups[0]["lr"] == 1.0  # nothing used, no step cost known: progress 0
    budget.start()
    clock.now += 2.0  # a 2-second step
    budget.work.steps += 1
    opt.step()
    sched.step()  # used 2 s, mean step 2 s: the next step ends at 4 s = 0.4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.6)
    budget.stop()
    clock.now += 50.0  # evaluation: off the clock
    budget.start()
    clock.now += 4.0  # a 4-second step: used 6 s in 2 steps, mean 3 s -> 9 s = 0.9
    budget.work.steps += 1
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    clock.now += 0.5  # a fast step: 6.5 s in 3 steps -> 8.67 s, but never backwards
    budget.work.steps += 1
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    clock.now += 3.0  # 9.5 s in 4 steps -> 11.9 s: the next step ends the budget
    budget.work.steps += 1
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.0


def test_budget_lr_counts_its_own_calls_when_the_loop_counts_no_steps(monkeypatch):
    import types

    import hasten.core.budget

    clock = FakeClock()
    monkeypatch.setattr(hasten.core.budget, "time", types.SimpleNamespace(
        perf_counter=clock.perf_counter))
    budget = Budget("10s")
    opt = _opt(1.0)
    sched = budget_lr(opt, budget, "linear")
    budget.start()
    for _ in range(2):
        clock.now += 3.0
        opt.step()
        sched.step()
    # 6 s in 2 scheduler steps (budget.work.steps stays 0): the next ends at 9 s = 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_budget_lr_progress_now_and_resume(monkeypatch):
    budget = Budget("100ex")
    opt = _opt(1.0)
    sched = budget_lr(opt, budget, "linear", projected=False)
    budget.work.examples_forwarded = 30
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.7)
    # the saved state holds numbers only, so it loads with weights_only=True
    import io

    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert "budget" not in state and "shape" not in state
    resumed_budget = Budget("100ex")
    resumed_budget.load_state_dict(budget.state_dict())
    resumed = budget_lr(_opt(1.0), resumed_budget, "linear", projected=False)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == sched.last_epoch and resumed.budget is resumed_budget
    resumed_budget.work.examples_forwarded = 80
    resumed.optimizer.step()
    resumed.step()
    assert resumed.get_last_lr() == pytest.approx([0.2])


def test_budget_lr_rejects_an_unknown_schedule():
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'"):
        budget_lr(_opt(), Budget("10steps"), "cosin")
