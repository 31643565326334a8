"""A nested state (dicts, lists, numbers, tensors) in one file pair beside another tool's
checkpoint: `NAME.safetensors` for the tensors, `NAME.json` for the rest and the tensors'
sha256. Both are written atomically, the JSON last, so a reader sees either the old pair or
the new one; a damaged or mismatched pair is one `CheckpointError` line. Nothing is unpickled.

The HF and Lightning callbacks keep their levers' state this way inside the framework's own
checkpoint folders. Where it is shown: docs/your-loop.md (no measured result).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hasten.core.atomic import atomic_write
from hasten.core.checkpoint import (
    check_safetensors_header,
    file_digest,
    join_tensors,
    split_tensors,
)
from hasten.core.errors import CheckpointError


def save_state(state: Any, folder: str | Path, name: str) -> Path:
    """Write `state` as `folder/NAME.safetensors` + `folder/NAME.json`; returns the JSON's
    path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    body = split_tensors(state, tensors)
    weights = folder / f"{name}.safetensors"
    atomic_write(weights, lambda fh: fh.write(_safetensors_bytes(tensors, folder, name)))
    text = json.dumps({"state": body, "tensors_sha256": file_digest(weights)}, indent=1)
    atomic_write(folder / f"{name}.json", lambda fh: fh.write(text.encode()))
    return folder / f"{name}.json"


def _safetensors_bytes(tensors: dict[str, Any], folder: Path, name: str) -> bytes:
    tmp = folder / f".{name}.tmp.safetensors"
    try:
        save_file(tensors, str(tmp))
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def load_state(folder: str | Path, name: str) -> Any:
    """The state `save_state` wrote in `folder` under `name` (None when there is none)."""
    folder = Path(folder)
    meta, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not meta.is_file():
        return None
    try:
        body = json.loads(meta.read_text(encoding="utf-8"))
        if not weights.is_file() or file_digest(weights) != body["tensors_sha256"]:
            raise CheckpointError(f"{weights} is missing or does not match {meta.name}")
        check_safetensors_header(weights)
        tensors = load_file(str(weights))
        return join_tensors(body["state"], tensors)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise CheckpointError(f"cannot read {meta}: {' '.join(str(err).split())}") from None
