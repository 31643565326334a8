"""Reading and writing the data `hasten prune` handles.

`load_prune_input(path_or_name)` recognises:

- a folder saved by HF `datasets` `save_to_disk` (it holds `state.json`, or
  `dataset_dict.json` for a DatasetDict, of which the `split` is used);
- a folder holding `x.npy` and `y.npy`, or a `.npy` file named `<prefix>x.npy` (or
  `<prefix>y.npy`) next to its partner;
- a `.npz` file with arrays `x` and `y` (other arrays of the same length are pruned along,
  the rest copied);
- a `.jsonl` / `.ndjson` file of JSON objects with a string field `text` (configurable);
- a folder of `.txt` files, or a text file (`.txt`, `.text`, `.md`, or no suffix);
- when no such path exists, a dataset name known to `hasten.data.vision.load_vision`
  ("digits", "fashion-mnist", "mnist1d"): its train split, as tensors (written back as an
  `.npz` with `x` and `y`).

Text files are UTF-8 (a BOM and CRLF line ends are accepted). A document is one line by
default (`text_unit="line"`, the convention of HF `datasets`' text loader and of
one-sentence-per-line corpora), or one paragraph (`text_unit="paragraph"`: blocks separated by
blank lines, right for hard-wrapped prose such as Project Gutenberg books). Blank lines are
never documents.

`write_pruned` writes the kept examples in the input's own format, the scores (`Scores.save`),
`kept.npy` and `summary.json` into a temporary sibling of `out_dir` and renames it into place,
so `out_dir` is either absent, the old one, or complete. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hasten.core.atomic import atomic_dir
from hasten.core.errors import ConfigError, DataError
from hasten.data.vision import LOADERS, load_vision
from hasten.select.per_example import Scores
from hasten.text.read import JSONL_SUFFIXES as _JSONL
from hasten.text.read import TEXT_SUFFIXES as _TEXT
from hasten.text.read import jsonl_records, read_text, split_documents

Kind = Literal["vision", "hf", "npz", "npy", "jsonl", "text"]
TEXT_SUFFIXES = {*_TEXT, ""}  # a file named without a suffix is text too
JSONL_SUFFIXES = set(_JSONL)


@dataclass
class PruneInput:
    """Data to prune: classification tensors (`data`) or text documents (`docs`).

    `kind` is the format it came from, `source` the path or dataset name, `n` the number of
    examples. An HF dataset without a text column or x/y columns has neither `data` nor `docs`
    (it can still be pruned with scores computed elsewhere).
    """

    kind: Kind
    source: str
    n: int
    data: TensorDataset | None = None
    docs: list[str] | None = None
    details: dict[str, Any] = field(default_factory=dict)  # format specifics, for describe()
    _state: dict[str, Any] = field(default_factory=dict, repr=False)  # what write_pruned needs

    def __len__(self) -> int:
        return self.n

    @property
    def is_text(self) -> bool:
        return self.docs is not None

    def describe(self) -> dict[str, Any]:
        """JSON-ready description, for summaries."""
        return {"source": self.source, "kind": self.kind, "examples": self.n, **self.details}


# -----------------------------------------------------------------------------
# text helpers


def _join_documents(docs: list[str], unit: str) -> str:
    if not docs:
        return ""
    return ("\n\n" if unit == "paragraph" else "\n").join(docs) + "\n"


# -----------------------------------------------------------------------------
# loading


def load_prune_input(path_or_name: str | Path, *, text_unit: Literal["line", "paragraph"] = "line",
                     text_field: str = "text", split: str = "train", x_key: str = "x",
                     y_key: str = "y") -> PruneInput:
    """Load data for `hasten prune` from a path or a vision dataset name (see module doc)."""
    name = str(path_or_name)
    p = Path(path_or_name).expanduser()
    if not p.exists():
        if name in LOADERS:
            return _load_vision(name)
        raise DataError(f"input not found: {p} (not a file, a folder, or a dataset name: "
                        f"{', '.join(sorted(LOADERS))})")
    if p.is_dir():
        if (p / "state.json").is_file() or (p / "dataset_dict.json").is_file():
            return _load_hf(p, split, text_field, x_key, y_key)
        if (p / "x.npy").is_file() and (p / "y.npy").is_file():
            return _load_npy(p / "x.npy", p / "y.npy", folder=True)
        files = sorted(f for f in p.rglob("*.txt") if f.is_file())
        if files:
            return _load_text(p, files, text_unit)
        raise DataError(f"{p}: folder holds no HF dataset (state.json), no x.npy/y.npy pair "
                        "and no .txt files")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p, x_key, y_key)
    if suffix == ".npy":
        xp, yp = _npy_partner(p)
        return _load_npy(xp, yp, folder=False)
    if suffix in JSONL_SUFFIXES:
        return _load_jsonl(p, text_field)
    if suffix in TEXT_SUFFIXES:
        return _load_text(p, [p], text_unit)
    raise ConfigError(f"{p}: unknown input format {suffix!r}; known: .npz, .npy, .jsonl, "
                      ".txt, an HF dataset folder, a folder of .txt files")


def _load_vision(name: str) -> PruneInput:
    vd = load_vision(name)
    x, y = vd.train.tensors
    return PruneInput("vision", name, len(x), data=vd.train,
                      details={"split": "train", "num_classes": vd.num_classes})


def _tensors(x: np.ndarray, y: np.ndarray, where: str) -> TensorDataset:
    """(x, y) numpy arrays as a TensorDataset: float -> float32, integer y -> int64."""
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{where}: x and y must have a leading example dimension")
    if len(x) != len(y):
        raise DataError(f"{where}: x has {len(x)} examples but y has {len(y)}")
    if len(x) == 0:
        raise DataError(f"{where}: no examples (x and y are empty)")
    out = []
    for arr, key in ((x, "x"), (y, "y")):
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{where}: {key} has dtype {arr.dtype}, expected numbers")
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32, copy=False)
        elif key == "y":
            arr = arr.astype(np.int64, copy=False)
        try:
            out.append(torch.from_numpy(np.ascontiguousarray(arr)))
        except TypeError as e:
            raise DataError(f"{where}: {key} has unsupported dtype {arr.dtype}: {e}") from None
    return TensorDataset(*out)


def _np_load(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: not a valid numpy file ({e})") from None


def _load_npz(p: Path, x_key: str, y_key: str) -> PruneInput:
    z = _np_load(p)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{p}: not an .npz archive")
    try:
        with z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise DataError(f"cannot read {p}: corrupt .npz ({e})") from None
        raise DataError(f"{p} holds Python objects, which hasten never loads (no pickle); "
                        "give a data.npz of number arrays x and y (what hasten prune "
                        "writes)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"cannot read {p}: corrupt .npz ({e})") from None
    for key in (x_key, y_key):
        if key not in arrays:
            raise DataError(f"{p}: no array {key!r} (has: {', '.join(sorted(arrays)) or 'none'})")
    data = _tensors(arrays[x_key], arrays[y_key], str(p))
    return PruneInput("npz", str(p), len(data), data=data, details={"keys": sorted(arrays)},
                      _state={"arrays": arrays})


def _npy_partner(p: Path) -> tuple[Path, Path]:
    stem = p.name[:-len(".npy")]
    if stem.endswith("x"):
        return p, p.with_name(stem[:-1] + "y.npy")
    if stem.endswith("y"):
        return p.with_name(stem[:-1] + "x.npy"), p
    raise ConfigError(f"{p}: a .npy input must be named <prefix>x.npy or <prefix>y.npy "
                      "with its partner beside it (or use an .npz with x and y)")


def _load_npy(xp: Path, yp: Path, folder: bool) -> PruneInput:
    for f in (xp, yp):
        if not f.is_file():
            raise DataError(f"file not found: {f} (partner of the .npy input)")
    x, y = _np_load(xp), _np_load(yp)
    data = _tensors(x, y, f"{xp.name}/{yp.name}")
    source = str(xp.parent) if folder else str(xp)
    return PruneInput("npy", source, len(data), data=data,
                      details={"x": xp.name, "y": yp.name},
                      _state={"x": x, "y": y, "names": (xp.name, yp.name), "folder": folder})


def _load_jsonl(p: Path, text_field: str) -> PruneInput:
    records = jsonl_records(p, text_field)
    if not records:
        raise DataError(f"{p}: no records (the file is empty)")
    return PruneInput("jsonl", str(p), len(records), docs=[doc for _, doc in records],
                      details={"text_field": text_field},
                      _state={"lines": [line for line, _ in records]})


def _load_text(root: Path, files: list[Path], unit: str) -> PruneInput:
    docs: list[str] = []
    counts = []
    for f in files:
        parts = split_documents(read_text(f), unit)  # type: ignore[arg-type]
        docs.extend(parts)
        counts.append(len(parts))
    if not docs:
        raise DataError(f"{root}: no documents (empty or blank text)")
    folder = root.is_dir()
    rel = [str(f.relative_to(root)) if folder else f.name for f in files]
    return PruneInput("text", str(root), len(docs), docs=docs,
                      details={"text_unit": unit, "files": len(files)},
                      _state={"rel": rel, "counts": counts, "unit": unit, "folder": folder})


def _load_hf(p: Path, split: str, text_field: str, x_key: str, y_key: str) -> PruneInput:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"cannot read HF dataset {p}: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ConfigError(f"{p}: no split {split!r} (has: {', '.join(ds)})")
        ds = ds[split]
    n = len(ds)
    if n == 0:
        raise DataError(f"{p}: the dataset has no rows")
    details: dict[str, Any] = {"split": split, "columns": list(ds.column_names)}
    docs = data = None
    if text_field in ds.column_names:
        docs = list(ds[text_field])
        bad = next((i for i, d in enumerate(docs) if not isinstance(d, str)), None)
        if bad is not None:
            raise DataError(f"{p}: row {bad}: column {text_field!r} is not a string")
        details["text_field"] = text_field
    elif x_key in ds.column_names and y_key in ds.column_names:
        npds = ds.with_format("numpy")
        try:
            x, y = np.asarray(npds[x_key]), np.asarray(npds[y_key])
        except (ValueError, TypeError) as e:
            raise DataError(f"{p}: columns {x_key!r}/{y_key!r} are not arrays: {e}") from None
        data = _tensors(x, y, str(p))
    return PruneInput("hf", str(p), n, data=data, docs=docs, details=details,
                      _state={"dataset": ds})


# -----------------------------------------------------------------------------
# writing


def _keep_indices(keep: Any, n: int) -> np.ndarray:
    """Sorted unique int64 indices from indices or a boolean mask; errors for bad ones."""
    k = np.asarray(keep)
    if k.dtype == bool:
        if k.shape != (n,):
            raise DataError(f"keep mask has shape {k.shape}, expected ({n},)")
        return np.flatnonzero(k).astype(np.int64)
    k = k.reshape(-1)
    if k.size and k.dtype.kind not in "iu":
        raise DataError(f"keep indices must be integers, got dtype {k.dtype}")
    k = k.astype(np.int64)
    if k.size == 0:
        raise DataError("keep indices are empty: nothing would be kept")
    if k.min() < 0 or k.max() >= n:
        raise DataError(f"keep indices span [{k.min()}, {k.max()}], expected [0, {n - 1}]")
    s = np.unique(k)
    if len(s) != len(k):
        raise DataError(f"keep indices contain {len(k) - len(s)} repeats")
    return s


def _write_data(inp: PruneInput, keep: np.ndarray, dest: Path) -> list[str]:
    """Write the kept examples into `dest` in the input's format; returns relative paths."""
    st = inp._state
    if inp.kind == "vision":
        x, y = inp.data.tensors  # type: ignore[union-attr]
        np.savez(dest / "data.npz", x=x[keep].numpy(), y=y[keep].numpy())
        return ["data.npz"]
    if inp.kind == "npz":
        name = Path(inp.source).name
        out = {k: (a[keep] if a.ndim >= 1 and len(a) == inp.n else a)
               for k, a in st["arrays"].items()}
        np.savez(dest / name, **out)
        return [name]
    if inp.kind == "npy":
        sub = dest / "data" if st["folder"] else dest
        sub.mkdir(exist_ok=True)
        files = []
        for arr, nm in zip((st["x"], st["y"]), st["names"], strict=True):
            np.save(sub / nm, arr[keep], allow_pickle=False)
            files.append(str((sub / nm).relative_to(dest)))
        return files
    if inp.kind == "hf":
        from datasets.utils import logging as ds_logging

        quiet = ds_logging.is_progress_bar_enabled()
        if quiet:
            ds_logging.disable_progress_bar()
        try:
            st["dataset"].select(keep).save_to_disk(str(dest / "data"))
        finally:
            if quiet:
                ds_logging.enable_progress_bar()
        return ["data"]
    if inp.kind == "jsonl":
        name = Path(inp.source).name
        lines = st["lines"]
        (dest / name).write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
        return [name]
    if inp.kind == "text":
        kept = np.zeros(inp.n, dtype=bool)
        kept[keep] = True
        base = dest / "data" if st["folder"] else dest
        files, start = [], 0
        for rel, count in zip(st["rel"], st["counts"], strict=True):
            docs = [d for d, k in zip(inp.docs[start:start + count],  # type: ignore[index]
                                      kept[start:start + count], strict=True) if k]
            start += count
            f = base / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(_join_documents(docs, st["unit"]), encoding="utf-8")
            files.append(str(f.relative_to(dest)))
        return files
    raise ConfigError(f"cannot write inputs of kind {inp.kind!r}")


def _check_out_dir(out: Path, inp: PruneInput, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if inp.kind != "vision":
        src, dst = Path(inp.source).resolve(), out.resolve()
        if dst == src or dst in src.parents:
            raise ConfigError(f"output folder {out} would replace the input {inp.source}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output folder {out} exists and is not empty; "
                          "pass overwrite=True (--overwrite) to replace it")


def write_pruned(inp: PruneInput, keep_indices: Any, out_dir: str | Path,
                 scores: Scores | None = None, *, overwrite: bool = False,
                 extra: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the kept examples of `inp` to `out_dir` atomically; returns the summary.

    `keep_indices` are example indices (or a boolean keep mask). `out_dir` receives the pruned
    data in the input's format, `scores.npy`/`scores.json` (if `scores`), `kept.npy` (sorted
    kept indices) and `summary.json`. Everything is written to a temporary sibling folder that
    is renamed into place at the end; an existing non-empty `out_dir` is refused unless
    `overwrite`, and on any error it is left as it was. `extra` adds keys to the summary;
    `settings` (the resolved settings of the run) go to `config.json` beside it.
    """
    keep = _keep_indices(keep_indices, inp.n)
    if scores is not None:
        scores.check_length(inp.n)
    out = Path(out_dir).expanduser()
    _check_out_dir(out, inp, overwrite)
    with atomic_dir(out) as tmp:
        files = _write_data(inp, keep, tmp)
        if scores is not None:
            scores.save(tmp / "scores")
            files += ["scores.npy", "scores.json"]
        np.save(tmp / "kept.npy", keep, allow_pickle=False)
        if settings is not None:
            (tmp / "config.json").write_text(json.dumps(settings, indent=1, default=str) + "\n",
                                             encoding="utf-8")
            files.append("config.json")
        summary: dict[str, Any] = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": inp.describe(),
            "before": inp.n, "after": int(len(keep)), "removed": inp.n - int(len(keep)),
            "keep_fraction": len(keep) / inp.n,
            "scorer": scores.name if scores is not None else None,
            "direction": scores.higher_is if scores is not None else None,
            "scoring_seconds": scores.seconds if scores is not None else 0.0,
            "scoring_work": scores.work if scores is not None else {},
            "output": str(out),
            "files": files + ["kept.npy", "summary.json"],
        }
        for k, v in (extra or {}).items():
            if k in summary:
                raise ConfigError(f"extra summary key {k!r} clashes with a standard key")
            summary[k] = v
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                          encoding="utf-8")
    return summary
