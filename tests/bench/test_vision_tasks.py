"""The vision tasks' data is loaded once per process and data folder: a process that points
`HASTEN_DATA` elsewhere (a test, a notebook) reads the new folder, not the first one's copy."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from hasten.bench import vision


def _idx(path: Path, magic: int, dims: tuple[int, ...]) -> None:
    count = 1
    for d in dims:
        count *= d
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(count))


def _fashion(root: Path, n_train: int) -> Path:
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    _idx(folder / "train-images-idx3-ubyte.gz", 2051, (n_train, 28, 28))
    _idx(folder / "train-labels-idx1-ubyte.gz", 2049, (n_train,))
    _idx(folder / "t10k-images-idx3-ubyte.gz", 2051, (2, 28, 28))
    _idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, (2,))
    return root


def test_a_task_reads_the_data_folder_it_is_pointed_at(tmp_path, monkeypatch):
    monkeypatch.setenv("HASTEN_DATA", str(_fashion(tmp_path / "a", 4)))
    assert len(vision._data("fashion-mnist").train) == 4
    monkeypatch.setenv("HASTEN_DATA", str(_fashion(tmp_path / "b", 6)))
    assert len(vision._data("fashion-mnist").train) == 6
    monkeypatch.setenv("HASTEN_DATA", str(tmp_path / "a"))
    assert vision._data("fashion-mnist") is vision._data("fashion-mnist")  # loaded once
