"""Your own task on the command line, with no edit to hasten: FILE.py:FUNCTION,
MODULE:FUNCTION and an installed `hasten.tasks` entry point, through `hasten train` and
`hasten bench`; every bad input is one line and exit 2 before any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_hasten, run_in_process
from own_tasks import write_task

from hasten.cli import main


def _one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasten: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_and_bench_run_a_task_from_a_file(tmp_path):
    task = write_task(tmp_path)
    out = tmp_path / "run"
    proc = run_in_process("train", "--task", f"{task}:make_recipe", "--out", out, "--quiet",
                          check=True)
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == f"{task}:make_recipe" and result["steps"] == 8
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "accuracy" in proc.stdout
    bench = tmp_path / "bench"
    run_in_process("bench", "vision", "--tasks", f"{task}:make_recipe", "--methods",
                   "baseline,bf16", "--seeds", "2", "--quiet", "--out", bench, check=True)
    results = json.loads((bench / "result.json").read_text())
    assert [(r["method"], r["seed"]) for r in results["runs"]] == [
        ("baseline", 0), ("bf16", 0), ("baseline", 1), ("bf16", 1)]
    assert results["status"] == "complete"


@pytest.mark.slow
def test_a_module_on_the_path_and_an_installed_entry_point(tmp_path):
    write_task(tmp_path, "my_tasks.py")
    dist = tmp_path / "my_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hasten.tasks]\nlinear = my_tasks:make_recipe\n")
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}"}
    run_hasten("train", "--task", "my_tasks:make_recipe", "--out", tmp_path / "a", "--quiet",
               env=env, check=True)
    run_hasten("train", "--task", "linear", "--out", tmp_path / "b", "--quiet", env=env,
               check=True)
    assert json.loads((tmp_path / "b" / "result.json").read_text())["task"] == "linear"
    listed = run_hasten("list", "tasks", env=env, check=True).stdout
    assert "installed (my_tasks:make_recipe)" in listed


@pytest.mark.parametrize("spec, fragment", [
    ("{dir}/missing.py:make_recipe", "file not found"),
    ("{dir}/tiny_task.py:nope", "has no function 'nope'"),
    ("{dir}/tiny_task.py:not_a_recipe", "returned dict, not a hasten.bench.harness.Recipe"),
    ("{dir}/tiny_task.py:wrong_arguments", "must take (seed, quick)"),
    ("{dir}/tiny_task.py:broken", "failed to build a recipe: RuntimeError: no data here"),
    ("no_such_module_here:make", "no module 'no_such_module_here'"),
    ("imagenet", "unknown task 'imagenet'"),
])
def test_bad_tasks_are_one_line_before_any_run(tmp_path, capsys, spec, fragment):
    write_task(tmp_path)
    out = tmp_path / "out"
    spec = spec.replace("{dir}", str(tmp_path))
    rc = main(["train", "--task", spec, "--out", str(out), "--quiet"])
    _one_line_error(rc, capsys.readouterr().err, fragment)
    rc = main(["bench", "vision", "--tasks", spec, "--out", str(out), "--quiet"])
    _one_line_error(rc, capsys.readouterr().err, fragment)
    assert not out.exists()


def test_a_method_of_another_suite_is_refused_before_any_run(tmp_path, capsys):
    task = f"{write_task(tmp_path)}:make_recipe"
    out = tmp_path / "out"
    rc = main(["train", "--task", task, "--method", "plain*", "--out", str(out)])
    _one_line_error(rc, capsys.readouterr().err,
                    "method 'plain*' does not apply to task", "methods for", "baseline, bf16")
    rc = main(["train", "--task", "digits", "--method", "dm", "--out", str(out)])
    err = capsys.readouterr().err
    _one_line_error(rc, err, "method 'dm' does not apply to task digits")
    assert "plain*" not in err and "el2n-0.5" not in err  # only what applies there
    rc = main(["bench", "mt", "--methods", "plain,el2n-0.5", "--quick", "--out", str(out)])
    err = capsys.readouterr().err
    _one_line_error(rc, err, "method 'el2n-0.5' does not apply to task mt-en-de")
    assert "sr-sqrt" in err and "proxy" not in err
    rc = main(["bench", "vision", "--methods", "baseline,nosuch", "--out", str(out)])
    _one_line_error(rc, capsys.readouterr().err, "unknown method 'nosuch'")
    assert not out.exists()


def test_the_example_task_runs_through_train_and_bench(tmp_path):
    """examples/own_task.py is the documented example of a user's task."""
    example = ROOT / "examples" / "own_task.py"
    assert example.is_file(), "examples/own_task.py is missing"
    run_in_process("train", "--task", f"{example}:make_recipe", "--quick", "--quiet",
                   "--out", tmp_path / "t", check=True)
    run_in_process("bench", "vision", "--tasks", f"{example}:make_recipe", "--quick",
                   "--quiet", "--out", tmp_path / "b", check=True)
    assert json.loads((tmp_path / "b" / "result.json").read_text())["runs"]


def test_task_files_are_loaded_once_per_process(tmp_path):
    from hasten.bench.harness import TASKS
    from hasten.bench.own import task_name

    spec = f"{write_task(tmp_path)}:make_recipe"
    try:
        assert task_name(spec) == spec == task_name(spec)
        assert Path(spec.rpartition(":")[0]).is_file() and spec in TASKS
    finally:
        TASKS.pop(spec, None)
