import json

import pytest

from hasten.bench.records import load_record
from hasten.core.errors import ConfigError
from hasten.integrations.hf_bench import HFBenchConfig, main


def test_quick_mode_records_both_arms(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "result.json").read_text())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["quick"] is True and "hf_bench --quick" in config["command"]
    assert results["budget_seconds"] == 2.0 and results["max_steps_guess"] >= 1
    assert [(r["seed"], r["arm"]) for r in results["runs"]] == [(0, "hf-linear"), (0, "hasten")]
    hf, ours = results["runs"]
    keys = {"seed", "arm", "accuracy", "train_seconds", "wall_seconds", "ended_on_time",
            "callback_us_per_step", "stopped_by", "steps", "max_steps", "last_lr_fraction",
            "task", "method", "metric", "higher_is_better", "final"}
    assert set(hf) == set(ours) == keys
    assert [(r["method"], r["final"]) for r in results["runs"]] == [
        (r["arm"], r["accuracy"]) for r in results["runs"]]
    record = load_record(tmp_path / "result.json")  # the record layout, read as it is
    assert record["source"]["layout"] == "record" and record["suite"] == "hf-bench"
    assert hf["max_steps"] == results["max_steps_guess"]
    assert hf["stopped_by"] in ("max_steps", "wall clock")
    assert ours["stopped_by"] == "budget" and ours["max_steps"] is None
    # the last step's LR is set at its start, so at most about one step's share of the decay
    # is left: none when the step began at the budget's end
    assert ours["train_seconds"] >= 2.0 and ours["last_lr_fraction"] <= 2.0 / ours["steps"]
    assert 0 < ours["callback_us_per_step"] < 1e5
    assert 0 <= ours["accuracy"] <= 100
    assert "seed 0 hasten: accuracy" in capsys.readouterr().out


def test_only_wall_clock_budgets_compare():
    with pytest.raises(ConfigError, match="compares wall-clock budgets; got '100steps'"):
        HFBenchConfig(budget="100steps").validate()
    with pytest.raises(ConfigError, match=r"unknown arms \['sgd'\]"):
        HFBenchConfig(arms=["hasten", "sgd"]).validate()


def test_bad_settings_exit_2_with_one_line(capsys):
    assert main(["--budget", "5steps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hasten: error: the benchmark compares wall-clock budgets; got '5steps'"]
