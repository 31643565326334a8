import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_hasten
from safetensors.torch import load_file
from torch import nn

from hasten.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from hasten.errors import CheckpointError


def _net(width=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, width), nn.Linear(width, 2))


def test_round_trip_restores_weights_and_state(tmp_path):
    net = _net()
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(3, 4)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "note": "hi", "nested": {"t": torch.arange(5)}}
    save_checkpoint(tmp_path, 7, net, state)
    other = _net()
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    body = load_checkpoint(latest_checkpoint(tmp_path), other)
    assert body["step"] == 7 and body["state"]["note"] == "hi"
    assert torch.equal(body["state"]["nested"]["t"], torch.arange(5))
    for a, b in zip(net.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)


def test_atomic_layout_keeps_latest_two(tmp_path):
    net = _net()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, net, {})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest", "step-000000002", "step-000000003"]  # no temp folders left
    assert latest_checkpoint(tmp_path).name == "step-000000003"
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    save_checkpoint(tmp_path, 1, _net(8), {})
    with pytest.raises(CheckpointError, match="another model"):
        load_checkpoint(latest_checkpoint(tmp_path), _net(16))


def test_corrupt_and_incomplete_checkpoints(tmp_path):
    path = save_checkpoint(tmp_path, 1, _net(), {})
    (path / "state.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, _net())
    path = save_checkpoint(tmp_path, 2, _net(), {})
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete: model.safetensors is missing"):
        load_checkpoint(path, _net())


TRAIN = ["train", "--task", "digits", "--budget", "400steps", "--checkpoint-every", "20",
         "--quiet"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_hasten(*TRAIN, "--out", whole, check=True)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hasten", *TRAIN, "--out", str(killed)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pointer = killed / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline:
        if pointer.exists() and int(pointer.read_text().strip().split("-")[1]) >= 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stopped_at = int(pointer.read_text().strip().split("-")[1])
    assert 100 <= stopped_at < 400, "the run must be killed mid-way"
    assert not (killed / "model.safetensors").exists()

    run_hasten(*TRAIN, "--out", killed, "--resume", check=True)
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    result = json.loads((killed / "result.json").read_text())
    assert result["steps"] == 400
    assert result["work"] == json.loads((whole / "result.json").read_text())["work"]


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    """A stopped run is not a finished one: no model or result is written, and the exit
    status is 128 + SIGTERM, so `hasten train ... && next-step` does not go on."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hasten", "train", "--task", "digits", "--budget", "1e6steps",
         "--quiet", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert not (out / "model.safetensors").exists() and not (out / "result.json").exists()
    assert "stopped by SIGTERM" in stdout and "Traceback" not in stderr
    ckpt = latest_checkpoint(out / "checkpoints")
    from hasten.bench.vision import digits

    body = load_checkpoint(ckpt, digits(0, False).model)
    assert body["step"] >= 50
