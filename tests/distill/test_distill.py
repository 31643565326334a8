"""distill(): shapes and labels, bad input, resume, and a real learning check (digits)."""

import functools

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hasten.core.errors import CheckpointError, ConfigError
from hasten.data.vision import VisionData, load_vision
from hasten.distill import distill, evaluate, random_subset

SMALL = {"width": 8, "batch_real": 32, "progress": False}


@functools.cache
def digits():
    return load_vision("digits")


def _flat(data):
    def ds(split):
        x, y = split.tensors
        return TensorDataset(x.flatten(1).clone(), y)
    return VisionData("digits-flat", ds(data.train), ds(data.test), data.num_classes, (64,))


def _check(syn, ipc, classes=10, shape=(1, 8, 8)):
    assert syn.images.shape == (classes * ipc, *shape)
    assert syn.images.dtype == torch.float32
    assert torch.equal(syn.labels, torch.arange(classes).repeat_interleave(ipc))
    assert torch.equal(torch.bincount(syn.labels), torch.full((classes,), ipc))
    assert torch.isfinite(syn.images).all()


@pytest.mark.parametrize("method", ["dm", "dc", "dsa"])
def test_result_shapes_labels_and_meta(method):
    syn = distill(method, digits(), 3, "2steps", **SMALL)
    _check(syn, 3)
    m = syn.meta
    assert m["iterations"] == 2 and m["ipc"] == 3 and m["dataset"] == "digits"
    assert m["method"] == ("dc" if method == "dsa" else method) and m["dsa"] is True


def test_mtt_runs_and_learns_its_step_size(tmp_path):
    syn = distill("mtt", digits(), 2, "3steps", num_experts=1, max_start_epoch=2,
                  expert_epochs=1, syn_steps=3, lr_lr=1e-3, init="noise",
                  expert_dir=tmp_path / "experts", **SMALL)
    _check(syn, 2)
    assert syn.meta["experts_trained"] == 1 and syn.meta["syn_lr"] != 0.01
    assert len(list((tmp_path / "experts").glob("expert-*.safetensors"))) == 1
    again = distill("mtt", digits(), 2, "1steps", num_experts=1, max_start_epoch=2,
                    expert_epochs=1, syn_steps=3, expert_dir=tmp_path / "experts", **SMALL)
    assert again.meta["experts_trained"] == 0  # reused from disk


def test_any_ipc_noise_init_and_other_modules():
    syn = distill("dm", digits(), 7, "1steps", init="noise", dsa=False, **SMALL)
    _check(syn, 7)
    flat = _flat(digits())
    syn = distill("dm", flat, 2, "2steps", dsa=False, **SMALL)  # DM on feature vectors
    _check(syn, 2, shape=(64,))
    syn = distill("dm", flat, 2, "2steps", dsa=False, progress=False,
                  model_fn=lambda: nn.Sequential(nn.Linear(64, 16), nn.Tanh()))
    _check(syn, 2, shape=(64,))


def test_real_init_is_the_random_subset():
    syn = distill("dm", digits(), 2, "1steps", lr_img=0.0, **SMALL)
    assert torch.equal(syn.images, random_subset(digits(), 2, seed=0).images)


def test_bad_input_gives_clear_errors():
    smallest = int(torch.bincount(digits().train.tensors[1]).min())
    with pytest.raises(ConfigError, match=f"ipc {smallest + 1} is larger than class .* only "
                                          f"{smallest} training examples"):
        distill("dm", digits(), smallest + 1, "1steps", **SMALL)
    with pytest.raises(ConfigError, match="unknown distillation method 'kip'; known: dm"):
        distill("kip", digits(), 1, "1steps", **SMALL)
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="integer >= 1"):
            distill("dm", digits(), bad, "1steps", **SMALL)
    with pytest.raises(ConfigError, match="has no option"):
        distill("dm", digits(), 1, "1steps", syn_steps=3, **SMALL)
    with pytest.raises(ConfigError, match="unknown init"):
        distill("dm", digits(), 1, "1steps", init="zeros", **SMALL)
    with pytest.raises(ConfigError, match="budgets are iterations"):
        distill("dm", digits(), 1, "1e9flop", **SMALL)
    with pytest.raises(ConfigError, match="pass dsa=False"):
        distill("dm", _flat(digits()), 1, "1steps", **SMALL)
    with pytest.raises(ConfigError, match="resume needs"):
        distill("dm", digits(), 1, "1steps", resume=True, **SMALL)
    with pytest.raises(ConfigError, match="cannot parse budget"):
        distill("dm", digits(), 1, "soon", **SMALL)


@pytest.mark.parametrize("method,opts", [
    ("dm", {}),
    ("mtt", {"num_experts": 1, "max_start_epoch": 2, "expert_epochs": 1, "syn_steps": 2,
             "batch_syn": 7}),
])
def test_resume_continues_exactly(tmp_path, method, opts):
    whole = distill(method, digits(), 2, "4steps", checkpoint_dir=tmp_path / "a",
                    checkpoint_every=1, **opts, **SMALL)
    first = distill(method, digits(), 2, "2steps", checkpoint_dir=tmp_path / "b", **opts,
                    **SMALL)
    assert not torch.equal(first.images, whole.images)
    rest = distill(method, digits(), 2, "4steps", checkpoint_dir=tmp_path / "b", resume=True,
                   **opts, **SMALL)
    assert rest.meta["iterations"] == 4
    assert torch.equal(rest.images, whole.images)
    if method == "mtt":
        assert rest.meta["syn_lr"] == whole.meta["syn_lr"]
    with pytest.raises(CheckpointError, match="ipc was 2, now 3"):
        distill(method, digits(), 3, "5steps", checkpoint_dir=tmp_path / "b", resume=True,
                **opts, **SMALL)


def test_resume_takes_the_new_options_and_records_the_change(tmp_path):
    # a step schedule by resume: the moments come back, lr_img is the resuming call's
    first = distill("dm", digits(), 2, "2steps", checkpoint_dir=tmp_path, **SMALL)
    assert "history" not in first.meta
    frozen = distill("dm", digits(), 2, "4steps", checkpoint_dir=tmp_path, resume=True,
                     lr_img=0.0, **SMALL)
    assert frozen.meta["iterations"] == 4 and frozen.meta["options"]["lr_img"] == 0.0
    assert torch.equal(frozen.images, first.images)  # lr 0 moves nothing, momentum or not
    assert frozen.meta["history"] == [
        {"iteration": 2, "was": {"lr_img": None}, "now": {"lr_img": 0.0}}]
    again = distill("dm", digits(), 2, "5steps", checkpoint_dir=tmp_path, resume=True,
                    lr_img=0.0, **SMALL)
    assert again.meta["history"] == frozen.meta["history"]  # unchanged options add nothing
    moved = distill("dm", digits(), 2, "6steps", checkpoint_dir=tmp_path, resume=True,
                    **SMALL)
    assert not torch.equal(moved.images, first.images)
    assert [h["iteration"] for h in moved.meta["history"]] == [2, 5]
    assert moved.meta["history"][1]["now"] == {"lr_img": None}


def test_dm_learns_a_set_that_beats_its_noise_initialisation():
    data = digits()
    kw = {"width": 16, "batch_real": 64, "progress": False, "init": "noise", "dsa": False}
    start = distill("dm", data, 3, "1steps", lr_img=0.0, **kw)
    syn = distill("dm", data, 3, "40steps", **kw)  # DM's lr_img 1
    ev = {"models": 2, "epochs": 200, "width": 16}
    before, after = evaluate(start, data, **ev), evaluate(syn, data, **ev)
    assert after.mean > before.mean + 40, (before, after)
    assert after.mean > 65, after


def test_progress_callback_gets_lines():
    lines = []
    distill("dm", digits(), 1, "5steps", width=8, batch_real=16, progress=lines.append)
    assert lines and lines[-1].lstrip().startswith("100.0%") and "iteration 5" in lines[-1]


def test_snapshots_are_the_set_at_each_iteration_multiple(tmp_path):
    from hasten.distill.synthetic import SyntheticSet

    whole = distill("dm", digits(), 2, "4steps", snapshot_every=2,
                    snapshot_dir=tmp_path / "snaps", **SMALL)
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [
        "it000002.safetensors", "it000004.safetensors"]
    half = distill("dm", digits(), 2, "2steps", **SMALL)
    at2 = SyntheticSet.load(tmp_path / "snaps" / "it000002.safetensors")
    at4 = SyntheticSet.load(tmp_path / "snaps" / "it000004.safetensors")
    assert torch.equal(at2.images, half.images) and at2.meta["iterations"] == 2
    assert torch.equal(at4.images, whole.images) and at4.meta["iterations"] == 4
    with pytest.raises(ConfigError, match="snapshot_dir"):
        distill("dm", digits(), 2, "2steps", snapshot_every=1, **SMALL)


def test_class_tensors_are_slices_that_real_set_joins_without_a_copy():
    from hasten.distill.base import real_set
    from hasten.distill.methods import class_tensors

    data = digits()
    x, y = data.train.tensors
    class_x = class_tensors(data)
    for c, xc in enumerate(class_x):  # each class in dataset order, as boolean indexing gives
        assert torch.equal(xc, x[y == c])
    rx, ry = real_set(class_x)
    assert rx.data_ptr() == class_x[0].data_ptr()  # a view, not a third copy of the images
    assert torch.equal(rx, torch.cat(class_x))
    assert torch.equal(ry, torch.cat([torch.full((len(xc),), c) for c, xc in enumerate(class_x)]))
    apart = [xc.clone() for xc in class_x]  # not one storage: joined by copying
    rx2, _ = real_set(apart)
    assert rx2.data_ptr() != apart[0].data_ptr() and torch.equal(rx2, rx)
    reordered = [class_x[1], class_x[0]]  # one storage, but not back to back
    assert torch.equal(real_set(reordered)[0], torch.cat(reordered))
