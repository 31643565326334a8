"""MTT: the unrolled student steps equal a hand computation; experts record every epoch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hasten.distill.mtt import (
    flatten_params,
    load_trajectories,
    save_trajectory,
    train_expert,
    unflatten_params,
    unroll_student,
)


def _manual_step(w, b, x, y, lr):
    """One SGD step of softmax regression, with the cross-entropy gradient written out."""
    p = torch.softmax(x @ w.T + b, dim=1)
    delta = (p - F.one_hot(y, 2).to(p.dtype)) / len(x)
    return w - lr * delta.T @ x, b - lr * delta.sum(0)


def test_two_unrolled_steps_match_manual_sgd_and_lr_gets_the_right_gradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    w0 = torch.randn(2, 3, dtype=torch.float64)
    b0 = torch.randn(2, dtype=torch.float64)
    start = torch.cat([w0.flatten(), b0])  # named_parameters order: weight, bias
    batches = [(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0])),
               (torch.randn(5, 3, dtype=torch.float64), torch.tensor([1, 1, 0, 0, 1]))]
    lr = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    thetas = unroll_student(model, start, batches, lr)
    assert len(thetas) == 3
    w, b = w0, b0
    for (x, y), theta in zip(batches, thetas[1:], strict=True):
        w, b = _manual_step(w, b, x, y, 0.3)
        assert torch.allclose(theta, torch.cat([w.flatten(), b]), atol=1e-12)
    # the graph reaches the step size: d(c . theta_2)/d lr against a central difference
    # (weighted: a plain sum of softmax-regression parameters never changes)
    coef = torch.arange(1.0, 9.0, dtype=torch.float64)
    (g,) = torch.autograd.grad((coef * thetas[-1]).sum(), lr)

    def final(step):
        w, b = w0, b0
        for x, y in batches:
            w, b = _manual_step(w, b, x, y, step)
        return float((coef * torch.cat([w.flatten(), b])).sum())

    fd = (final(0.3 + 1e-6) - final(0.3 - 1e-6)) / 2e-6
    assert float(g) == pytest.approx(fd, rel=1e-5)
    # and the synthetic inputs get gradients too
    x = batches[0][0].clone().requires_grad_(True)
    out = unroll_student(model, start, [(x, batches[0][1])], lr)[-1]
    assert torch.autograd.grad(out.sum(), x)[0].abs().sum() > 0


def test_flatten_unflatten_round_trip():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    flat = flatten_params(model)
    parts = unflatten_params(model, flat)
    for name, p in model.named_parameters():
        assert torch.equal(parts[name], p.detach())


def test_expert_trajectory_has_every_epoch_and_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 2, (40,), generator=g)
    traj = train_expert(lambda: nn.Linear(4, 2), x, y, 3, batch_size=16, generator=g)
    assert traj.shape == (4, 10)
    assert all(not torch.equal(traj[i], traj[i + 1]) for i in range(3))
    save_trajectory(tmp_path / "expert-000.safetensors", traj)
    (back,) = load_trajectories(tmp_path)
    assert torch.equal(back, traj)
