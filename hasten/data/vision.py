"""Small vision datasets, loaded offline into memory as float32/int64 tensors.

Three datasets, from tiny to modest:
- digits: scikit-learn's embedded 8x8 handwritten digits (1,797 images, ships with sklearn).
- mnist1d: MNIST-1D, 40-sample 1-D signals generated on the fly by the `mnist1d` package.
- fashion-mnist: Zalando's 28x28 clothing images, read from the four official IDX `.gz` files.

Every loader returns a `VisionData`, whose tensors are already normalised, so a model and a
trainer can use them without any further transforms. Nothing here touches the network unless
`load_fashion_mnist(download=True)` is asked for explicitly.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import os
import random
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hasten.core.errors import ConfigError, DataError
from hasten.core.paths import data_root  # noqa: F401  (re-exported: its old home)

# -----------------------------------------------------------------------------
# the container


@dataclass
class VisionData:
    """A classification dataset: train/test splits of (x float32, y int64) tensors.

    x has shape (N, *input_shape) and y has shape (N,) with labels in [0, num_classes).
    The constructor checks all of this, so a malformed dataset fails here, not mid-training.
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(d) for d in self.input_shape)
        if self.num_classes < 1:
            raise DataError(f"{self.name}: num_classes must be >= 1, got {self.num_classes}")
        for split in ("train", "test"):
            _check_split(self.name, split, getattr(self, split), self.num_classes,
                         self.input_shape)


def _check_split(name: str, split: str, ds: TensorDataset, num_classes: int,
                 input_shape: tuple[int, ...]) -> None:
    """Raise DataError unless `ds` holds a non-empty, well-shaped (x, y) pair."""
    where = f"{name} {split} split"
    if not isinstance(ds, TensorDataset) or len(ds.tensors) != 2:
        raise DataError(f"{where}: expected a TensorDataset of (x, y)")
    x, y = ds.tensors
    if len(x) == 0:
        raise DataError(f"{where} is empty")
    if y.dim() != 1 or len(y) != len(x):
        raise DataError(f"{where}: x has {len(x)} examples but y has shape {tuple(y.shape)}")
    if x.dtype != torch.float32 or y.dtype != torch.int64:
        raise DataError(f"{where}: expected x float32 and y int64, got {x.dtype} and {y.dtype}")
    if tuple(x.shape[1:]) != input_shape:
        raise DataError(f"{where}: examples have shape {tuple(x.shape[1:])}, "
                        f"expected {input_shape}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{where}: labels span [{lo}, {hi}], expected [0, {num_classes - 1}]")


def _make(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
          y_test: np.ndarray, num_classes: int) -> VisionData:
    """Wrap numpy arrays (x already normalised) into a validated VisionData."""
    def ds(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                             torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
    return VisionData(name, ds(x_train, y_train), ds(x_test, y_test), num_classes,
                      tuple(x_train.shape[1:]))


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both splits by the train split's scalar mean/std (no test statistics leak in)."""
    mean, std = float(x_train.mean()), float(x_train.std())
    std = std if std > 0 else 1.0
    return (x_train - mean) / std, (x_test - mean) / std


# -----------------------------------------------------------------------------
# scikit-learn digits (8x8)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> VisionData:
    """sklearn's 8x8 digits, stratified train/test split; x has shape (1, 8, 8)."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    raw = sk_load_digits()
    x = raw.images.astype(np.float32)[:, None] / 16.0  # pixel values are 0..16
    y = raw.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    x_tr, x_te = _standardise(x_tr, x_te)
    return _make("digits", x_tr, y_tr, x_te, y_te, num_classes=10)


# -----------------------------------------------------------------------------
# MNIST-1D (40-sample signals)


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> VisionData:
    """MNIST-1D generated offline (80/20 split of `num_samples`); x has shape (1, 40)."""
    if num_samples < 10:
        raise ConfigError(f"mnist1d: num_samples must be >= 10 (one per class), got {num_samples}")
    from mnist1d.data import get_dataset_args, make_dataset  # slow import: matplotlib

    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    # make_dataset reseeds the global RNGs; put the caller's state back afterwards
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
    x_tr, x_te = _standardise(d["x"][:, None], d["x_test"][:, None])
    return _make("mnist1d", x_tr, d["y"], x_te, d["y_test"], num_classes=10)


# -----------------------------------------------------------------------------
# Fashion-MNIST (28x28, IDX files)

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# md5 of the official .gz files, as published by Zalando
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # the usual per-pixel statistics of the train split
IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: unsigned bytes, 3 dims / 1 dim


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes into a uint8 array of the dims it declares.

    Layout: a big-endian int32 magic (0x0000, type 0x08 = ubyte, number of dims), one big-endian
    uint32 per dim, then the values. `magic` is the one expected (2051 images, 2049 labels).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation: EOF
        raise DataError(f"{path}: not a valid gzip file ({e})") from None
    if len(buf) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(buf)} bytes)")
    found = int.from_bytes(buf[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad IDX magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    offset = 4 + 4 * ndim
    if len(buf) < offset:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    expected = offset + int(np.prod(dims, dtype=np.int64))
    if len(buf) != expected:
        raise DataError(f"{path}: IDX dims {dims} need {expected} bytes, file has {len(buf)}")
    return np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(dims)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch `url` to `dest` via a temp file in the same folder, renamed only once md5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        got = _md5(Path(tmp))
        if got != md5:
            raise DataError(f"{url}: md5 {got} does not match the published {md5}")
        os.replace(tmp, dest)  # atomic: dest is either absent or complete
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"{url}: download failed ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_fashion_mnist(root: str | Path | None = None, download: bool = False) -> VisionData:
    """Fashion-MNIST from the four IDX `.gz` files in `root`; x has shape (1, 28, 28).

    `root` defaults to `data_root() / "fashion-mnist"`. With `download=True`, missing files are
    fetched from Zalando's server and checked against the published md5s. Files already on disk
    are not md5-checked: a re-compressed copy (Debian's package, say, which rewrites the gzip
    header) holds the same images under a different md5. Their integrity is still checked:
    gzip verifies its CRC32 and `read_idx` checks the magic and the byte count.
    """
    root = Path(root) if root is not None else data_root() / "fashion-mnist"
    for fname, md5 in FASHION_FILES.items():
        path = root / fname
        if path.is_file():
            continue
        if not download:
            raise DataError(f"{path}: file not found; set HASTEN_DATA to a folder holding "
                            "fashion-mnist/ with its four IDX .gz files (from Python, "
                            "load_fashion_mnist(download=True) fetches them)")
        _download(FASHION_URL + fname, path, md5)

    splits = []
    for prefix in ("train", "t10k"):
        img_path = root / f"{prefix}-images-idx3-ubyte.gz"
        lbl_path = root / f"{prefix}-labels-idx1-ubyte.gz"
        images, labels = read_idx(img_path, IDX_IMAGES), read_idx(lbl_path, IDX_LABELS)
        if images.shape[1:] != (28, 28):
            raise DataError(f"{img_path}: images are {images.shape[1:]}, expected (28, 28)")
        if len(images) != len(labels):
            raise DataError(f"{img_path} has {len(images)} images but {lbl_path.name} has "
                            f"{len(labels)} labels")
        x = images[:, None].astype(np.float32)
        x *= 1.0 / 255.0
        x -= FASHION_MEAN
        x *= 1.0 / FASHION_STD
        splits += [x, labels]
    return _make("fashion-mnist", *splits, num_classes=10)


def holdout_split(data: VisionData, size: int, seed: int = 0) -> VisionData:
    """`data` with `size` training examples (a seeded random draw) moved into a validation
    set that replaces the test split, so methods can be chosen without seeing the test set.
    The result is named "<name>-val"."""
    x, y = data.train.tensors
    if not 0 < size < len(y):
        raise ConfigError(f"holdout size must be in [1, {len(y) - 1}] for {data.name}, "
                          f"got {size}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    keep, held = order[size:], order[:size]
    return VisionData(f"{data.name}-val", TensorDataset(x[keep], y[keep]),
                      TensorDataset(x[held], y[held]), data.num_classes, data.input_shape)


def training_subset(data: VisionData, size: int, seed: int = 0) -> VisionData:
    """`data` with its training split cut to `size` examples (a seeded random draw), the
    same test split. The result is named "<name>-<size/1000>k"."""
    x, y = data.train.tensors
    if not 0 < size <= len(y):
        raise ConfigError(f"subset size must be in [1, {len(y)}] for {data.name}, got {size}")
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:size]
    return VisionData(f"{data.name}-{size // 1000}k", TensorDataset(x[keep], y[keep]),
                      data.test, data.num_classes, data.input_shape)


# -----------------------------------------------------------------------------
# registry

LOADERS: dict[str, Callable[..., VisionData]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "fashion-mnist": load_fashion_mnist,
}


def load_vision(name: str, **kw) -> VisionData:
    """Load a dataset by name ("digits", "mnist1d", "fashion-mnist"), passing `kw` to its loader."""
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    loader = LOADERS[name]
    known = inspect.signature(loader).parameters
    bad = sorted(set(kw) - set(known))
    if bad:
        raise ConfigError(f"dataset {name!r} has no option(s) {', '.join(bad)}; "
                          f"known: {', '.join(known)}")
    return loader(**kw)
