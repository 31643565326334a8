"""The tuner's choices and its time, on a fake clock and rigged measurements, so no test
depends on the machine's speed; and one short tune of a tiny real task."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError
from hasten.core.recipe import Recipe
from hasten.core.train_config import TrainConfig
from hasten.levers import LEVERS, Lever, load_choices, register_lever
from hasten.tuning.tuner import MIN_PILOT, tune

BUDGET = "20m"  # 1200 s; a tenth for tuning: 120 s


def tiny_task(seed: int, quick: bool) -> Recipe:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    torch.manual_seed(seed)
    return Recipe(nn.Linear(6, 2), TensorDataset(x, (x[:, 0] > 0).long()),
                  lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"), None,
                  TrainConfig(budget="10s", lr=0.05, micro_batch=32, quiet=True))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# each toy lever's effect on the validation loss: a factor as a function of the pilot's
# seconds and the shorter pilot length L (the first pilot the tuner runs)
EFFECTS = {
    "toy-good": lambda s, short: 0.9,  # helps at every length
    "toy-bad": lambda s, short: 1.1,  # hurts at every length
    "toy-early": lambda s, short: 0.85 if s < 1.5 * short else 1.02,  # helps early only
    "toy-fading": lambda s, short: 0.8 if s < 1.5 * short else 0.98,  # helps early, then barely
}
COSTS = {"bf16": 0.8, "toy-slow-kernel": 1.3}  # step cost factors


class Rigged:
    """Measurements from formulas; each call advances the fake clock by what it would take:
    `overhead` seconds of set-up and scoring plus its training. `fail_after` calls, it raises
    (an interrupted tune)."""

    def __init__(self, clock: Clock, overhead: float = 1.0, fail_after: int | None = None):
        self.clock, self.overhead, self.fail_after, self.calls = clock, overhead, fail_after, 0
        self.short: float | None = None

    def _call(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt

    def step_cost(self, levers: list[str], steps: int) -> dict[str, float]:
        self._call()
        per_step = 0.1
        for spec in levers:
            per_step *= COSTS.get(spec, 1.0)
        self.clock.now += self.overhead + steps * per_step
        return {"per_step": per_step, "compile": 0.0}

    def pilot(self, levers: list[str], seconds: float, seed: int) -> float:
        self._call()
        self.clock.now += self.overhead + seconds
        if seconds > MIN_PILOT:  # past the tuner's probe, the first pilot is at L
            self.short = self.short or seconds
        loss = 1.0 / (1.0 + 0.1 * seconds) + 0.0005 * seed
        for spec in levers:
            loss *= EFFECTS.get(spec, lambda s, short: 1.0)(seconds, self.short or seconds)
        return loss


@pytest.fixture
def toys():
    made = []
    for name, kind in [*((n, "data") for n in EFFECTS), ("toy-slow-kernel", "step")]:
        cls = type(name, (Lever,), {"name": name, "kind": kind, "role": "config",
                                    "__doc__": f"a rigged lever ({name})"})
        register_lever(cls)
        made.append(name)
    yield
    for name in made:
        LEVERS.pop(name)


LIST = ["bf16", "toy-slow-kernel", "toy-good", "toy-bad", "toy-early", "toy-fading"]


def run(tmp_path, name="t", **kw):
    clock = Clock()
    kw.setdefault("runner", Rigged(clock))
    choices = tune(tiny_task, BUDGET, levers=LIST, out=tmp_path / name, clock=clock, **kw)
    return choices, clock


def test_the_tuner_keeps_what_pays_and_never_exceeds_its_share(tmp_path, toys):
    choices, clock = run(tmp_path)
    assert clock.now <= 0.1 * 1200  # the whole tune within its share of the budget
    assert choices["tune_seconds"] == pytest.approx(clock.now)
    assert choices["levers"] == ["bf16", "toy-good"]  # the cheaper step, the better data
    assert choices["train_budget"] == f"{1200 - clock.now:.3f}".rstrip("0").rstrip(".") + "s"
    assert load_choices(tmp_path / "t" / "choices.json") == ["bf16", "toy-good"]
    report = (tmp_path / "t" / "tune.md").read_text()
    for spec, decision in (("toy-bad", "left out"), ("toy-early", "left out"),
                           ("toy-fading", "left out"), ("toy-slow-kernel", "left out"),
                           ("toy-good", "kept"), ("bf16", "kept")):
        row = next(line for line in report.splitlines() if line.startswith(f"| {spec} |"))
        assert f"| {decision}:" in row, row
    early = json.loads((tmp_path / "t" / "tune.json").read_text())["verdicts"]["toy-early"]
    assert early["gain_short"] > early["noise"] > early["gain_long"]  # it helped at L only


def test_a_share_too_small_for_any_pilot_keeps_the_baseline_and_says_so(tmp_path, toys):
    clock = Clock()
    choices = tune(tiny_task, "30s", levers=["toy-good"], pilot_share=0.1, out=tmp_path / "s",
                   clock=clock, runner=Rigged(clock, overhead=2.0))
    assert clock.now <= 3.0 and choices["levers"] == []
    assert "no time left in the pilot share" in (tmp_path / "s" / "tune.md").read_text()


def test_an_interrupted_tune_resumes_to_the_same_choice(tmp_path, toys):
    whole, _ = run(tmp_path, "whole")
    clock = Clock()
    with pytest.raises(KeyboardInterrupt):
        tune(tiny_task, BUDGET, levers=LIST, out=tmp_path / "cut", clock=clock,
             runner=Rigged(clock, fail_after=9))
    clock = Clock()
    resumed = tune(tiny_task, BUDGET, levers=LIST, out=tmp_path / "cut", clock=clock,
                   runner=Rigged(clock), resume=True)
    assert resumed == whole
    for name in ("choices.json", "tune.md"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_a_lever_the_task_cannot_support_is_refused_with_its_reason(tmp_path, toys):
    clock = Clock()
    choices = tune(tiny_task, BUDGET, levers=["curriculum", "toy-good"], out=tmp_path / "r",
                   clock=clock, runner=Rigged(clock))
    assert choices["levers"] == ["toy-good"]
    assert ("lever 'curriculum' needs a difficulty per training example (Recipe.difficulty), "
            "which this task does not declare") in (tmp_path / "r" / "tune.md").read_text()


@pytest.mark.wallclock
def test_a_short_real_tune_writes_its_choice_within_its_share(tmp_path):
    choices = tune(tiny_task, "40s", levers=["bf16", "infobatch"], pilot_share=0.5,
                   out=tmp_path / "real")
    assert set(choices["levers"]) <= {"bf16", "infobatch"}
    # estimates come from the measurements so far: allow one item's overrun on a real clock
    assert choices["tune_seconds"] <= 1.25 * 20
    assert (tmp_path / "real" / "tune.md").read_text().startswith("# hasten tune")


def test_the_throughput_only_rival_picks_by_speed_within_its_share():
    from hasten.tuning.throughput import throughput_autotune

    clock = Clock()
    choices = throughput_autotune(tiny_task, BUDGET, runner=Rigged(clock), clock=clock)
    # examples per second grow with the batch here, and bf16 makes a step cheaper
    assert choices["levers"] == ["micro-batch:size=64", "bf16"]
    assert choices["tune_seconds"] == pytest.approx(clock.now) and clock.now <= 0.1 * 1200
    assert choices["kind"] == "throughput-only"
    tight = Clock()
    short = throughput_autotune(tiny_task, "60s", runner=Rigged(tight), clock=tight)
    assert tight.now <= 0.1 * 60 + 3.2  # it stops measuring at its share (one pair over)
    assert short["train_budget"] == f"{60 - tight.now:.3f}".rstrip("0").rstrip(".") + "s"


def test_the_throughput_only_rival_refuses_a_budget_it_cannot_charge():
    from hasten.tuning.throughput import throughput_autotune

    with pytest.raises(ConfigError, match="the throughput-only autotune charges its measuring "
                       "to a wall-clock budget: give seconds, minutes or hours, not 12000ex"):
        throughput_autotune(tiny_task, "12000ex", runner=Rigged(Clock()), clock=Clock())
