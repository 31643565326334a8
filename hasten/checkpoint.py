"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a folder `step-<N>/` holding `model.safetensors` (the weights),
`state.safetensors` (optimizer moments, RNG states and any other tensor state) and
`state.json` (step, budget clock and work counters, sampler position, hook state, config).
It is written to a temporary folder and renamed into place; the `latest` file naming it is
replaced atomically last. A run killed at any instant leaves either the old or the new
checkpoint, never half of one. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from hasten.distributed import unwrap_model
from hasten.errors import CheckpointError

LATEST = "latest"


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of parameter names and shapes: two models share it iff their state dicts
    have the same layout, so loading another model's checkpoint fails with a clear message."""
    layout = sorted((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return hashlib.sha256(repr(layout).encode()).hexdigest()[:16]


def split_tensors(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor (and numpy array) in a nested structure by a reference into
    `tensors`, so the rest serialises as JSON. Tuples become lists; dict keys become strings."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        return {str(k): split_tensors(v, tensors, prefix) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [split_tensors(v, tensors, prefix) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `split_tensors` (lists stay lists)."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__ndarray__"}:
            return tensors[obj["__ndarray__"]].numpy()
        return {k: join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states."""
    version, internal, gauss = random.getstate()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": list(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    sd = optimizer.state_dict()
    return {"state": {str(k): v for k, v in sd["state"].items()},
            "param_groups": sd["param_groups"]}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], *,
                         keep_settings: bool = False) -> None:
    """Load `optimizer_state` output. torch restores the saved groups' settings (lr,
    momentum, ...) with the moments; `keep_settings=True` keeps the optimizer's own instead,
    so a resume can change them."""
    own = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    sd = {"state": {int(k): v for k, v in state["state"].items()},
          "param_groups": state["param_groups"]}
    optimizer.load_state_dict(sd)
    if keep_settings:
        for group, settings in zip(optimizer.param_groups, own, strict=True):
            group.update(settings)


def save_checkpoint(
    folder: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write checkpoint `step-<step>` under `folder` atomically and point `latest` at it.

    `state` may hold tensors anywhere (optimizer state, RNG, hook state): they go to
    `state.safetensors`, the rest to `state.json`. Keeps the newest `keep` checkpoints.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = unwrap_model(model)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=folder))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        body = {"step": step, "fingerprint": model_fingerprint(model),
                "state": split_tensors(state, tensors)}
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(body, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = folder / f"step-{step:09d}"
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = folder / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, folder / LATEST)
    for old in sorted(folder.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint folder `latest` points at, or None if `folder` holds none."""
    pointer = Path(folder) / LATEST
    if not pointer.exists():
        return None
    path = Path(folder) / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load weights into `model` and return the saved state (tensors restored).

    Raises CheckpointError for a missing or corrupt checkpoint, or one from another model.
    """
    path = Path(path)
    try:
        body = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
        weights_file = path / "model.safetensors"
        if not weights_file.exists():
            raise FileNotFoundError(2, "missing", str(weights_file))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint {path} is incomplete: {Path(err.filename).name} "
                              "is missing") from None
    except (json.JSONDecodeError, SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: {err}") from None
    model = unwrap_model(model)
    if body.get("fingerprint") != model_fingerprint(model):
        raise CheckpointError(f"checkpoint {path} was saved from another model "
                              "(parameter names or shapes differ)")
    try:
        load_model(model, str(weights_file), strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} has unreadable weights: {err}") from None
    body["state"] = join_tensors(body["state"], tensors)
    return body
