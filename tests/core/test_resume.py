"""Resuming a run: from which step, from what, with which budget; and every stop is one."""

import errno
import json
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import hasten.core.checkpoint as checkpoint_module
from hasten.core.errors import CheckpointError, ConfigError
from hasten.core.trainer import Hook, TrainConfig, train


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    return TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(1))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 3))


class SendSignal(Hook):
    """Sends this process `signum` when step `at` ends (a Ctrl-C or a `kill` mid-run); a
    resumed run passes one that never fires, as its hooks must match the checkpoint's."""

    def __init__(self, at, signum=signal.SIGINT):
        self.at, self.signum = at, signum

    def on_step_end(self, state):
        if state.step == self.at:
            os.kill(os.getpid(), self.signum)


def _cfg(out=None, **kw):
    base = dict(budget="20steps", micro_batch=16, lr=0.01, quiet=True, tensorboard=False,
                out_dir=str(out) if out else None, batch_start=1, batch_end=2, batch_ramp=0.5)
    return TrainConfig(**{**base, **kw})


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("signum, reason", [(signal.SIGINT, "sigint"),
                                            (signal.SIGTERM, "sigterm")])
def test_a_stop_signal_saves_and_the_resume_is_bit_identical(tmp_path, capfd, signum, reason):
    whole = _model()
    train(whole, _data(), ce, _cfg())
    first = _model()
    res = train(first, _data(), ce, _cfg(tmp_path), hooks=[SendSignal(7, signum)])
    assert res.stopped == reason and res.steps == 7
    capfd.readouterr()
    again = _model()
    res = train(again, _data(), ce, _cfg(tmp_path, resume=True), hooks=[SendSignal(-1)])
    assert capfd.readouterr().err.splitlines() == ["resumed from step 7"]
    assert res.stopped == "budget" and res.steps == 20 and res.resumed_from == 7
    assert _same(whole, again)


def test_resume_falls_back_past_a_damaged_checkpoint(tmp_path, capfd):
    whole = _model()
    train(whole, _data(), ce, _cfg())
    train(_model(), _data(), ce, _cfg(tmp_path, checkpoint_every=4), hooks=[SendSignal(10)])
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step-*")) == ["step-000000008", "step-000000010"]
    weights = ckpts / "step-000000010" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])  # truncated
    capfd.readouterr()
    again = _model()
    res = train(again, _data(), ce, _cfg(tmp_path, checkpoint_every=4, resume=True),
                hooks=[SendSignal(-1)])
    size = weights.stat().st_size if weights.exists() else None
    assert size is None  # the damaged one was set aside
    assert (ckpts / "damaged-step-000000010").is_dir()
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("checkpoint step-10 is damaged (model.safetensors has ")
    assert err[0].endswith(" were written); falling back to step-8")
    assert err[1:] == ["resumed from step 8"]
    assert res.resumed_from == 8 and _same(whole, again)


def test_resume_without_a_folder_is_refused_and_an_empty_one_starts_fresh(tmp_path, capfd):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"^cannot resume: {missing} does not exist$"):
        train(_model(), _data(), ce, _cfg(missing, resume=True))
    (tmp_path / "run").mkdir()  # e.g. killed before its first checkpoint
    fresh, resumed = _model(), _model()
    train(fresh, _data(), ce, _cfg())
    res = train(resumed, _data(), ce, _cfg(tmp_path / "run", resume=True))
    assert capfd.readouterr().err.splitlines() == [
        f"no checkpoint in {tmp_path / 'run' / 'checkpoints'} yet; starting fresh"]
    assert res.resumed_from is None and _same(fresh, resumed)


def test_a_fresh_run_refuses_a_folder_with_an_earlier_runs_checkpoints(tmp_path):
    train(_model(), _data(), ce, _cfg(tmp_path), hooks=[SendSignal(5)])
    with pytest.raises(ConfigError) as err:
        train(_model(), _data(), ce, _cfg(tmp_path), hooks=[SendSignal(-1)])
    assert str(err.value) == (f"{tmp_path / 'checkpoints'} holds checkpoints of an earlier run "
                              "(newest step-5); resume it or use another output folder")


def test_a_changed_budget_is_refused_unless_allowed(tmp_path, capfd):
    train(_model(), _data(), ce, _cfg(tmp_path), hooks=[SendSignal(5)])
    with pytest.raises(ConfigError) as err:
        train(_model(), _data(), ce, _cfg(tmp_path, resume=True, budget="30steps"),
              hooks=[SendSignal(-1)])
    assert str(err.value) == (f"cannot resume {tmp_path} with budget 30steps: it was started "
                              "with budget 20steps (set allow_budget_change to change it)")
    capfd.readouterr()
    res = train(_model(), _data(), ce, _cfg(tmp_path, resume=True, budget="30steps",
                                            allow_budget_change=True), hooks=[SendSignal(-1)])
    assert res.steps == 30
    assert capfd.readouterr().err.splitlines() == [
        "budget changed from 20steps to 30steps on resume", "resumed from step 5"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    change = [r for r in rows if r["kind"] == "budget_change"]
    assert len(change) == 1 and change[0]["old"] == "20steps" and change[0]["new"] == "30steps"


def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real, calls = checkpoint_module.save_file, []

    def fill_up(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", fill_up)
    with pytest.raises(CheckpointError) as err:
        train(_model(), _data(), ce, _cfg(tmp_path, checkpoint_every=4))
    ckpts = tmp_path / "checkpoints"
    assert str(err.value) == (f"cannot write checkpoint step-8 in {ckpts} (No space left on "
                              "device); step-4 is intact")
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-000000004"]
    monkeypatch.setattr(checkpoint_module, "save_file", real)
    res = train(_model(), _data(), ce, _cfg(tmp_path, checkpoint_every=4, resume=True))
    assert res.resumed_from == 4 and res.steps == 20


def test_a_budget_the_run_cannot_count_is_refused_up_front():
    with pytest.raises(ConfigError) as err:
        train(_model(), _data(), ce, _cfg(budget="1e6tok"))
    assert str(err.value) == ("budget 1e6tok counts tokens, but this run has no tokens_fn to "
                              "count them; use a seconds, steps or examples budget")
    with pytest.raises(ConfigError, match="tokens_fn counts none in the first batch"):
        train(_model(), _data(), ce, _cfg(budget="1e6tok"), tokens_fn=lambda batch: 0)
