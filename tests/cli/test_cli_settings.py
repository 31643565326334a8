"""One way to configure every command: defaults < `--config FILE` < `--set KEY=VALUE` and
flags (the two together only when they agree), checked end to end through the CLI, and the
resolved settings written to the output folder's config.json."""

from __future__ import annotations

import json

import pytest
from conftest import run_hasten
from own_tasks import write_task

import hasten.bench.harness as harness
import hasten.bench.report as report
from hasten.cli import main


def _run_train(tmp_path, *args):
    task = f"{write_task(tmp_path)}:make_recipe"
    out = tmp_path / "run"
    proc = run_hasten("train", "--task", task, "--out", out, "--quiet", *args)
    return proc, out


def test_train_merge_order_end_to_end(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('[train]\nbudget = "3steps"\nseed = 1\nlr = 0.01\n')
    proc, out = _run_train(tmp_path, "--config", config, "--set", "seed=2", "--lr", "0.02")
    assert proc.returncode == 0, proc.stderr
    written = json.loads((out / "config.json").read_text())
    # the file sets the budget; --set beats the file's seed; a flag beats the file's lr
    assert (written["budget"], written["seed"], written["lr"]) == ("3steps", 2, 0.02)
    assert written["method"] == "baseline"  # a default nobody overrode
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 3 and result["seed"] == 2 and result["config"]["lr"] == 0.02


def test_flag_and_set_must_agree_and_unknown_keys_are_named(tmp_path):
    proc, out = _run_train(tmp_path, "--set", "seed=2", "--seed", "3")
    assert proc.returncode == 2
    assert "seed is given twice, as a flag ('3') and with --set (2)" in proc.stderr
    proc, out = _run_train(tmp_path, "--set", "sede=2")
    assert proc.returncode == 2 and "unknown setting 'sede'; known:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    missing = tmp_path / "nope.toml"
    proc, _ = _run_train(tmp_path, "--config", missing)
    assert proc.returncode == 2 and f"config file not found: {missing}" in proc.stderr


def test_required_settings_name_their_flag(capsys):
    assert main(["train", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip() == "hasten: error: --task is required"
    assert main(["prune", "--data", "digits", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip() == "hasten: error: --keep is required"


@pytest.fixture
def fake_bench(monkeypatch, tmp_path):
    seen = {}

    def fake_run_suite(name, **kw):
        seen.update(kw, suite=name)
        return {"suite": name, "runs": []}

    monkeypatch.setattr(harness, "run_suite", fake_run_suite)
    monkeypatch.setattr(report, "write_report", lambda results, out: {
        k: tmp_path / k for k in ("report", "curves", "results")})
    return seen


def test_suite_options_from_flag_set_and_file(fake_bench, tmp_path):
    config = tmp_path / "mt.toml"
    config.write_text('seeds = 2\npair = "de-en"\n')
    out = str(tmp_path / "b")
    assert main(["bench", "mt", "--config", str(config), "--quiet", "--out", out]) == 0
    assert fake_bench["options"].pair == "de-en" and fake_bench["seeds"] == 2
    assert fake_bench["tasks"] == ["mt-de-en"]
    assert main(["bench", "mt", "--config", str(config), "--set", "pair=fr-en", "--quiet",
                 "--out", out]) == 0
    assert fake_bench["tasks"] == ["mt-fr-en"]
    assert main(["bench", "mt", "--config", str(config), "--pair", "cs-en", "--quiet",
                 "--out", out]) == 0
    assert fake_bench["tasks"] == ["mt-cs-en"]
    written = json.loads((tmp_path / "b" / "config.json").read_text())
    assert written["options"] == {"pair": "cs-en"} and written["seeds"] == 2


def test_every_command_takes_config_and_set(capsys):
    for command in ("demo", "bench vision", "report x.json", "train", "prune", "distill"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        text = capsys.readouterr().out
        assert "--config FILE" in text and "--set KEY=VALUE" in text, command
        assert "settings (--set KEY=VALUE or --config FILE):" in text, command


def test_one_name_per_idea_with_old_spellings_hidden(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--batch-size" in text and "--micro-batch" not in text
    for command in ("train", "prune", "distill", "bench vision"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        text = capsys.readouterr().out
        for flag in ("--out", "--quiet"):
            assert flag in text, (command, flag)
