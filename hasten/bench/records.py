"""Results as records: one schema for new results files, one reader for every file ever kept.

A record is the harness's results dict plus a header saying when, where, from which code and
how it was made:

    {"schema_version": 1, "suite", "created", "machine", "code", "command", "pinning",
     "status", "notes", "quick", "seeds", "first_seed", "margin", "suite_methods",
     "options", "planned_runs", "runs": [run, ...]}

`command` is the command as a user would retype it, core pinning included (`taskset -c 0
env OMP_NUM_THREADS=1 hasten bench ...`); `pinning` holds the same facts as fields.
`status` is "partial" while a suite runs (the file is rewritten atomically after every run),
then "complete", or "stopped" / "failed" when a signal or an error ended it early (the
finished runs are kept; the cut one never is). A complete record is written once and never
edited: `notes` (how settings were chosen, what a number means) go in before it is written.

`load_record(path)` reads a record of this schema and nothing else; extra keys a suite
adds are kept as they are. Files in the layouts from before the schema were migrated once
(each a new record naming the file it `supersedes`); the originals sit in
benchmarks/results/superseded/, which nothing reads or renders. A correction to a
committed record is likewise a new file with `supersedes`: records are never edited.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from hasten import __version__
from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError, DataError

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"  # the one name every command gives its record
NOT_RECORDED = "not recorded"


# --- the header ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU model, cores and torch build (and GPU name when CUDA is used)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.system()}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def code_version(root: str | os.PathLike[str] | None = None) -> str:
    """The git commit the code runs from, with "+ uncommitted changes" when tracked files
    differ from it; "hasten VERSION" outside a git checkout (e.g. a pip install)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # e.g. site-packages inside someone else's repository
        return f"hasten {__version__}"
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--"], capture_output=True,
                               timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return f"hasten {__version__}"
    return head + (" + uncommitted changes" if dirty else "")


def cpu_list(cpus: Sequence[int]) -> str:
    """`[0, 1, 2, 5]` -> "0-2,5" (taskset's notation)."""
    parts, run = [], []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [c]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def pinning() -> dict[str, Any]:
    """The cores this process may run on and the thread settings that shape its speed."""
    total = os.cpu_count() or 1
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = list(range(total))
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return {"cpus": cpus, "all_cpus": len(cpus) >= total, "cpu_count": total, "env": env,
            "torch_threads": torch.get_num_threads()}


def command_line(argv: Sequence[str] | None = None, pins: Mapping[str, Any] | None = None,
                 program: str = "hasten") -> str:
    """The command as a user would retype it: `hasten ARGS` (or another `program`, a script's
    `python scripts/NAME.py`), preceded by `taskset -c CPUS` when the process is pinned to
    some cores and `env VAR=...` for thread settings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pins = pinning() if pins is None else pins
    prefix = []
    if not pins.get("all_cpus", True):
        prefix.append(f"taskset -c {cpu_list(pins['cpus'])}")
    if pins.get("env"):
        prefix.append("env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in pins["env"].items()))
    return " ".join([*prefix, program, *map(shlex.quote, argv)])


def provenance(command: str | None = None, created: datetime | None = None,
               program: str = "hasten") -> dict[str, Any]:
    """The header of every record: schema version, when, where, from which code and how
    (`program`: what the command line starts with, a script's `python scripts/NAME.py`)."""
    pins = pinning()
    return {"schema_version": SCHEMA_VERSION,
            "created": (created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
            "machine": machine_description(), "code": code_version(),
            "command": command or command_line(pins=pins, program=program), "pinning": pins}


# --- writing -------------------------------------------------------------------------------


def json_safe(obj: Any) -> Any:
    """A copy of `obj` that json can write strictly: NaN/inf become None, tuples lists."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy arrays, tensors
        return json_safe(obj.tolist())
    if hasattr(obj, "__dataclass_fields__"):
        return json_safe(dataclasses.asdict(obj))
    return obj


def write_record(record: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write `record` as strict JSON to `path`, atomically."""
    text = json.dumps(json_safe(record), indent=1, allow_nan=False) + "\n"
    atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))
    return Path(path)


# --- reading -------------------------------------------------------------------------------

HEADER = ("suite", "created", "machine", "code", "command", "status")


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results file in the record schema, as written (`runs` of task/method/seed/final/...).

    `record["source"]` names the file. DataError names the file when it is missing, not
    JSON, not a record of this schema (files in older layouts were migrated once and kept in
    benchmarks/results/superseded/, which nothing reads), its header lacks a field, or a run
    lacks its task or method."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a folder, not a results file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not a results JSON file ({e})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        got = data.get("schema_version") if isinstance(data, dict) else None
        raise DataError(f"{p}: not a hasten record (schema_version {got!r}, expected "
                        f"{SCHEMA_VERSION}); older layouts were migrated once into "
                        "benchmarks/results/")
    runs = data.get("runs")
    if not isinstance(runs, list) or not all(
            isinstance(r, dict) and "task" in r and "method" in r for r in runs):
        raise DataError(f"{p}: 'runs' must be a list of runs, each with a task and a method")
    missing = [k for k in HEADER if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise DataError(f"{p}: the record's header lacks {', '.join(missing)}")
    return {**data, "source": {"path": str(p), "layout": "record"}}


def resumed_record(fresh: dict[str, Any], path: Path) -> dict[str, Any]:
    """The record at `path` to carry on with: same suite and settings, not yet complete."""
    if not path.is_file():
        return fresh
    old = load_record(path)
    for key in ("suite", "quick", "seeds", "first_seed", "options"):
        if old.get(key) != fresh.get(key):
            raise ConfigError(f"--resume: {path} was made with {key} {old.get(key)!r}, "
                              f"not {fresh.get(key)!r}")
    if old.get("status") == "complete":
        raise ConfigError(f"--resume: {path} is complete already; nothing to run")
    resumed = {**fresh, "runs": list(old["runs"]), "resumed_from": old.get("created")}
    resumed["command"] = f"{old.get('command')} ; {fresh['command']}"
    return resumed
