"""IDM: the network queue, its SGD against torch.optim.SGD, the cross-entropy term, resume."""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from hasten.core.errors import CheckpointError, ConfigError
from hasten.data.vision import load_vision
from hasten.distill import distill
from hasten.distill.augment import DSA, dsa_strategy
from hasten.distill.base import Context, default_model_fn, embed
from hasten.distill.idm import IDM, INITIAL_NETS
from hasten.distill.matching import mean_embedding_distance
from hasten.distill.methods import class_tensors

SMALL = {"width": 8, "batch_real": 32, "progress": False}
QUEUE = {"pool": 4, "new_every": 3, "train_nets": 1, "train_steps": 2, "train_batch": 64}


@functools.cache
def digits():
    return load_vision("digits")


def _method(dsa: bool = False, factor: int = 1, **options) -> IDM:
    data = digits()
    g = torch.Generator().manual_seed(0)
    class_x = class_tensors(data)
    syn = torch.cat([xc[:2] for xc in class_x]).clone().requires_grad_(True)
    ctx = Context(class_x=class_x, syn=syn, labels=torch.arange(10).repeat_interleave(2),
                  ipc=2, num_classes=10, model_fn=default_model_fn((1, 8, 8), 10, 8),
                  generator=g, device=torch.device("cpu"),
                  dsa=DSA(dsa_strategy("digits")) if dsa else None, batch_real=32,
                  options={**IDM.defaults, **QUEUE, **options}, factor=factor)
    return IDM(ctx)


def test_queue_grows_every_new_every_iterations_and_replaces_the_oldest():
    m = _method(train_nets=0)
    assert m.created == INITIAL_NETS and m.active() == 3
    first = m.pool_params[0].clone()
    for _ in range(7):  # new networks join at t = 0, 3, 6
        m.step()
    assert m.created == INITIAL_NETS + 3 and m.active() == 4  # the queue holds `pool`
    # slot 3 took the 4th network, slots 0 and 1 the 5th and 6th (the oldest left first)
    assert not torch.equal(m.pool_params[0], first)
    assert len({tuple(p[:5].tolist()) for p in m.pool_params}) == 4


def test_network_training_equals_torch_sgd_with_momentum_and_weight_decay():
    m = _method(lr_net=0.05, momentum_net=0.9, weight_decay_net=0.01)
    net = default_model_fn((1, 8, 8), 10, 8)()
    vector_to_parameters(m.pool_params[1].clone(), net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    g = torch.Generator().set_state(m.ctx.generator.get_state())
    m.train_net(1, 3)
    correct = 0
    for _ in range(3):  # replay the same draws
        idx = torch.randperm(len(m.real_x), generator=g)[:64]
        x, y = m.real_x[idx], m.real_y[idx]
        opt.zero_grad()
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        opt.step()
        correct += int((logits.argmax(1) == y).sum())
    torch.testing.assert_close(m.pool_params[1], parameters_to_vector(net.parameters()),
                               rtol=1e-5, atol=1e-6)
    assert m.pool_acc[1].item() == pytest.approx(100.0 * correct / 192)
    assert m.pool_acc[0].item() == 0.0  # untouched networks keep no accuracy


@pytest.mark.parametrize("ce_weight,acc,weight", [
    (0.3, 40.0, 0.3 * 40.0),  # DM + ce_weight x accuracy (percent) x CE per class
    (0.0, 40.0, 0.0),  # no cross-entropy term: plain DM matching
    (0.3, 0.0, 0.0),  # an untrained network (no accuracy yet) adds none either
])
def test_loss_is_dm_plus_accuracy_weighted_cross_entropy_per_class(ce_weight, acc, weight):
    m = _method(ce_weight=ce_weight, train_nets=0, new_every=1000)
    m.t = 1  # no network joins in this step
    m.pool_acc[:] = acc
    g = torch.Generator().set_state(m.ctx.generator.get_state())
    syn_before = m.ctx.syn.detach().clone()
    loss, seen = m.step()
    # replay: pick the slot, draw each class's real batch, then add up the terms per class
    slot = torch.randperm(3, generator=g)[:1].item()
    net = default_model_fn((1, 8, 8), 10, 8)()
    vector_to_parameters(m.pool_params[slot], net.parameters())
    expected = 0.0
    for c in range(10):
        xc = m.ctx.class_x[c]
        real = xc[torch.randperm(len(xc), generator=g)[:32]]
        syn = syn_before[2 * c:2 * c + 2]
        with torch.no_grad():
            dm = mean_embedding_distance(embed(net, real), embed(net, syn))
            ce = F.cross_entropy(net(syn), torch.full((2,), c))
        expected += dm.item() + weight * ce.item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert seen == 10 * 32 + 20  # no training steps this time


def test_factor_two_keeps_storage_and_matches_decoded_images():
    syn = distill("idm", digits(), 1, "4steps", factor=2, **QUEUE, **SMALL)
    assert syn.images.shape == (10, 1, 8, 8) and syn.factor == 2
    assert syn.meta["method"] == "idm" and syn.meta["networks_created"] == INITIAL_NETS + 2


def test_resume_continues_exactly_with_the_queue(tmp_path):
    whole = distill("idm", digits(), 2, "7steps", **QUEUE, **SMALL)
    distill("idm", digits(), 2, "4steps", checkpoint_dir=tmp_path, **QUEUE, **SMALL)
    rest = distill("idm", digits(), 2, "7steps", checkpoint_dir=tmp_path, resume=True,
                   **QUEUE, **SMALL)
    assert rest.meta["iterations"] == 7
    assert rest.meta["networks_created"] == whole.meta["networks_created"]
    assert torch.equal(rest.images, whole.images)
    with pytest.raises(CheckpointError, match=r"layout was \{'pool': 4\}, now \{'pool': 5\}"):
        distill("idm", digits(), 2, "9steps", checkpoint_dir=tmp_path, resume=True,
                **{**QUEUE, "pool": 5}, **SMALL)


@pytest.mark.parametrize("opts,match", [
    ({"pool": 0}, "pool must be >= 1"),
    ({"new_every": 0}, "new_every must be >= 1"),
    ({"train_steps": -1}, "train_steps must be >= 0"),
    ({"ce_weight": -0.5}, "ce_weight must be >= 0"),
    ({"warmup": 3}, "has no option"),
])
def test_bad_options_are_refused(opts, match):
    with pytest.raises(ConfigError, match=match):
        distill("idm", digits(), 1, "1steps", **{**QUEUE, **opts}, **SMALL)


def test_cli_distills_with_idm_and_its_options(tmp_path, capsys):
    from hasten.cli import main

    out = tmp_path / "idm" / "set.safetensors"
    rc = main(["distill", "--data", "digits", "--method", "idm", "--ipc", "1", "--budget",
               "3steps", "--width", "8", "--batch-real", "16", "--out", str(out.parent),
               "--quiet", "--option", "pool=3", "--option", "train_steps=1", "--option",
               "train_batch=32"])
    assert rc == 0 and out.exists() and out.with_suffix(".png").exists()
    from hasten.distill import SyntheticSet
    syn = SyntheticSet.load(out)
    assert syn.meta["method"] == "idm" and syn.meta["options"]["pool"] == 3
    rc = main(["distill", "--data", "digits", "--method", "idm", "--budget", "1steps",
               "--out", str(tmp_path / "bad"), "--option", "pool=0"])
    assert rc == 2 and "pool must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
