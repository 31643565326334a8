"""Tests for hasten.data.vision: the three loaders, the IDX parser and VisionData checks.

Nothing here touches the network: the download path is exercised with a fake `urlopen`
that serves local bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, DataError
from hasten.data import vision
from hasten.data.vision import (
    FASHION_FILES,
    FASHION_MEAN,
    FASHION_STD,
    IDX_IMAGES,
    IDX_LABELS,
    VisionData,
    data_root,
    holdout_split,
    load_digits,
    load_fashion_mnist,
    load_mnist1d,
    load_vision,
    read_idx,
)

# -----------------------------------------------------------------------------
# helpers


def idx_bytes(magic: int, values: np.ndarray) -> bytes:
    """Hand-build an (uncompressed) IDX file: magic, big-endian dims, raw uint8 values."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in values.shape)
    return header + values.astype(np.uint8).tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


def write_fashion(root: Path, n_train: int = 3, n_test: int = 2, n_train_labels: int | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny but well-formed Fashion-MNIST folder; return the raw arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(
            0, 10, (n_train if n_train_labels is None else n_train_labels,), dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        write_gz(root / name, idx_bytes(IDX_IMAGES if arr.ndim == 3 else IDX_LABELS, arr))
    return arrays


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything in these tests tries to open a URL."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# -----------------------------------------------------------------------------
# digits


def test_digits_shapes_and_counts():
    d = load_digits()
    x_tr, y_tr = d.train.tensors
    x_te, y_te = d.test.tensors
    assert len(d.train) + len(d.test) == 1797
    assert len(d.test) == 360  # ceil(0.2 * 1797)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and d.name == "digits"
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    # standardised with train statistics
    assert abs(x_tr.mean().item()) < 1e-4 and abs(x_tr.std().item() - 1) < 1e-3


def test_digits_stratified_and_deterministic():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    for split in ("train", "test"):
        for ta, tb in zip(getattr(a, split).tensors, getattr(b, split).tensors, strict=True):
            assert torch.equal(ta, tb)
    assert not torch.equal(a.test.tensors[1], c.test.tensors[1])
    # stratified: each class's test share is within one example of 20%
    y_all = torch.cat([a.train.tensors[1], a.test.tensors[1]])
    total, in_test = torch.bincount(y_all, minlength=10), torch.bincount(a.test.tensors[1],
                                                                          minlength=10)
    assert ((in_test - 0.2 * total).abs() <= 1).all()


def test_digits_bad_fraction():
    with pytest.raises(ConfigError, match="test_fraction"):
        load_digits(test_fraction=1.5)


# -----------------------------------------------------------------------------
# MNIST-1D


@pytest.fixture(scope="module")
def mnist1d() -> VisionData:
    return load_mnist1d()


def test_mnist1d_shapes(mnist1d: VisionData):
    x_tr, y_tr = mnist1d.train.tensors
    x_te, y_te = mnist1d.test.tensors
    assert x_tr.shape == (4000, 1, 40) and x_te.shape == (1000, 1, 40)
    assert y_tr.shape == (4000,) and y_te.shape == (1000,)
    assert mnist1d.input_shape == (1, 40) and mnist1d.num_classes == 10
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert set(y_tr.tolist()) == set(range(10))
    assert abs(x_tr.mean().item()) < 1e-4 and abs(x_tr.std().item() - 1) < 1e-3


def test_mnist1d_deterministic_and_keeps_caller_rng(mnist1d: VisionData):
    def seed_all():
        random.seed(123)
        np.random.seed(123)
        torch.manual_seed(123)

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_all()
    expected = draw()
    seed_all()
    again = load_mnist1d()  # make_dataset reseeds the global RNGs internally
    assert draw() == expected
    for ta, tb in zip(mnist1d.train.tensors + mnist1d.test.tensors,
                      again.train.tensors + again.test.tensors, strict=True):
        assert torch.equal(ta, tb)


def test_mnist1d_too_few_samples():
    with pytest.raises(ConfigError, match="num_samples"):
        load_mnist1d(num_samples=5)


# -----------------------------------------------------------------------------
# Fashion-MNIST: the real files in the shared data folder (must exist: no skip)


@pytest.fixture(scope="module")
def fashion() -> VisionData:
    return load_fashion_mnist()


def test_fashion_mnist_shared_copy(fashion: VisionData):
    x_tr, y_tr = fashion.train.tensors
    x_te, y_te = fashion.test.tensors
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert fashion.input_shape == (1, 28, 28) and fashion.num_classes == 10
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert torch.equal(torch.bincount(y_tr), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(y_te), torch.full((10,), 1000))
    # the fixed normalisation constants are the train split's own statistics
    assert abs(x_tr.mean().item()) < 1e-3 and abs(x_tr.std().item() - 1) < 1e-3
    lo, hi = -FASHION_MEAN / FASHION_STD, (1 - FASHION_MEAN) / FASHION_STD
    assert x_tr.min().item() == pytest.approx(lo) and x_tr.max().item() == pytest.approx(hi)


def test_fashion_mnist_published_md5s_match_shared_copy():
    # the shared files are byte-identical to Zalando's: this guards the constants used by download
    root = data_root() / "fashion-mnist"
    for name, md5 in FASHION_FILES.items():
        assert hashlib.md5((root / name).read_bytes()).hexdigest() == md5, name


# -----------------------------------------------------------------------------
# IDX parser and Fashion-MNIST loader on tiny hand-written files


def test_read_idx_exact_values(tmp_path: Path):
    images = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    raw = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03" + bytes(
        range(12))
    path = write_gz(tmp_path / "img.gz", raw)
    out = read_idx(path, IDX_IMAGES)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, images)
    labels = write_gz(tmp_path / "lbl.gz", b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x00\x09")
    np.testing.assert_array_equal(read_idx(labels, IDX_LABELS), [7, 0, 9])


def test_load_fashion_mnist_tiny_exact(tmp_path: Path):
    arrays = write_fashion(tmp_path)
    d = load_fashion_mnist(tmp_path)
    x_tr, y_tr = d.train.tensors
    assert x_tr.shape == (3, 1, 28, 28) and d.test.tensors[0].shape == (2, 1, 28, 28)
    raw = arrays["train-images-idx3-ubyte.gz"].astype(np.float64)
    expected = (raw / 255.0 - FASHION_MEAN) / FASHION_STD
    np.testing.assert_allclose(x_tr[:, 0].numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(y_tr.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(d.test.tensors[1].numpy(), arrays["t10k-labels-idx1-ubyte.gz"])


def test_bad_magic(tmp_path: Path):
    write_fashion(tmp_path)
    # a label file that claims to hold images
    write_gz(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(IDX_IMAGES, np.zeros((3, 1, 1))))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*magic"):
        load_fashion_mnist(tmp_path)


def test_truncated_gzip(tmp_path: Path):
    write_fashion(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz") as e:
        load_fashion_mnist(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("corrupt", [
    lambda b: b"this is not gzip at all",
    lambda b: b[:20] + bytes(x ^ 0xFF for x in b[20:40]) + b[40:],  # damaged deflate stream
    lambda b: b[:-8] + bytes(x ^ 0xFF for x in b[-8:]),  # bad CRC and length trailer
])
def test_corrupt_gzip(tmp_path: Path, corrupt):
    write_fashion(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(tmp_path)


def test_payload_size_mismatch(tmp_path: Path):
    path = write_gz(tmp_path / "lbl.gz", b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(DataError, match="lbl.gz.*5"):
        read_idx(path, IDX_LABELS)


def test_label_image_count_mismatch(tmp_path: Path):
    write_fashion(tmp_path, n_train=3, n_train_labels=2)
    with pytest.raises(DataError, match="3 images.*2 labels"):
        load_fashion_mnist(tmp_path)


def test_wrong_image_size(tmp_path: Path):
    write_fashion(tmp_path)
    write_gz(tmp_path / "t10k-images-idx3-ubyte.gz",
             idx_bytes(IDX_IMAGES, np.zeros((2, 8, 8))))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*28, 28"):
        load_fashion_mnist(tmp_path)


def test_missing_file(tmp_path: Path):
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: file not found; set "
                       "HASTEN_DATA to a folder holding fashion-mnist/") as e:
        load_fashion_mnist(tmp_path)
    assert str(tmp_path) in str(e.value) and "download=True" in str(e.value)
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope.gz", IDX_LABELS)


# -----------------------------------------------------------------------------
# download logic, against a fake server (no network)


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> list[str]:
    """Make urlopen serve `files` by basename; return the list of URLs requested."""
    requested: list[str] = []

    def fake_urlopen(url: str, timeout: float | None = None):
        requested.append(url)
        return io.BytesIO(files[url.rsplit("/", 1)[1]])
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def test_download_fetches_missing_files_and_checks_md5(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    src = tmp_path / "server"
    write_fashion(src)
    blobs = {name: (src / name).read_bytes() for name in FASHION_FILES}
    for name, blob in blobs.items():
        monkeypatch.setitem(vision.FASHION_FILES, name, hashlib.md5(blob).hexdigest())
    requested = serve(monkeypatch, blobs)
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "train-labels-idx1-ubyte.gz").write_bytes(blobs["train-labels-idx1-ubyte.gz"])
    d = load_fashion_mnist(dest, download=True)
    assert len(d.train) == 3 and len(d.test) == 2
    assert sorted(u.rsplit("/", 1)[1] for u in requested) == sorted(
        set(FASHION_FILES) - {"train-labels-idx1-ubyte.gz"})  # only the missing ones
    assert all(u.startswith(vision.FASHION_URL) for u in requested)
    assert sorted(p.name for p in dest.iterdir()) == sorted(FASHION_FILES)  # no temp files left


def test_download_md5_mismatch_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    src = tmp_path / "server"
    write_fashion(src)
    serve(monkeypatch, {name: (src / name).read_bytes() for name in FASHION_FILES})
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="md5"):
        load_fashion_mnist(dest, download=True)  # real md5s: the tiny files cannot match
    assert list(dest.iterdir()) == []


# -----------------------------------------------------------------------------
# VisionData validation, data_root, registry


def tds(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    return TensorDataset(x, y)


def test_vision_data_validation():
    good = tds(torch.zeros(4, 1, 3), torch.tensor([0, 1, 2, 1]))
    VisionData("ok", good, good, 3, (1, 3))
    cases = {
        "empty": tds(torch.zeros(0, 1, 3), torch.zeros(0, dtype=torch.int64)),
        "examples but y": tds(torch.zeros(4, 1, 3), torch.tensor([[0], [1], [2], [1]])),
        "labels span": tds(torch.zeros(4, 1, 3), torch.tensor([0, 1, 3, 1])),
        "expected \\(1, 3\\)": tds(torch.zeros(4, 1, 4), torch.tensor([0, 1, 2, 1])),
        "float32": tds(torch.zeros(4, 1, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 1])),
    }
    for pattern, bad in cases.items():
        with pytest.raises(DataError, match=pattern):
            VisionData("bad", good, bad, 3, (1, 3))
    with pytest.raises(DataError, match="train split: labels span"):
        VisionData("bad", tds(torch.zeros(1, 1, 3), torch.tensor([-1])), good, 3, (1, 3))


def test_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HASTEN_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("HASTEN_DATA")
    repo = Path(vision.__file__).resolve().parents[2]
    assert data_root() == repo.parent / "shared" / "data"


def test_load_vision_registry():
    d = load_vision("digits", seed=3)
    assert d.name == "digits"
    assert set(vision.LOADERS) == {"digits", "mnist1d", "fashion-mnist"}
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'.*digits, fashion-mnist"):
        load_vision("cifar")
    with pytest.raises(ConfigError, match="no option.*colour"):
        load_vision("digits", colour=True)


def test_holdout_split_partitions_train_and_is_seeded():
    data = load_digits()
    x, y = data.train.tensors
    val = holdout_split(data, 100, seed=3)
    assert val.name == "digits-val"
    assert len(val.train) == len(y) - 100 and len(val.test) == 100
    # every training example lands in exactly one of the two splits, the test split is unused
    rows = {tuple(r.tolist()) for r in x.flatten(1)}
    both = torch.cat([val.train.tensors[0], val.test.tensors[0]])
    got = [tuple(r.tolist()) for r in both.flatten(1)]
    assert len(got) == len(y) and set(got) == rows
    again = holdout_split(data, 100, seed=3)
    assert torch.equal(again.test.tensors[0], val.test.tensors[0])
    assert not torch.equal(holdout_split(data, 100, seed=4).test.tensors[0], val.test.tensors[0])


@pytest.mark.parametrize("size", [0, -1, 10_000])
def test_holdout_split_bad_size(size: int):
    with pytest.raises(ConfigError, match="holdout size must be in"):
        holdout_split(load_digits(), size)
