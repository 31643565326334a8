"""The commands as a user meets them: `--version`, `hasten list`, `--out` checked before any
work, train on what prune and distill wrote, progress and tables off a terminal, suite
options in `bench SUITE --help`, and the exit code of a run stopped by a non-finite loss."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import help_text, run_hasten, run_in_process
from own_tasks import write_task

from hasten import __version__
from hasten.cli import main


def _one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_and_list(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"hasten {__version__}"
    assert main(["list", "suites"]) == 0
    suites = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in suites) == sorted([
        "vision", "demo", "steps", "selective", "prune", "distill", "mt", "mlm", "electra",
        "pretrain-ladder", "infobatch", "stack", "stack-sst2", "chaos", "levers", "tune",
        "dynprune-work", "selective-work", "hf-trainer"])
    assert main(["list", "methods", "--suite", "mt"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"plain*", "sr-sqrt", "baseline", "bf16"} <= set(names)
    assert not {"el2n-0.5", "dm"} & set(names)  # lever methods apply where their needs are met
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for heading in ("commands:", "suites:", "tasks:", "methods:", "scorers:", "selectors:",
                    "distillers:", "recipes:"):
        assert heading in text
    assert "el2n" in text and "ccs" in text and "crammed" in text


@pytest.mark.parametrize("command", [
    ["train", "--task", "digits"],
    ["bench", "vision", "--quick"],
    ["prune", "--data", "digits", "--scorer", "random", "--keep", "0.5"],
    ["distill", "--data", "digits", "--method", "random"],
    ["report", "{results}"],
    ["demo"],
])
def test_out_under_a_file_is_one_line_before_any_work(tmp_path, capsys, command):
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"suite": "s", "runs": []}))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    command = [c.replace("{results}", str(results)) for c in command]
    rc = main([*command, "--out", str(blocker / "out")])
    _one_line_error(rc, capsys.readouterr().err, f"lies under the file {blocker}")
    rc = main([*command, "--out", str(blocker)])
    _one_line_error(rc, capsys.readouterr().err, "is a file; --out names a folder")
    rc = main([*command, "--out", "/proc/hasten-test/out"])
    _one_line_error(rc, capsys.readouterr().err, "cannot write in /proc")


def test_prune_then_train_on_the_kept_set(tmp_path):
    kept = tmp_path / "half"
    run_in_process("prune", "--data", "digits", "--scorer", "random", "--keep", "0.5",
                   "--out", kept, "--quiet", check=True)
    assert (kept / "data.npz").is_file()
    out = tmp_path / "run"
    proc = run_in_process("train", "--task", "digits", "--data", kept, "--budget", "3steps",
                          "--out", out, "--quiet", check=True)
    result = json.loads((out / "result.json").read_text())
    assert result["notes"]["train_examples"] == len(np.load(kept / "kept.npy"))
    assert result["notes"]["train_data"] == str(kept) and result["steps"] == 3
    assert "digits / baseline" in proc.stdout
    proc = run_in_process("train", "--task", "mnist1d", "--data", kept / "data.npz",
                          "--budget", "3steps", "--out", tmp_path / "bad", "--quiet")
    assert proc.returncode == 2 and "examples have shape (1, 8, 8), the task's have" \
        in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_distill_then_train_on_the_set(tmp_path, capsys):
    folder = tmp_path / "syn"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "2", "--out",
                 str(folder), "--quiet"]) == 0
    assert main(["train", "--task", "digits", "--data", str(folder), "--budget", "2steps",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["notes"]["train_examples"] == 20
    capsys.readouterr()
    assert main(["train", "--task", "digits", "--data", str(tmp_path / "none.npz"),
                 "--out", str(tmp_path / "x")]) == 2
    _one_line_error(2, capsys.readouterr().err, "none.npz")


def test_progress_lines_and_wide_tables_off_a_terminal(tmp_path):
    task = f"{write_task(tmp_path)}:slow"
    proc = run_hasten("train", "--task", task, "--seed", "1", "--budget", "30steps",
                      "--out", tmp_path / "run",
                      env={"HASTEN_TEST_SLOW": "1", "HASTEN_PROGRESS_EVERY": "0.3"},
                      check=True)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("train ")]
    assert lines and all(re.fullmatch(r"train +\d+\.\d% step \d+( loss \d+\.\d+)?( accuracy "
                                      r"\d+\.\d+)? eta \d+:\d\d:\d\d", line)
                         for line in lines), lines
    assert not [line for line in proc.stdout.splitlines() if "% of 30steps" in line]
    out = tmp_path / "bench"
    methods = "baseline,bf16,fp32,foreach-adamw,fused-adamw,for-loop-adamw"
    proc = run_in_process("bench", "vision", "--tasks", f"{write_task(tmp_path)}:make_recipe",
                          "--methods", methods, "--out", out, check=True)
    assert "[1/6]" in proc.stdout and "[6/6]" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "for-loop-adamw" in line)
    assert len(header) > 100 and "…" not in proc.stdout  # the full width, not 80 columns


def test_bench_help_lists_the_suites_own_options_and_other_suites_flags_are_named(capsys):
    text = help_text(capsys, "bench", "mt")
    assert "--pair PAIR" in text and "suite options (--set KEY=VALUE or --config FILE):" in text
    assert 'pair = "en-de"  # the paper\'s En-De' in text
    assert "--distill-budget" in help_text(capsys, "bench", "distill")
    _one_line_error(main(["bench", "vision", "--pair", "en-de"]), capsys.readouterr().err,
                    "bench vision: --pair applies to the mt suite, not vision")
    _one_line_error(main(["bench", "mt", "--pair", "en-vi", "--quiet"]),
                    capsys.readouterr().err, "Multi30k has no language pair 'en-vi'")


def test_a_run_stopped_by_a_non_finite_loss_exits_3(tmp_path, monkeypatch, capsys):
    import hasten.bench.harness as harness
    import hasten.cli.train as train_command

    real = harness.train_recipe

    def diverged(*args, **kw):
        run, model = real(*args, **kw)
        return {**run, "stopped": "nonfinite"}, model

    # the command holds its own name for it once imported (by any test before this one)
    monkeypatch.setattr(harness, "train_recipe", diverged)
    monkeypatch.setattr(train_command, "train_recipe", diverged)
    task = f"{write_task(tmp_path)}:make_recipe"
    assert main(["train", "--task", task, "--out", str(tmp_path / "run"), "--quiet"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (f"hasten: error: {task} / baseline stopped on a non-finite loss (lower the "
                   "learning rate, or try fp32)")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["stopped"] == "nonfinite"
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_finished_record_is_never_replaced_unless_asked(tmp_path, capsys):
    task = f"{write_task(tmp_path)}:make_recipe"
    out = tmp_path / "b"
    base = ["bench", "vision", "--tasks", task, "--out", str(out), "--quiet"]
    assert main(base) == 0
    first = (out / "result.json").read_text()
    capsys.readouterr()
    _one_line_error(main(base), capsys.readouterr().err, "holds a finished record")
    assert (out / "result.json").read_text() == first
    assert main([*base, "--overwrite"]) == 0
