"""Every lever's state resumes bit-exact after SIGKILL, in hasten's trainer, the HF Trainer and
Lightning: a run killed after a checkpoint and resumed ends with the same weights and work as
one never killed (the curriculum's draws, InfoBatch's scores and epochs, selective backprop's
loss history, generator and queue all come back)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def run(kind: str, out: Path, *extra: str, slow: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    if slow:
        env["HASTEN_TEST_SLOW"] = "1"
    return subprocess.Popen([sys.executable, str(HERE / "resume_run.py"), kind, str(out),
                             *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


def checkpoints(kind: str, out: Path) -> int:
    """How many checkpoints the run has written so far."""
    pattern = {"trainer": "checkpoints/step-*", "hf": "checkpoint-*/hasten-levers.json",
               "lightning": "ckpt/step-*.ckpt"}[kind]
    return len(list(out.glob(pattern)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trainer", "hf", "lightning"])
def test_the_levers_resume_bit_exact_after_sigkill(tmp_path, kind):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = run(kind, whole)
    victim = run(kind, killed, slow=True)
    deadline = time.time() + 300
    while time.time() < deadline and checkpoints(kind, killed) < 2 and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run must be killed mid-way"
    assert not (killed / "final.json").exists()
    finished(uninterrupted)
    finished(run(kind, killed, "--resume"))
    a = json.loads((whole / "final.json").read_text())
    b = json.loads((killed / "final.json").read_text())
    assert a["work"] == b["work"]
    assert a["weights"] == b["weights"]  # exactly: every float equal
