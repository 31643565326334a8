"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically and
verified on load.

A checkpoint is a folder `step-<N>/` holding `model.safetensors` (the weights),
`state.safetensors` (optimizer moments, RNG states and any other tensor state) and
`state.json` (step, budget clock and work counters, sampler position, hook state, config).
`state.json` records the sha256 and size of both tensor files and a sha256 of its own
content, so a flipped byte or a truncated file anywhere is caught before anything is
loaded. It is written to a temporary folder, synced and renamed into place; the `latest`
file naming it is replaced atomically last. A run killed at any instant leaves either the
old or the new checkpoint, never half of one. The newest `keep` are kept.

`find_checkpoint` picks the newest checkpoint that verifies, and says in one line per
damaged one which it fell back from. Nothing is ever unpickled, and a safetensors header
longer than `MAX_HEADER_BYTES` is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from hasten.core.distributed import unwrap_model
from hasten.core.errors import CheckpointError

LATEST = "latest"
MODEL_FILE, TENSORS_FILE, BODY_FILE = "model.safetensors", "state.safetensors", "state.json"
MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header (JSON) longer than this is refused
DAMAGED_PREFIX = "damaged-"
_STEP = re.compile(r"^step-(\d+)$")


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


# --- writing -------------------------------------------------------------------------------


_SAVE_PAUSE = {"seconds": 0.0}


def pause_between_files(seconds: float) -> None:
    """Make every later save in this process pause `seconds` between the files it writes
    (0: no pause), so a kill can land inside a save: the chaos runs (`hasten.bench.chaos
    --save-pause`) and their tests. Never set by a command."""
    _SAVE_PAUSE["seconds"] = max(0.0, float(seconds))


def _pause() -> None:
    if _SAVE_PAUSE["seconds"] > 0:
        time.sleep(_SAVE_PAUSE["seconds"])


def file_digest(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _body_digest(body: dict[str, Any]) -> str:
    """The sha256 of `state.json`'s content without its own `checksum` field."""
    rest = {k: v for k, v in body.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_files(tmp: Path, step: int, model: torch.nn.Module, state: dict[str, Any]) -> None:
    save_model(model, str(tmp / MODEL_FILE))
    _pause()
    tensors: dict[str, torch.Tensor] = {}
    body: dict[str, Any] = {"step": step, "fingerprint": model_fingerprint(model),
                            "state": split_tensors(state, tensors)}
    save_file(tensors, str(tmp / TENSORS_FILE))
    _pause()
    body["files"] = {name: {"sha256": file_digest(tmp / name), "bytes": (tmp / name).stat().st_size}
                     for name in (MODEL_FILE, TENSORS_FILE)}
    body["checksum"] = _body_digest(body)
    (tmp / BODY_FILE).write_text(json.dumps(body, indent=1))
    for f in tmp.iterdir():
        _fsync(f)
    _pause()


def step_name(step: int) -> str:
    return f"step-{step:09d}"


def save_checkpoint(
    folder: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write checkpoint `step-<step>` under `folder` atomically and point `latest` at it.

    `state` may hold tensors anywhere (optimizer state, RNG, hook state): they go to
    `state.safetensors`, the rest to `state.json`. Keeps the newest `keep` checkpoints
    (0: all). A write error (a full disk) removes the partial folder, leaves the previous
    checkpoints as they were and raises a one-line CheckpointError.
    """
    folder = Path(folder)
    model = unwrap_model(model)
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=folder))
        _write_files(tmp, step, model, state)
        final = folder / step_name(step)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        tmp = None
        _fsync(folder)
        _pause()
        pointer = folder / f".{LATEST}.tmp"
        pointer.write_text(final.name + "\n")
        os.replace(pointer, folder / LATEST)
    except (OSError, SafetensorError) as err:
        previous = checkpoint_steps(folder)
        intact = f"step-{previous[0][0]} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"cannot write checkpoint step-{step} in {folder} "
                              f"({_reason(err)}); {intact}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if keep > 0:
        for _, old in checkpoint_steps(folder)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split())[:200]


def clean_partial(folder: str | Path) -> None:
    """Remove what a save killed mid-way left behind (temporary folders and pointer files).
    Call it only while holding the run folder's lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.glob(".tmp-ckpt-*"):
        shutil.rmtree(p, ignore_errors=True)
    (folder / f".{LATEST}.tmp").unlink(missing_ok=True)


# --- reading -------------------------------------------------------------------------------


def checkpoint_steps(folder: str | Path) -> list[tuple[int, Path]]:
    """The `step-<N>` folders under `folder` as (N, path), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _STEP.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def read_pointer(folder: str | Path) -> str | None:
    """The checkpoint name in `folder/latest`; None when there is no pointer; raises
    CheckpointError when its content is not a checkpoint name."""
    pointer = Path(folder) / LATEST
    try:
        raw = pointer.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CheckpointError(f"unreadable pointer: {_reason(err)}") from None
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CheckpointError("the pointer holds binary garbage") from None
    if not _STEP.match(name):
        raise CheckpointError(f"the pointer holds {name[:40]!r}, not a checkpoint name")
    return name


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint folder under `folder` (the one `latest` names, or a newer
    complete one a kill left unnamed), or None if `folder` holds none. Nothing is verified
    here: `load_checkpoint` or `find_checkpoint` do that."""
    steps = checkpoint_steps(folder)
    try:
        name = read_pointer(folder)
    except CheckpointError:
        name = None
    named = Path(folder) / name if name else None
    if named is not None and named.is_dir() and (not steps or named == steps[0][1]):
        return named
    return steps[0][1] if steps else None


def check_safetensors_header(path: str | Path) -> None:
    """Refuse a safetensors file whose 8-byte header length is absurd (longer than the file or
    than `MAX_HEADER_BYTES`) before any parser reads it."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{path.name} is truncated ({size} bytes)")
    length = int.from_bytes(head, "little")
    if length > MAX_HEADER_BYTES or length > size - 8:
        raise CheckpointError(f"{path.name} claims a {length}-byte header in a {size}-byte "
                              "file")


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """`state.json` of the checkpoint at `path`, after checking that every file is there and
    matches its recorded size and sha256. Raises CheckpointError with the reason (without
    the path) otherwise. Checkpoints written before checksums existed are checked for
    completeness only."""
    path = Path(path)
    for name in (BODY_FILE, MODEL_FILE, TENSORS_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"incomplete: {name} is missing")
    try:
        body = json.loads((path / BODY_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{BODY_FILE} is not valid JSON") from None
    if not isinstance(body, dict) or "state" not in body or "step" not in body:
        raise CheckpointError(f"{BODY_FILE} lacks the step or the state")
    if ("files" in body) != ("checksum" in body):
        raise CheckpointError(f"{BODY_FILE} has lost part of its checksums")
    if "checksum" in body and body["checksum"] != _body_digest(body):
        raise CheckpointError(f"{BODY_FILE} does not match its checksum")
    _check_layout(body)
    named = _STEP.match(path.name)
    if named and int(named.group(1)) != body["step"]:
        raise CheckpointError(f"{BODY_FILE} holds step {body['step']}, its folder is "
                              f"{path.name}")
    for name, want in body.get("files", {}).items():
        size = (path / name).stat().st_size
        if size != want["bytes"]:
            raise CheckpointError(f"{name} has {size} bytes, {want['bytes']} were written")
        if file_digest(path / name) != want["sha256"]:
            raise CheckpointError(f"{name} does not match its sha256")
    for name in (MODEL_FILE, TENSORS_FILE):
        check_safetensors_header(path / name)
    return body


def _check_layout(body: dict[str, Any]) -> None:
    """The fields every load reads have the types it expects (a file that matches its
    checksum can still hold wrong values, if whatever wrote it was wrong)."""
    step, state, files = body["step"], body["state"], body.get("files", {})
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{BODY_FILE} holds step {str(step)[:40]!r}, not a step count")
    if not isinstance(state, dict):
        raise CheckpointError(f"{BODY_FILE} holds a state that is not a table")
    if not isinstance(files, dict) or set(files) - {MODEL_FILE, TENSORS_FILE} or any(
            not isinstance(w, dict) or not isinstance(w.get("bytes"), int)
            or not isinstance(w.get("sha256"), str) for w in files.values()):
        raise CheckpointError(f"{BODY_FILE} holds a malformed list of files")


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Verify the checkpoint at `path`, load its weights into `model` and return the saved
    state (tensors restored).

    Raises CheckpointError for a missing, damaged or incomplete checkpoint (before touching
    `model`), or one from another model.
    """
    path = Path(path)
    try:
        body = verify_checkpoint(path)
        tensors = load_file(str(path / TENSORS_FILE))
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path} is {_damage(err)}") from None
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: {_reason(err)}") from None
    model = unwrap_model(model)
    if body.get("fingerprint") != model_fingerprint(model):
        raise CheckpointError(f"checkpoint {path} was saved from another model "
                              "(parameter names or shapes differ)")
    try:
        load_model(model, str(path / MODEL_FILE), strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} has unreadable weights: "
                              f"{_reason(err)}") from None
    body["state"] = join_tensors(body["state"], tensors)
    return body


def _damage(err: CheckpointError) -> str:
    text = str(err)
    return text if text.startswith("incomplete") else f"corrupt: {text}"


@dataclass
class Found:
    """What `find_checkpoint` chose: the checkpoint to load (None: the folder holds none),
    one warning line per damaged checkpoint passed over, and those checkpoints' folders."""

    path: Path | None
    step: int | None
    warnings: list[str] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)
    body: dict[str, Any] | None = None  # its verified state.json (tensors not loaded)


def find_checkpoint(folder: str | Path) -> Found:
    """The newest checkpoint under `folder` that verifies (`verify_checkpoint`).

    Each damaged newer one (corrupt, truncated, incomplete, or named by a `latest` pointer
    that is garbage or names a missing folder) adds the warning line
    `checkpoint step-N is damaged (<reason>); falling back to step-M`. When checkpoints exist
    but none verifies, raises CheckpointError listing them.
    """
    folder = Path(folder)
    steps = checkpoint_steps(folder)
    bad: list[tuple[str, str, Path | None]] = []  # (label, reason, folder)
    try:
        name = read_pointer(folder)
        if name is not None and not (folder / name).is_dir():
            newest = steps[0][0] if steps else -1
            if int(name.split("-")[1]) > newest:
                bad.append((f"step-{int(name.split('-')[1])}", "its folder is missing", None))
    except CheckpointError as err:
        bad.append((LATEST, str(err), None))
    for step, path in steps:
        try:
            body = verify_checkpoint(path)
        except (CheckpointError, OSError) as err:
            reason = str(err) if isinstance(err, CheckpointError) else _reason(err)
            bad.append((f"step-{step}", reason, path))
            continue
        found = Found(path, step, body=body)
        found.warnings = [f"checkpoint {label} is damaged ({reason}); falling back to "
                          f"step-{step}" for label, reason, _ in bad]
        found.damaged = [p for _, _, p in bad if p is not None]
        return found
    if any(p is not None for _, _, p in bad):
        listed = "; ".join(f"{label}: {reason}" for label, reason, _ in bad)
        raise CheckpointError(f"no usable checkpoint in {folder} ({listed})")
    # no checkpoint at all, but a damaged pointer: say so (the caller starts fresh)
    return Found(None, None, [f"checkpoint {label} is damaged ({reason})"
                              for label, reason, _ in bad])


def set_aside(path: str | Path) -> Path:
    """Rename a damaged checkpoint folder to `damaged-step-<N>` (kept for inspection, out of
    the way of resumes and of `keep`)."""
    path = Path(path)
    target = path.with_name(DAMAGED_PREFIX + path.name)
    if target.exists():
        shutil.rmtree(target)
    os.rename(path, target)
    return target
