"""Stop signals never pass for a finished result: SIGTERM exits 143 and SIGINT 130, with one
line saying what was kept and how to continue, and the cut work is never recorded (bench: a
partial record of the finished runs; prune: nothing written; distill and train: a
checkpoint to resume from)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import ROOT
from own_tasks import write_task


def _start(*args, env=None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "hasten", *map(str, args)], cwd=ROOT,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(check, proc, timeout=240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out waiting")


def _runs_in(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return 0


def _bench_until_second_run(tmp_path, sig):
    task = f"{write_task(tmp_path)}:slow"
    out = tmp_path / "bench"
    proc = _start("bench", "vision", "--tasks", task, "--seeds", "3", "--out", out,
                  env={"HASTEN_TEST_SLOW": "1"})
    _wait_for(lambda: _runs_in(out / "results.json") == 1, proc)
    time.sleep(1.0)  # well into seed 1's slow run
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc, out, task, stderr


def test_sigterm_during_bench_keeps_finished_runs_and_resume_finishes(tmp_path):
    proc, out, task, stderr = _bench_until_second_run(tmp_path, signal.SIGTERM)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        f"hasten: stopped by SIGTERM; 1 of 3 runs finished and kept in {out}/results.json; "
        "the same command with --resume runs the rest"]
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "stopped" and record["stopped"] == "sigterm"
    assert [r["seed"] for r in record["runs"]] == [0]  # the cut run is not recorded
    assert record["runs"][0]["stopped"] == "budget"
    assert not (out / "report.md").exists()
    # the same command again refuses to start over silently; --resume runs the rest
    again = _start("bench", "vision", "--tasks", task, "--seeds", "3", "--out", out)
    assert again.wait(timeout=120) == 2
    assert "holds a stopped record; pass --resume" in again.stderr.read()
    done = _start("bench", "vision", "--tasks", task, "--seeds", "3", "--out", out,
                  "--resume", "--quiet")
    assert done.wait(timeout=240) == 0, done.stderr.read()
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "complete" and [r["seed"] for r in record["runs"]] == [0, 1, 2]
    assert record["resumed_from"] and (out / "report.md").is_file()


def test_sigint_during_bench_exits_130(tmp_path):
    proc, out, _, stderr = _bench_until_second_run(tmp_path, signal.SIGINT)
    assert proc.returncode == 130, stderr
    assert stderr.strip().startswith("hasten: stopped by SIGINT (Ctrl-C); 1 of 3 runs")
    assert len(stderr.strip().splitlines()) == 1
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "stopped" and len(record["runs"]) == 1


def test_sigterm_while_train_runs_saves_a_checkpoint_to_resume(tmp_path):
    task = f"{write_task(tmp_path)}:slow"
    out = tmp_path / "run"
    proc = _start("train", "--task", task, "--seed", "1", "--out", out, "--quiet",
                  env={"HASTEN_TEST_SLOW": "1"})
    _wait_for(lambda: (out / "metrics.jsonl").exists(), proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    line, = stderr.strip().splitlines()
    assert line.startswith("hasten: stopped by SIGTERM; checkpoint after ")
    assert line.endswith(f"in {out}/checkpoints; continue with the same command and --resume")
    assert not (out / "model.safetensors").exists() and (out / "config.json").is_file()
    done = _start("train", "--task", task, "--seed", "1", "--out", out, "--quiet",
                  "--resume")
    assert done.wait(timeout=240) == 0, done.stderr.read()
    assert json.loads((out / "result.json").read_text())["steps"] == 400


def test_sigterm_while_prune_scores_writes_nothing(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 512)
    x = (rng.normal(size=(512, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    out = tmp_path / "pruned"
    proc = _start("prune", "--data", tmp_path / "blobs.npz", "--scorer", "el2n", "--keep",
                  "0.5", "--epochs", "100000", "--batch-size", "8", "--device", "cpu",
                  "--out", out)
    _wait_for(lambda: proc.stdout.readline().startswith("scoring 512 examples"), proc)
    time.sleep(1.5)  # the proxy is training
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip() == ("hasten: stopped by SIGTERM; nothing written: scores from a "
                              "cut run never make a pruned set")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pruned")]


def test_sigterm_while_distilling_checkpoints_and_resume_continues(tmp_path):
    from hasten.distill.synthetic import SyntheticSet

    out = tmp_path / "dm"
    common = ["distill", "--data", "digits", "--method", "dm", "--ipc", "1", "--width", "8",
              "--batch-real", "16", "--checkpoint-every", "5", "--out", out]
    proc = _start(*common, "--budget", "100000steps")
    _wait_for(lambda: (out / "checkpoints" / "latest").is_file(), proc)  # the loop runs
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    line, = stderr.strip().splitlines()
    assert line.startswith("hasten: stopped by SIGTERM; checkpoint of iteration ")
    assert line.endswith(f"saved in {out}/checkpoints (continue with --resume)")
    iteration = int(line.split("checkpoint of iteration ")[1].split()[0])
    assert iteration > 0 and not (out / "set.safetensors").exists()
    assert (out / "config.json").is_file()
    done = _start(*common, "--budget", f"{iteration + 2}steps", "--resume", "--quiet")
    assert done.wait(timeout=240) == 0, done.stderr.read()
    assert SyntheticSet.load(out / "set.safetensors").meta["iterations"] == iteration + 2
