"""The non-finite guard: a NaN loss injected at known steps, under stop, skip and rollback."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.checkpoint import latest_checkpoint, load_checkpoint
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook, TrainConfig, train


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    return TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(1))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


class Poison(Hook):
    """Turns the losses of the steps in `at` (0-based: the step being computed) into NaN,
    each at most once; records weights and LRs after every step."""

    def __init__(self, at):
        self.at, self.fired = set(at), set()
        self.weights, self.lrs = {}, []

    def on_loss(self, state, batch, losses):
        if state.step in self.at and state.step not in self.fired:
            self.fired.add(state.step)
            return losses * float("nan")
        return losses

    def on_step_end(self, state):
        self.weights[state.step] = [p.detach().clone() for p in state.raw_model.parameters()]
        self.lrs.append(state.lr)


def _cfg(tmp_path=None, **kw):
    base = dict(budget="20steps", micro_batch=16, lr=0.01, schedule="constant", quiet=True,
                tensorboard=False, out_dir=str(tmp_path) if tmp_path else None)
    return TrainConfig(**{**base, **kw})


def test_stop_keeps_the_last_good_weights_and_saves_them(tmp_path, capfd):
    model, poison = _model(), Poison(at={5})
    res = train(model, _data(), ce, _cfg(tmp_path), hooks=[poison])
    assert res.stopped == "nonfinite" and res.steps == 6 and res.skipped_steps == 1
    good = poison.weights[5]  # after the fifth step, the last one applied
    for p, q in zip(model.parameters(), good, strict=True):
        assert torch.equal(p, q)
    saved = _model()
    body = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"), saved)
    assert body["step"] == 6
    for p, q in zip(saved.parameters(), good, strict=True):
        assert torch.equal(p, q)
    err = capfd.readouterr().err.splitlines()
    assert err == [f"step 6: loss nan, non-finite gradients; stopped without applying it; the "
                   f"weights before it are saved in {tmp_path / 'checkpoints'}"]


def test_stop_without_an_output_folder_saves_nothing_and_says_so(capfd):
    res = train(_model(), _data(), ce, _cfg(), hooks=[Poison(at={0})])
    assert res.stopped == "nonfinite" and res.steps == 1
    assert capfd.readouterr().err.strip() == ("step 1: loss nan, non-finite gradients; stopped "
                                              "without applying it")


def test_skip_drops_the_update_counts_it_and_goes_on(capfd):
    model, poison = _model(), Poison(at={3, 7})
    res = train(model, _data(), ce, _cfg(on_nonfinite="skip"), hooks=[poison])
    assert res.stopped == "budget" and res.steps == 20 and res.skipped_steps == 2
    assert res.work["steps"] == 20
    for step in (4, 8):  # a skipped step leaves the weights as they were
        for p, q in zip(poison.weights[step], poison.weights[step - 1], strict=True):
            assert torch.equal(p, q)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    lines = capfd.readouterr().err.splitlines()
    assert lines == ["step 4: loss nan, non-finite gradients; update skipped (later skips are "
                     "only counted)"]


def test_rollback_reloads_the_last_checkpoint_at_half_the_lr(tmp_path, capfd):
    poison = Poison(at={9})
    res = train(_model(), _data(), ce, _cfg(tmp_path, on_nonfinite="rollback",
                                            checkpoint_every=4), hooks=[poison])
    assert res.stopped == "budget" and res.steps == 20
    assert res.rollbacks == 1 and res.skipped_steps == 1
    assert poison.lrs[:9] == [0.01] * 9 and poison.lrs[10:] == [0.005] * 10
    for p, q in zip(poison.weights[10], poison.weights[8], strict=True):
        assert torch.equal(p, q)  # after the failed step: step 8's weights again
    for p, q in zip(poison.weights[11], poison.weights[8], strict=True):
        assert not torch.equal(p, q)  # and training goes on from them
    err = capfd.readouterr().err.splitlines()
    assert err == ["step 10: loss nan, non-finite gradients; rolled back to step-8 with the "
                   "learning rate halved"]


def test_a_second_failure_after_a_rollback_stops(tmp_path, capfd):
    res = train(_model(), _data(), ce, _cfg(tmp_path, on_nonfinite="rollback",
                                            checkpoint_every=4), hooks=[Poison(at={9, 13})])
    assert res.stopped == "nonfinite" and res.rollbacks == 1 and res.steps == 14
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 2 and re.fullmatch(
        r"step 14: loss nan, non-finite gradients again after a rollback; stopped without "
        r"applying it; the weights before it are saved in .*checkpoints", err[1])


def test_rollback_needs_checkpoints():
    with pytest.raises(ConfigError, match="on_nonfinite=rollback reloads the last checkpoint: "
                                          "it needs out_dir and checkpoint_every > 0"):
        train(_model(), _data(), ce, _cfg(on_nonfinite="rollback"))
    with pytest.raises(ConfigError, match="on_nonfinite must be one of stop, skip, rollback"):
        train(_model(), _data(), ce, _cfg(on_nonfinite="ignore"))
