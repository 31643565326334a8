"""Every stop is a stop: SIGTERM and SIGINT, in every command that does work (bench, train,
prune, distill, cram, glue), exit 143 and 130 with one line saying what was kept and how to
continue, and the cut work is never reported as finished (bench: a record of the finished
runs; train, cram, distill: a checkpoint to resume from; prune and glue: nothing written).

Each command runs in this process; a watcher thread sends the signal to the process as soon
as the command shows it is at work (a file appears), as a user's Ctrl-C or a scheduler's
SIGTERM would arrive."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from own_tasks import write_task

from hasten.cli import main
from hasten.core.checkpoint import find_checkpoint

SIGNALS = {"sigterm": (signal.SIGTERM, 143, "SIGTERM"),
           "sigint": (signal.SIGINT, 130, "SIGINT (Ctrl-C)")}
TINY_CRAM = [a for kv in ("layers=1", "hidden=32", "heads=2", "intermediate=64",
                          "vocab_size=200", "seq_len=32", "batch=8", "micro_batch=8",
                          "filter=false") for a in ("--set", kv)]


@pytest.fixture(autouse=True)
def ctrl_c_interrupts():
    """Ctrl-C raises KeyboardInterrupt here as in a terminal, even when the test run itself was
    started with SIGINT ignored (a background job of a non-interactive shell)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _signalled(argv: list[str], ready: Callable[[], bool], signum: int,
               timeout: float = 240.0) -> int:
    """`main(argv)` in this process, sent `signum` as soon as `ready()` holds."""
    done, sent = threading.Event(), []

    def watch() -> None:
        end = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < end:
            if ready():
                if not done.is_set():
                    sent.append(time.monotonic())
                    os.kill(os.getpid(), signum)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code = main(argv)
    finally:
        done.set()
        watcher.join()
    assert sent, f"`hasten {' '.join(argv)}` ended ({code}) before it showed it was at work"
    return code


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _runs_in(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return 0


def _marker_when_called(monkeypatch, module: str, name: str, marker: Path) -> None:
    """Replace `module.name` by a wrapper that creates `marker`, then calls it."""
    import importlib

    target = importlib.import_module(module)
    original = getattr(target, name)

    def wrapped(*args, **kwargs):
        marker.touch()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapped)


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_bench_keeps_the_finished_runs_and_resume_runs_the_rest(tmp_path, capsys,
                                                                 monkeypatch, sig):
    signum, code, name = SIGNALS[sig]
    task = f"{write_task(tmp_path)}:slow"
    out = tmp_path / "bench"
    argv = ["bench", "vision", "--tasks", task, "--seeds", "3", "--out", str(out), "--quiet"]
    monkeypatch.setenv("HASTEN_TEST_SLOW", "1")
    assert _signalled(argv, lambda: _runs_in(out / "result.json") == 1, signum) == code
    assert _one_line(capsys.readouterr().err) == (
        f"hasten: stopped by {name}; 1 of 3 runs finished and kept in {out}/result.json; "
        "the same command with --resume runs the rest")
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "stopped" and record["stopped"] == sig
    assert [r["seed"] for r in record["runs"]] == [0]  # the cut run is not recorded
    assert record["runs"][0]["stopped"] == "budget"
    assert not (out / "report.md").exists()
    if sig == "sigint":
        return
    assert main(argv) == 2  # the same command refuses to start over silently
    assert "holds a stopped record; pass --resume" in capsys.readouterr().err
    monkeypatch.delenv("HASTEN_TEST_SLOW")
    assert main([*argv, "--resume"]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "complete" and [r["seed"] for r in record["runs"]] == [0, 1, 2]
    assert record["resumed_from"] and (out / "report.md").is_file()


def test_a_stop_between_two_runs_is_recorded_too(tmp_path):
    from hasten.bench.harness import run_suite
    from hasten.bench.own import task_name
    from hasten.bench.suites import load_suites
    from hasten.core import stop

    load_suites()
    task = task_name(f"{write_task(tmp_path)}:make_recipe")
    out = tmp_path / "bench"
    calls = []

    def progress(line: str) -> None:  # called between runs, outside any trainer
        calls.append(line)
        if line.startswith("[2/"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(stop.Stopped) as stopped:
        with stop.watch():
            run_suite("vision", tasks=[task], methods=["baseline"], seeds=3, out=out,
                      progress=progress)
    assert stopped.value.signal == "sigterm"
    assert stopped.value.saved.startswith("1 of 3 runs finished and kept in ")
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "stopped" and [r["seed"] for r in record["runs"]] == [0]


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_train_saves_a_checkpoint_and_resume_continues(tmp_path, capsys, monkeypatch, sig):
    signum, code, name = SIGNALS[sig]
    task = f"{write_task(tmp_path)}:slow"
    out = tmp_path / "run"
    argv = ["train", "--task", task, "--seed", "1", "--out", str(out), "--quiet"]
    monkeypatch.setenv("HASTEN_TEST_SLOW", "1")
    assert _signalled(argv, (out / "metrics.jsonl").exists, signum) == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"hasten: stopped by {name}; checkpoint after ")
    assert line.endswith(f"in {out}/checkpoints; continue with the same command and --resume")
    steps = int(line.split("checkpoint after ")[1].split()[0])
    assert find_checkpoint(out / "checkpoints").step == steps < 400
    assert not (out / "model.safetensors").exists() and not (out / "result.json").exists()
    assert (out / "config.json").is_file()
    monkeypatch.delenv("HASTEN_TEST_SLOW")
    assert main([*argv, "--resume"]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"resumed from step {steps}"
    assert json.loads((out / "result.json").read_text())["steps"] == 400


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_prune_writes_nothing(tmp_path, capsys, monkeypatch, sig):
    signum, code, name = SIGNALS[sig]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 512)
    x = (rng.normal(size=(512, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    out = tmp_path / "pruned"
    scoring = tmp_path / "scoring"
    _marker_when_called(monkeypatch, "hasten.select.prune", "_scores", scoring)
    argv = ["prune", "--data", str(tmp_path / "blobs.npz"), "--scorer", "el2n", "--keep",
            "0.5", "--epochs", "100000", "--batch-size", "8", "--device", "cpu", "--out",
            str(out), "--quiet"]
    assert _signalled(argv, scoring.exists, signum) == code
    assert _one_line(capsys.readouterr().err) == (
        f"hasten: stopped by {name}; nothing written: scores from a cut run never make a "
        "pruned set")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pruned")]


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_distill_checkpoints_and_resume_continues(tmp_path, capsys, sig):
    from hasten.distill.synthetic import SyntheticSet

    signum, code, name = SIGNALS[sig]
    out = tmp_path / "dm"
    argv = ["distill", "--data", "digits", "--method", "dm", "--ipc", "1", "--width", "8",
            "--batch-real", "16", "--checkpoint-every", "5", "--out", str(out), "--quiet"]
    latest = out / "checkpoints" / "latest"
    assert _signalled([*argv, "--budget", "100000steps"], latest.is_file, signum) == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"hasten: stopped by {name}; checkpoint of iteration ")
    assert line.endswith(f"saved in {out}/checkpoints (continue with --resume)")
    iteration = int(line.split("checkpoint of iteration ")[1].split()[0])
    assert iteration > 0 and not (out / "set.safetensors").exists()
    assert (out / "config.json").is_file()
    if sig == "sigint":
        return
    assert main([*argv, "--budget", f"{iteration + 2}steps", "--resume"]) == 0
    assert SyntheticSet.load(out / "set.safetensors").meta["iterations"] == iteration + 2


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_cram_saves_a_checkpoint_and_exports_nothing(tmp_path, capsys, monkeypatch, sig):
    signum, code, name = SIGNALS[sig]
    monkeypatch.setenv("HASTEN_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat on the mat.\n\nA dog ran under the tree and away.\n" * 40)
    out = tmp_path / "cram"
    argv = ["cram", "--corpus", str(corpus), "--budget", "100000steps", *TINY_CRAM,
            "--out", str(out), "--quiet"]
    assert _signalled(argv, (out / "metrics.jsonl").exists, signum) == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"hasten: stopped by {name} after ")
    assert line.endswith(f"checkpoint in {out}/checkpoints (continue with --resume); "
                         "nothing exported")
    steps = int(line.split(" after ")[1].split()[0])
    assert find_checkpoint(out / "checkpoints").step == steps
    assert json.loads((out / "summary.json").read_text())["stopped"] == sig
    assert not (out / "model").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from hasten.pretrain.cram import CramConfig, cram
    from hasten.pretrain.lmeval.glue_tasks import glue_root

    assert (glue_root() / "RTE" / "train.tsv").is_file(), f"GLUE data missing: {glue_root()}"
    tmp = tmp_path_factory.mktemp("glue-model")
    corpus = tmp / "corpus.txt"
    corpus.write_text("the cat sat on the mat and the dog ran under a tree .\n\n" * 50)
    cram(CramConfig(corpus=[str(corpus)], budget="2steps", out=str(tmp / "run"),
                    changes=dict(vocab_size=200, seq_len=32, cutoff=None, layers=1, hidden=32,
                                 heads=2, intermediate=64, batch=8, micro_batch=8),
                    quiet=True, cache=str(tmp / "cache")))
    return tmp / "run" / "model"


@pytest.mark.parametrize("sig", sorted(SIGNALS))
def test_glue_stops_and_writes_nothing(tmp_path, capsys, monkeypatch, tiny_model, sig):
    signum, code, name = SIGNALS[sig]
    tuning = tmp_path / "tuning"
    _marker_when_called(monkeypatch, "hasten.pretrain.glue", "_collate", tuning)
    out = tmp_path / "glue"
    argv = ["glue", str(tiny_model), "--tasks", "rte", "--seeds", "1", "--epochs", "1000",
            "--max-train-examples", "64", "--device", "cpu", "--out", str(out), "--quiet"]
    assert _signalled(argv, tuning.exists, signum) == code
    assert _one_line(capsys.readouterr().err) == f"hasten: stopped by {name}; nothing saved"
    assert not out.exists()
