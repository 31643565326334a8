"""`hasten bench hf-trainer`: the HF Trainer at an equal wall-clock budget, a suite of the
harness with its own run; its earlier entry point names the command that replaced it."""

import json

import pytest
from conftest import FakeClock, use_clock

from hasten.bench.records import load_record
from hasten.cli import main
from hasten.integrations import hf_bench


def test_quick_mode_records_every_arm(tmp_path, capsys, monkeypatch):
    # every arm and the probes read a fake clock that moves 25 ms per read: every step takes
    # the same time, so the step-count guesses, the stops and the last LR are the same anywhere
    use_clock(monkeypatch, FakeClock(tick=0.025),
              ("hasten.core.budget", "hasten.integrations.hf_bench"))
    assert main(["bench", "hf-trainer", "--quick", "--out", str(tmp_path)]) == 0
    record = load_record(tmp_path / "result.json")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["quick"] is True and "bench hf-trainer --quick" in config["command"]
    assert record["suite"] == "hf-trainer" and record["status"] == "complete"
    runs = {r["method"]: r for r in record["runs"]}
    assert [(r["seed"], r["method"]) for r in record["runs"]] == [
        (0, "hf-careful"), (0, "hf-linear"), (0, "hasten")]
    careful, quick, ours = runs["hf-careful"], runs["hf-linear"], runs["hasten"]
    for run in record["runs"]:
        assert run["task"] == "sst2-hf-trainer" and run["metric"] == "accuracy"
        assert run["final"] == run["accuracy"] and 0 <= run["final"] <= 100
        assert run["budget_seconds"] == 2.0 and run["timing_flag"] is None or True
    # each user's step count: its timing's rate x the budget x its margin
    for run, probe, factor in ((quick, 0.5, 1.0), (careful, 0.5, 0.9)):
        t = run["timing"]
        assert (t["probe_seconds"], t["factor"]) == (probe, factor)
        assert run["max_steps"] == t["max_steps"] == max(1, int(t["steps_per_second"] * 2.0
                                                                * factor))
        assert run["stopped_by"] in ("max_steps", "wall clock")
    assert ours["stopped_by"] == "budget" and ours["max_steps"] is None
    assert ours["timing"] is None
    # the last step's LR is set at its start, so at most about one step's share of the decay
    # is left: none when the step began at the budget's end
    assert ours["train_seconds"] >= 2.0 and ours["last_lr_fraction"] <= 2.0 / ours["steps"]
    assert 0 < ours["callback_us_per_step"] < 1e5
    assert "hasten: " in capsys.readouterr().out


def test_only_wall_clock_budgets_compare(capsys, tmp_path):
    assert main(["bench", "hf-trainer", "--budget", "5steps", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hasten: error: bench hf-trainer: --budget 5steps does not apply (it "
                   "takes seconds budgets)"]
    assert not (tmp_path / "x" / "result.json").exists()


def test_the_earlier_entry_point_names_its_replacement(capsys):
    assert hf_bench.main(["--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hasten: error: `python -m hasten.integrations.hf_bench` is now `hasten "
                   "bench hf-trainer` (the same settings as its flags; --arms is --methods)"]


@pytest.mark.parametrize("factor", [0.0, 1.5])
def test_a_careful_factor_outside_0_1_is_refused(factor):
    from hasten.core.errors import ConfigError

    with pytest.raises(ConfigError, match="careful_factor in"):
        hf_bench._settings(hf_bench.HFTrainerOptions(careful_factor=factor), False, None)
