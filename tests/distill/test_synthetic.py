"""SyntheticSet files and grids, coreset baselines, and the evaluator's checks."""

import functools

import pytest
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.data.vision import load_vision
from hasten.distill import SyntheticSet, evaluate, herding, k_center, random_subset


@functools.cache
def digits():
    return load_vision("digits")


def _set(ipc=2, classes=3):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(torch.randn(classes * ipc, 1, 8, 8, generator=g),
                        torch.arange(classes).repeat_interleave(ipc),
                        {"method": "dm", "dataset": "digits", "ipc": ipc,
                         "num_classes": classes, "losses": [1.5, 0.25]})


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    syn = _set()
    path = syn.save(tmp_path / "sub" / "syn.safetensors")
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, syn.images) and torch.equal(back.labels, syn.labels)
    assert back.meta == syn.meta and back.ipc == 2 and back.num_classes == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["syn.safetensors"]  # no temp


def test_load_errors_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        SyntheticSet.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="not a readable safetensors"):
        SyntheticSet.load(bad)
    with pytest.raises(DataError, match="labels of shape"):
        SyntheticSet(torch.zeros(3, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(DataError, match="non-finite"):
        SyntheticSet(torch.full((1, 1, 8, 8), float("nan")), torch.zeros(1, dtype=torch.long))


def test_grid_png(tmp_path):
    path = _set().save_grid_png(tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="grid needs images"):
        SyntheticSet(torch.zeros(2, 64), torch.tensor([0, 1])).save_grid_png(tmp_path / "x.png")


@pytest.mark.parametrize("select", [random_subset, herding, k_center])
def test_coresets_are_real_balanced_images(select):
    data = digits()
    syn = select(data, 3)
    assert torch.equal(syn.labels, torch.arange(10).repeat_interleave(3))
    x, y = data.train.tensors
    for img, label in zip(syn.images, syn.labels, strict=True):
        match = (x == img).flatten(1).all(1)
        assert match.any() and int(y[match][0]) == int(label)
    assert len({tuple(img.flatten().tolist()) for img in syn.images}) == 30
    with pytest.raises(ConfigError, match="larger than class"):
        select(data, 10_000)


def test_herding_first_pick_is_nearest_the_class_mean():
    data = digits()
    x, y = data.train.tensors
    xc = x[y == 4].flatten(1).double()
    want = int(((xc - xc.mean(0)) ** 2).sum(1).argmin())
    got = herding(data, 1).images[4]
    assert torch.equal(got, x[y == 4][want])


def test_evaluator_protocol_and_checks():
    data = digits()
    res = evaluate(random_subset(data, 5), data, models=3, epochs=20, width=8)
    assert len(res.accuracies) == 3 and len(res.train_seconds) == 3
    assert res.std == pytest.approx(float(torch.tensor(res.accuracies).std(unbiased=False)),
                                    abs=1e-6)
    assert 0 <= min(res.accuracies) and max(res.accuracies) <= 100
    again = evaluate(random_subset(data, 5), data, models=3, epochs=20, width=8)
    assert again.accuracies == res.accuracies  # seeded
    dsa = evaluate(random_subset(data, 2), data, models=1, epochs=4, width=8, dsa=True)
    assert dsa.dsa is True
    with pytest.raises(DataError, match="shape"):
        evaluate((torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])), data)
    with pytest.raises(ConfigError, match="models >= 1"):
        evaluate(random_subset(data, 1), data, models=0)


def test_method_name_says_dsa_for_dc_with_dsa():
    x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    assert SyntheticSet(x, y, {"method": "dc", "dsa": True}).method == "dsa"
    assert SyntheticSet(x, y, {"method": "dc", "dsa": False}).method == "dc"
    assert SyntheticSet(x, y, {"method": "mtt", "dsa": True}).method == "mtt"
    assert SyntheticSet(x, y, {}).method == "?"
