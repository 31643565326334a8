"""One score per example, with its direction and its cost stated.

Every scorer in `hasten.select` returns a `Scores`. The direction is part of the value, never
implied: `higher_is` says whether a high score marks an example as "harder" (rarer, more
informative, more likely mislabelled) or "easier". Selectors read it, so "keep the hardest"
means the same thing for EL2N, forgetting counts, AUM or a text filter. `seconds` and `work`
record what scoring cost, so a benchmark can add it to the training time it saves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError, DataError

Direction = Literal["harder", "easier"]


@dataclass
class Scores:
    """`values[i]` scores example i of the dataset, in dataset order."""

    values: np.ndarray
    name: str
    higher_is: Direction
    seconds: float = 0.0  # wall-clock time spent scoring (training proxies included)
    work: dict[str, float] = field(default_factory=dict)  # examples forwarded/backpropagated...
    meta: dict[str, object] = field(default_factory=dict)  # scorer settings, for provenance

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if self.higher_is not in ("harder", "easier"):
            raise ConfigError(f"higher_is must be 'harder' or 'easier', got {self.higher_is!r}")
        if not np.all(np.isfinite(self.values)):
            bad = int((~np.isfinite(self.values)).sum())
            raise DataError(f"scores {self.name!r} contain {bad} non-finite values")

    def __len__(self) -> int:
        return len(self.values)

    def hardness(self) -> np.ndarray:
        """The values oriented so that higher always means harder."""
        return self.values if self.higher_is == "harder" else -self.values

    def check_length(self, n: int) -> None:
        """A DataError unless there is exactly one score per example of an n-example set."""
        if len(self) != n:
            raise DataError(f"scores {self.name!r} have {len(self)} values for {n} examples")

    def save(self, path: str | Path) -> Path:
        """Write `<path>.npy` (the values) and `<path>.json` (name, direction, cost), each
        atomically. Returns the .npy path."""
        base = Path(path)
        if base.suffix == ".npy":
            base = base.with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        info = {"name": self.name, "higher_is": self.higher_is, "seconds": self.seconds,
                "work": self.work, "meta": self.meta, "count": len(self)}
        atomic_write(base.with_suffix(".npy"), lambda f: np.save(f, self.values))
        atomic_write(base.with_suffix(".json"),
                      lambda f: f.write(json.dumps(info, indent=2, default=str).encode()))
        return base.with_suffix(".npy")

    @classmethod
    def load(cls, path: str | Path) -> Scores:
        """Read scores written by `save` (no pickle: `allow_pickle=False`)."""
        base = Path(path)
        if base.suffix in (".npy", ".json"):
            base = base.with_suffix("")
        npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
        for p in (npy, meta):
            if not p.is_file():
                raise DataError(f"scores file not found: {p}")
        try:
            values = np.load(npy, allow_pickle=False)
            info = json.loads(meta.read_text())
        except (ValueError, OSError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read scores {base}: {e}") from None
        return cls(values=values, name=info["name"], higher_is=info["higher_is"],
                   seconds=float(info.get("seconds", 0.0)), work=info.get("work", {}),
                   meta=info.get("meta", {}))
