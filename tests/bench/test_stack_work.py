"""The lever stack by work and step cost (`hasten.bench.stack_work`): the target from the tuned
baseline's end of training, work to it, modelled time with step costs and one-off seconds,
the stack's verdict and each lever's removal cost, on runs built to known answers."""

from __future__ import annotations

import math

import pytest

from hasten.bench.stack_work import (
    relative_times,
    removal_costs,
    stack_verdict,
    step_costs,
    steps_to_target,
    target,
)
from hasten.core.errors import DataError


def run(method, seed, crosses):
    """Evaluated every 10 steps up to 200: 80 before `crosses`, 90 from it; then the final."""
    curve = [[0.0, {"steps": s}, 90.0 if s >= crosses else 80.0] for s in range(10, 201, 10)]
    return {"method": method, "seed": seed, "curve": curve + [[0.0, {"steps": 200}, 70.0]]}


RUNS = ([run("tuned-baseline", s, c) for s, c in enumerate([100, 120, 110])]
        + [run(m, s, c) for m in ("stack", "stack-minus-bf16", "stack-minus-schedule")
           for s, c in enumerate([40, 50, 45])]
        + [run("stack-minus-proxy", s, math.inf) for s in range(3)])


def cost(method, ratio, one_off):
    return {"method": method, "final": ratio,
            "notes": {"report_rows": {"one-off seconds": one_off, "baseline ms per step": 20.0}}}


COSTS = {"notes": {"baseline": {"method": "tuned-baseline", "one_off_seconds": 0.0}},
         "runs": [cost("stack", 0.5, 0.2), cost("stack-minus-bf16", 0.8, 0.2),
                  cost("stack-minus-schedule", 0.5, 0.2), cost("stack-minus-proxy", 0.4, 0.0)]}


def test_target_and_work_to_it_read_the_evaluations_on_the_fixed_part():
    goal = target(RUNS, "tuned-baseline", 0.3)
    assert goal == pytest.approx(89.7)  # the final evaluation (70) is not the part's
    assert steps_to_target(RUNS[0], goal) == 100
    assert steps_to_target(RUNS[-1], goal) == math.inf
    with pytest.raises(DataError, match="no plain run with intermediate evaluations"):
        target(RUNS, "plain", 0.3)


def test_modelled_time_is_steps_times_step_cost_plus_one_off():
    costs = step_costs(COSTS, "tuned-baseline")
    assert costs["stack"] == (0.5, pytest.approx(10.0))  # 0.2 s over 20 ms a step
    times = relative_times(RUNS, costs, "tuned-baseline", 89.7)
    assert times["tuned-baseline"] == {0: 1.0, 1: 1.0, 2: 1.0}
    assert times["stack"][0] == pytest.approx((40 * 0.5 + 10) / 100)
    assert times["stack"][1] == pytest.approx((50 * 0.5 + 10) / 120)
    assert times["stack-minus-proxy"][2] == math.inf
    with pytest.raises(DataError, match="measured against 'tuned-baseline', not 'baseline'"):
        step_costs(COSTS, "baseline")


def test_the_stack_verdict_and_what_each_lever_pays():
    times = relative_times(RUNS, step_costs(COSTS, "tuned-baseline"), "tuned-baseline", 89.7)
    v = stack_verdict(times["stack"])
    assert v["verdict"] == "passes" and v["interval"].mean == pytest.approx(0.3033, abs=1e-4)
    assert stack_verdict(times["stack"], max_relative=0.2)["verdict"] == "fails"
    levers = removal_costs(times)
    assert levers["bf16"]["verdict"] == "pays"  # 0.8 / 0.5 of the stack's step: +40%
    assert levers["bf16"]["costs"][0] == pytest.approx((40 * 0.8 + 10) / (40 * 0.5 + 10) - 1)
    assert levers["schedule"]["verdict"] == "does not pay"  # removing it costs nothing
    assert levers["proxy"]["verdict"] == "pays"  # without it the target is never reached
    assert stack_verdict({0: 0.3, 1: math.inf, 2: math.inf})["verdict"] == "fails"
    assert stack_verdict({0: 0.3, 1: 0.4, 2: math.inf})["verdict"] == "undecided"
