import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import hasten.core.guards as guards
from hasten.core.errors import ConfigError
from hasten.core.guards import (
    EXIT_CODES,
    Interrupted,
    StopSignals,
    check_memory,
    clip_and_check,
    nonfinite_step,
    peak_memory,
    slow_step_line,
    stop_line,
)
from hasten.core.trainer import STOP_REASONS, TrainConfig, train


def ce(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g))


def test_every_stop_reason_has_an_exit_code():
    assert set(EXIT_CODES) == set(STOP_REASONS)
    assert EXIT_CODES == {"budget": 0, "sigterm": 143, "sigint": 130, "nonfinite": 3}


def test_signals_become_a_flag_and_handlers_come_back():
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert stop.reason is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "sigterm" and stop.code == 1
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: a second Ctrl-C is safe
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "sigint" and stop.code == 2 and stop.count == 3
        with pytest.raises(Interrupted, match="sigint"), stop.interruptible():
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_nonfinite_step_sees_nan_or_inf_in_loss_or_gradients():
    one = torch.tensor(1.0)
    assert not nonfinite_step(one, one)
    assert nonfinite_step(torch.tensor(float("nan")), one)
    assert nonfinite_step(one, torch.tensor(float("inf")))
    model = nn.Linear(3, 1)
    model(torch.ones(2, 3)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert float(clip_and_check(model, None)) == 0.0
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    model.bias.grad[0] = float("nan")
    assert nonfinite_step(one, clip_and_check(model, None))
    model.bias.grad[0] = 1.0
    norm = clip_and_check(model, 1e-3)  # clipping: the norm before it
    expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads[:1]] +
                                                  [torch.ones(1)]))
    torch.testing.assert_close(norm, expected)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert float(after) == pytest.approx(1e-3, rel=1e-4)
    model.weight.grad[0, 0] = float("inf")
    assert nonfinite_step(one, clip_and_check(model, 1.0))


def test_a_micro_batch_that_cannot_fit_is_refused_in_one_line(monkeypatch):
    data = _data()
    model = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 3))
    small = lambda k: (data.tensors[0][:k], data.tensors[1][:k])  # noqa: E731
    check_memory(model, ce, small, 64, "adamw", torch.device("cpu"), torch.autocast("cpu",
                 enabled=False))  # the machine has room for this
    monkeypatch.setattr(guards, "available_bytes", lambda device: 1024)
    with pytest.raises(ConfigError, match=r"^micro_batch 64 needs about \d+\.\d GiB \(measured "
                                          r"on 8 examples\), 0\.0 GiB is available; use a "
                                          r"smaller micro_batch"):
        check_memory(model, ce, small, 64, "adamw", torch.device("cpu"),
                     torch.autocast("cpu", enabled=False))
    with pytest.raises(ConfigError, match="micro_batch 16 needs about"):
        train(model, data, ce, TrainConfig(budget="2steps", micro_batch=16, quiet=True))
    res = train(model, data, ce, TrainConfig(budget="2steps", micro_batch=16, quiet=True,
                                             memory_check=False))
    assert res.steps == 2


def test_peak_memory_is_reported():
    peak = peak_memory(torch.device("cpu"))
    assert peak["rss_bytes"] > 10 * 2**20 and "cuda_bytes" not in peak
    res = train(nn.Linear(8, 3), _data(), ce, TrainConfig(budget="2steps", micro_batch=8,
                                                          quiet=True))
    assert res.peak_memory["rss_bytes"] > 10 * 2**20


def test_slow_step_line():
    assert slow_step_line(1.234, 15.0) == (
        "warning: one micro-batch takes 1.2s, 8% of the 15s budget; a smaller micro_batch, "
        "or a batch ramp (batch_start < batch_end), keeps steps short")


def test_stop_lines_for_a_command():
    assert stop_line("budget", 10, "runs/x") is None
    assert stop_line("sigint", 7, "runs/x") == ("stopped by Ctrl-C (SIGINT) after 7 steps; "
                                                "checkpoint saved in runs/x/checkpoints "
                                                "(continue with --resume)")
    assert stop_line("sigterm", 3, None) == ("stopped by SIGTERM after 3 steps; nothing saved "
                                             "(no output folder)")
    assert stop_line("nonfinite", 6, "o").startswith("stopped by a non-finite loss or "
                                                     "gradient after 6 steps; checkpoint")
