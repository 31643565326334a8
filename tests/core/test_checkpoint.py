import errno
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

import hasten.core.checkpoint as checkpoint_module
from hasten.core.checkpoint import (
    MAX_HEADER_BYTES,
    check_safetensors_header,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from hasten.core.errors import CheckpointError


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


def _flip_byte(path: Path, offset: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_anywhere_is_caught_before_loading(tmp_path):
    net = _net()
    path = save_checkpoint(tmp_path, 1, net, {"t": torch.arange(6)})
    _flip_byte(path / "model.safetensors")
    target = _net(8)
    with torch.no_grad():
        for p in target.parameters():
            p.fill_(7.0)
    with pytest.raises(CheckpointError, match=r"is corrupt: model.safetensors does not match "
                                              r"its sha256$"):
        load_checkpoint(path, target)
    assert all(bool((p == 7.0).all()) for p in target.parameters())  # untouched
    path = save_checkpoint(tmp_path, 2, net, {"t": torch.arange(6)})
    _flip_byte(path / "state.safetensors")
    with pytest.raises(CheckpointError, match="state.safetensors does not match its sha256"):
        load_checkpoint(path, _net())
    path = save_checkpoint(tmp_path, 3, net, {"lr": 0.5})
    body = json.loads((path / "state.json").read_text())
    body["state"]["lr"] = 0.25  # an edit that leaves valid JSON
    (path / "state.json").write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match="state.json does not match its checksum"):
        load_checkpoint(path, _net())


def test_truncated_file_is_named_with_its_sizes(tmp_path):
    path = save_checkpoint(tmp_path, 1, _net(), {"t": torch.arange(100)})
    f = path / "state.safetensors"
    size = f.stat().st_size
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=f"state.safetensors has {size - 10} bytes, "
                                              f"{size} were written"):
        load_checkpoint(path, _net())


def test_absurd_safetensors_header_is_refused_before_parsing(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match=r"x.safetensors claims a 4611686018427387904-byte "
                                              r"header in a 10-byte file"):
        check_safetensors_header(bad)
    big = tmp_path / "y.safetensors"
    big.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b" " * 64)
    with pytest.raises(CheckpointError, match="claims"):
        check_safetensors_header(big)
    # a checkpoint from before checksums: the header check still guards the parser
    path = save_checkpoint(tmp_path / "ck", 1, _net(), {})
    body = json.loads((path / "state.json").read_text())
    del body["files"], body["checksum"]
    (path / "state.json").write_text(json.dumps(body))
    load_checkpoint(path, _net())  # loads unverified
    (path / "state.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="state.safetensors claims a"):
        load_checkpoint(path, _net())


def test_damaged_newest_falls_back_with_one_line_each(tmp_path):
    net = _net()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, net, {}, keep=3)
    _flip_byte(tmp_path / "step-000000003" / "model.safetensors")
    found = find_checkpoint(tmp_path)
    assert found.step == 2 and found.path.name == "step-000000002"
    assert found.warnings == ["checkpoint step-3 is damaged (model.safetensors does not match "
                              "its sha256); falling back to step-2"]
    assert found.damaged == [tmp_path / "step-000000003"]
    (tmp_path / "step-000000002" / "state.json").unlink()
    found = find_checkpoint(tmp_path)
    assert found.step == 1
    assert found.warnings[1] == ("checkpoint step-2 is damaged (incomplete: state.json is "
                                 "missing); falling back to step-1")
    (tmp_path / "step-000000001" / "state.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"^no usable checkpoint in .*step-3: .*; step-2: "
                                              r"incomplete.*; step-1: .*"):
        find_checkpoint(tmp_path)


def test_garbage_or_dangling_latest_pointer(tmp_path):
    net = _net()
    for step in (1, 2):
        save_checkpoint(tmp_path, step, net, {})
    (tmp_path / "latest").write_bytes(b"\x80\xff\x00\x13garbage")
    assert latest_checkpoint(tmp_path).name == "step-000000002"  # no UnicodeDecodeError
    found = find_checkpoint(tmp_path)
    assert found.step == 2 and found.warnings == [
        "checkpoint latest is damaged (the pointer holds binary garbage); falling back to "
        "step-2"]
    (tmp_path / "latest").write_text("step-000000009\n")  # names a folder that is gone
    found = find_checkpoint(tmp_path)
    assert found.warnings == ["checkpoint step-9 is damaged (its folder is missing); falling "
                              "back to step-2"]
    (tmp_path / "latest").write_text("step-000000001\n")  # older than a complete newer one
    assert find_checkpoint(tmp_path).step == 2 and not find_checkpoint(tmp_path).warnings
    assert find_checkpoint(tmp_path / "none").path is None


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    net = _net()
    save_checkpoint(tmp_path, 1, net, {"a": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(tmp_path, 2, net, {"a": 2})
    assert str(err.value) == (f"cannot write checkpoint step-2 in {tmp_path} (No space left "
                              "on device); step-1 is intact")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000000001"]
    assert load_checkpoint(latest_checkpoint(tmp_path), _net())["state"]["a"] == 1


def test_keeps_the_newest_k(tmp_path):
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, _net(), {}, keep=3)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-000000003", "step-000000004", "step-000000005"]


TRAIN = ["train", "--task", "digits", "--budget", "400steps", "--checkpoint-every", "20",
         "--quiet"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
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
    assert "stopped by SIGTERM" in stdout + stderr and "Traceback" not in stderr
    ckpt = latest_checkpoint(out / "checkpoints")
    from hasten.bench.vision import digits

    body = load_checkpoint(ckpt, digits(0, False).model)
    assert body["step"] >= 50
