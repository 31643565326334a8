"""A choices file: the lever list a tuning chose, for any loop to train with.

    {"levers": ["bf16", "infobatch:prune=0.3"], "budget": "20m", "tune_seconds": 118.2,
     "train_budget": "1081.8s", "task": "...", "created": "..."}

`hasten tune` writes it (`hasten.tune`); `hasten train --choices FILE`, `hasten.levers.train`,
`LeverLoop` and the HF and Lightning callbacks read its levers through `load_choices`. The
budget left for training after the tuning is `train_budget` (the whole budget less the tune's
own wall time). Where it is shown: docs/tune.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hasten.core.atomic import atomic_write, read_json
from hasten.core.errors import DataError
from hasten.levers.base import parse_levers


def save_choices(choices: dict[str, Any], path: str | Path) -> Path:
    """Write a choices file atomically (its levers are checked first)."""
    parse_levers(list(choices.get("levers", [])))
    text = json.dumps(choices, indent=1) + "\n"
    atomic_write(Path(path), lambda fh: fh.write(text.encode()))
    return Path(path)


def read_choices(path: str | Path) -> dict[str, Any]:
    """The whole choices file; one line when it is missing or not one."""
    p = Path(path)
    if p.is_dir():
        p = p / "choices.json"
    body = read_json(p, "choices file")
    if not isinstance(body, dict) or not isinstance(body.get("levers"), list) or not all(
            isinstance(x, str) for x in body["levers"]):
        raise DataError(f"{p}: not a choices file (no 'levers' list of spec strings)")
    parse_levers(body["levers"])  # every spec still names a known lever with valid settings
    return body


def load_choices(path: str | Path) -> list[str]:
    """The lever list of a choices file (spec strings), checked."""
    return list(read_choices(path)["levers"])
