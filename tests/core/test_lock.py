import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError
from hasten.core.lock import LOCK_FILE, acquire, folder_lock, is_locked, release
from hasten.core.trainer import TrainConfig, train

HOLD = ("import sys, time\n"
        "from hasten.core.lock import acquire\n"
        "acquire(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n")


def _holder(folder):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _tiny_run(out):
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    return train(nn.Linear(4, 2), data,
                 lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
                 TrainConfig(budget="2steps", micro_batch=8, quiet=True, tensorboard=False,
                             out_dir=str(out)))


def test_second_live_run_on_one_folder_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        assert is_locked(out)
        with pytest.raises(ConfigError) as err:
            _tiny_run(out)
        assert str(err.value) == (f"{out} is in use by another run (pid {proc.pid} holds "
                                  f"{out / LOCK_FILE}); wait for it or choose another output "
                                  "folder")
        assert not (out / "metrics.jsonl").exists()  # nothing written by the refused run
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not is_locked(out)  # the OS dropped the killed holder's lock
    assert _tiny_run(out).steps == 2


def test_lock_is_reentrant_within_a_process(tmp_path):
    with folder_lock(tmp_path):
        with folder_lock(tmp_path):
            assert is_locked(tmp_path)
        assert is_locked(tmp_path)
        _tiny_run(tmp_path)  # train() takes the lock its caller holds
    assert not is_locked(tmp_path)
    acquire(tmp_path)
    release(tmp_path)
    release(tmp_path)  # an extra release is harmless
    assert not is_locked(tmp_path)


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path, monkeypatch):
    import hasten.core.guards

    monkeypatch.setattr(hasten.core.guards, "available_bytes", lambda device: 0)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="micro_batch 8 needs about"):
        _tiny_run(out)  # refused during set-up, after the folder was locked
    assert not out.exists()
