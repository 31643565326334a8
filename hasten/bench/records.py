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

`load_record(path)` reads any results file in the harness layout, whatever its age:
files written before the schema, and the older hand-made layouts in benchmarks/results/
(rows of an evaluation, pretraining rows scored on GLUE, named runs, and bundles holding
several of these), each through an adapter. Unknown extra keys are kept as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import platform
import re
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
from hasten.core.errors import DataError

SCHEMA_VERSION = 1
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


def command_line(argv: Sequence[str] | None = None, pins: Mapping[str, Any] | None = None
                 ) -> str:
    """The command as a user would retype it: `hasten ARGS`, preceded by `taskset -c CPUS`
    when the process is pinned to some cores and `env VAR=...` for thread settings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pins = pinning() if pins is None else pins
    prefix = []
    if not pins.get("all_cpus", True):
        prefix.append(f"taskset -c {cpu_list(pins['cpus'])}")
    if pins.get("env"):
        prefix.append("env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in pins["env"].items()))
    return " ".join([*prefix, "hasten", *map(shlex.quote, argv)])


def provenance(command: str | None = None, created: datetime | None = None) -> dict[str, Any]:
    """The header of every record: schema version, when, where, from which code and how."""
    pins = pinning()
    return {"schema_version": SCHEMA_VERSION,
            "created": (created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
            "machine": machine_description(), "code": code_version(),
            "command": command or command_line(pins=pins), "pinning": pins}


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


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Any results file, in the harness layout (`runs` of task/method/seed/final/...).

    `record["source"]` names the file and the adapter that read it: "record" (this schema),
    "harness" (a results.json from before the schema), "rows" (a table of rows, e.g. an
    evaluation or pretraining runs scored on GLUE), "bundle" (a file that gathers several
    results and tables; each becomes its own group of tasks). DataError names the file when
    it is missing, not JSON, or holds nothing to read."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a folder, not a results file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not a results JSON file ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{p}: not a hasten results file (no 'runs' list, nor rows to read)")
    if "schema_version" in data and _is_harness(data):
        record, layout = dict(data), "record"
    elif _is_harness(data):
        record, layout = dict(data), "harness"
    else:
        groups = _groups(data, ())
        if not groups or not any(runs for _, runs, _ in groups):
            raise DataError(f"{p}: not a hasten results file (no 'runs' list, nor rows to "
                            "read)")
        record, layout = _from_groups(data, groups, p)
    header = _header(data, p)
    for key, value in header.items():
        if not isinstance(record.get(key), str) or not record.get(key):
            if key in record and record[key] and key == "machine":
                record["machine_info"] = record[key]  # a structured description, kept
            record[key] = value
    record["source"] = {"path": str(p), "layout": layout}
    return record


def _is_harness(data: Mapping[str, Any]) -> bool:
    runs = data.get("runs")
    return isinstance(runs, list) and all(
        isinstance(r, dict) and "task" in r and "method" in r for r in runs)


def _header(data: Mapping[str, Any], p: Path) -> dict[str, Any]:
    """suite, created, machine, code and command, from whatever the file recorded."""
    created = data.get("created") or " ".join(
        str(data[k]) for k in ("date", "started_utc") if data.get(k)) or _first(data, "created")
    machine = data.get("machine") or _first(data, "machine")
    if isinstance(machine, Mapping):
        machine = ", ".join(f"{k} {v}" for k, v in machine.items())
    command = data.get("command") or _first(data, "command")
    if not command and (data.get("script") or data.get("scripts")):
        names = list(data["scripts"]) if isinstance(data.get("scripts"), Mapping) else []
        command = "the scripts kept in the file" + (f" ({', '.join(names)})" if names else "")
    return {"suite": data.get("suite") or re.sub(r"-\d{8}$", "", p.stem),
            "created": str(created or NOT_RECORDED), "machine": str(machine or NOT_RECORDED),
            "code": str(data.get("code") or data.get("commit") or _first(data, "code")
                        or NOT_RECORDED),
            "command": str(command or NOT_RECORDED)}


def _first(data: Any, key: str) -> Any:
    """The first value of `key` in a nested record (breadth first), or None."""
    queue = [data]
    while queue:
        item = queue.pop(0)
        if isinstance(item, Mapping):
            if isinstance(item.get(key), (str, Mapping)) and item.get(key):
                return item[key]
            queue += [v for v in item.values() if isinstance(v, (Mapping, list))]
        elif isinstance(item, list):
            queue += [v for v in item if isinstance(v, (Mapping, list))]
    return None


Group = tuple[tuple[str, ...], list[dict[str, Any]], str]  # (path, runs, kind)


def _groups(data: Any, path: tuple[str, ...]) -> list[Group]:
    """Every set of runs a file holds, depth first: harness results, tables of rows (a
    `rows` list, or a `runs` list without tasks) and named runs (a `runs` table)."""
    if not isinstance(data, Mapping):
        return []
    if _is_harness(data):
        return [(path, [dict(r) for r in data["runs"]], "harness")]
    found: list[Group] = []
    for key in ("rows", "runs"):
        table = data.get(key)
        if isinstance(table, list) and table and all(isinstance(r, dict) for r in table):
            found.append((path, _rows_to_runs(table, data), "rows"))
        elif isinstance(table, Mapping) and table and all(
                isinstance(r, Mapping) for r in table.values()):
            named = [{"name": k, **_flat(v)} for k, v in table.items()]
            found.append((path, _rows_to_runs(named, data), "rows"))
    for key, value in data.items():
        if key in ("rows", "runs"):
            continue
        if isinstance(value, Mapping):
            found += _groups(value, (*path, str(key)))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                found += _groups(item, (*path, f"{key}[{i}]"))
    return found


def _from_groups(data: Mapping[str, Any], groups: list[Group], p: Path
                 ) -> tuple[dict[str, Any], str]:
    """One harness-layout record from the groups a file holds (tasks named after where in
    the file each group sits when there is more than one)."""
    runs: list[dict[str, Any]] = []
    several = len(groups) > 1
    for path, group_runs, _ in groups:
        where = "/".join(path)
        for run in group_runs:
            if run.get("task") is None:
                run["task"] = where or str(data.get("suite") or re.sub(r"-\d{8}$", "", p.stem))
            elif several and where:
                run["task"] = f"{run['task']} [{where}]"
            runs.append(run)
    top_level = len(groups) == 1 and groups[0][0] == ()
    extra = {k: v for k, v in data.items() if k not in ("runs", "rows")}
    return {**extra, "runs": runs}, "rows" if top_level else "bundle"


# the value a row is judged by, in order of preference
_FINAL_KEYS = ("final", "accuracy_mean", "mean", "glue_average", "glue.average", "test_bleu",
               "score", "tokens_per_s", "heldout_loss", "kept_fraction_documents")
_LABEL_KEYS = ("row", "name", "set", "file", "method", "budget")
_MAX_ROWS = 12


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with nested tables flattened one level (`glue.average`)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                out.setdefault(f"{k}.{k2}", v2)
        else:
            out[k] = v
    return out


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _label(row: Mapping[str, Any], i: int) -> str:
    if "model" in row and "precision" in row:
        return f"{row['model']}/{row['precision']}"
    for key in _LABEL_KEYS:
        if isinstance(row.get(key), (str, int, float)) and not isinstance(row.get(key), bool):
            text = str(row[key])
            return Path(text).stem if key == "file" else text
    return f"row {i + 1}"


def _rows_to_runs(rows: list[dict[str, Any]], table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Runs (one per row) from a table of rows: the row's preferred value as `final`, its
    other numbers as extra report rows."""
    runs, used = [], {}
    for i, raw in enumerate(rows):
        row = _flat(raw)
        metric = next((k for k in _FINAL_KEYS if _number(row.get(k))), None)
        if metric is None:
            metric = next((k for k, v in row.items() if _number(v)), None)
        label = _label(row, i)
        used[label] = used.get(label, 0) + 1
        if used[label] > 1:
            label = f"{label} #{used[label]}"
        extra = {k: float(v) for k, v in row.items() if _number(v) and k != metric}
        runs.append({
            "task": None, "method": label, "seed": row.get("seed", table.get("seed", 0)),
            "metric": metric or "value",
            "higher_is_better": not (metric or "").endswith("loss"),
            "final": float(row[metric]) if metric else None,
            "train_seconds": row.get("train_seconds") if _number(
                row.get("train_seconds")) else None,
            "target": None, "time_to_target": None, "relative_time": None,
            "work": {}, "curve": None,
            "notes": {"report_rows": dict(list(extra.items())[:_MAX_ROWS])}})
    return runs
