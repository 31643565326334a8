"""Checkpoints as a fuzzing property: a tiny run's checkpoint folder with one file damaged
(bytes mutated, random bytes, a `latest` pointer of garbage) or its state.json edited and
its checksum recomputed (a consistent file holding wrong values, as a bug would write it, or
one from before checksums), then resumed with `train(resume=True)`. The resume must finish
(falling back past the damage) or stop with one CheckpointError/ConfigError line."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from fuzz_props import PropertyFailure, damaged, json_values, outcome, reader
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

FILES = ("model.safetensors", "state.safetensors", "state.json")


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _run(out: Path, budget: str, resume: bool) -> Any:
    from hasten.core.trainer import TrainConfig, train

    torch.manual_seed(0)
    config = TrainConfig(budget=budget, lr=0.05, micro_batch=16, out_dir=str(out),
                         checkpoint_every=2, resume=resume, quiet=True, tensorboard=False,
                         memory_check=False, device="cpu", progress_every=0,
                         allow_budget_change=True)
    return train(torch.nn.Linear(4, 2), _data(), _loss, config)


@cache
def _template() -> Path:
    """A run folder with checkpoints at steps 2 and 4 (made once per process)."""
    out = Path(tempfile.mkdtemp(prefix="hasten-fuzz-run-")) / "run"
    _run(out, "4steps", resume=False)
    return out


def _newest(out: Path) -> Path:
    return sorted((out / "checkpoints").glob("step-*"))[-1]


def _digest(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


@st.composite
def edited_state(draw: Any, body: dict[str, Any]) -> bytes:
    """state.json with one value anywhere replaced; its checksum recomputed, or (as before
    checksums existed) dropped together with the file list."""
    body = json.loads(json.dumps(body))
    node, path = body, []
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        path.append(key)
        if not isinstance(node[key], (dict, list)):
            break
        node = node[key]
    value = draw(json_values)
    if path:
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    else:
        body["state"] = value
    if draw(st.booleans()):
        body.pop("files", None)
        body.pop("checksum", None)
    else:
        body["checksum"] = _digest(body)
    return json.dumps(body).encode()


@st.composite
def damage(draw: Any) -> tuple[str, bytes]:
    out = _template()
    target = draw(st.sampled_from([*FILES, "latest", "state.json (edited)"]))
    if target == "latest":
        return target, draw(damaged(b"step-000000004\n"))
    if target == "state.json (edited)":
        body = json.loads((_newest(out) / "state.json").read_text())
        return "state.json", draw(edited_state(body))
    return target, draw(damaged((_newest(out) / target).read_bytes(), 512))


@reader("checkpoint", damage())
def check_checkpoint(tmp: Path, example: tuple[str, bytes]) -> str:
    target, raw = example
    out = tmp / "run"
    shutil.copytree(_template(), out)
    place = out / "checkpoints" / "latest" if target == "latest" else _newest(out) / target
    place.write_bytes(raw)
    with contextlib.redirect_stderr(io.StringIO()):  # the resume's own lines
        kind, result = outcome(_run, out, "6steps", True)
    if kind == "ok" and (result.stopped != "budget" or result.steps != 6):
        raise PropertyFailure(f"resume ended {result.stopped} after {result.steps} steps")
    return kind
