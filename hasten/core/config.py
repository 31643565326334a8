"""One way to configure every entry point: a dataclass whose fields carry their reasons.

airbench's commented `hyp` dict is the model: every default says why it is what it is.

    @dataclass
    class CramConfig:
        budget: str = option("60s", "a smoke test; real runs pass 30m or 1e15flop")
        seq_len: int = option(128, "Cramming and 24h-BERT train on 128-token rows")

A command fills its dataclass from, in rising order of precedence:

1. the defaults;
2. `--config FILE` (TOML, or JSON by its `.json` suffix): a flat table of field names, or a
   table named after the command (`[cram]`) holding them;
3. `--set KEY=VALUE` (any field; `KEY.SUB=VALUE` sets one key of a dict field; VALUE is
   read as JSON where it parses, else as a string) and the command's own flags. A key given
   both ways with different values is an error, not a silent choice.

Every value is checked against the field's type, and unknown keys are refused with the
known ones listed. The resolved object goes to `config.json` in the command's output folder
(`write_config`), so a run folder says exactly how it was made.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib
from typing import Any, TypeVar

from hasten.core.atomic import atomic_write
from hasten.core.errors import ConfigError

T = TypeVar("T")
CONFIG_FILE = "config.json"
_MISSING = dataclasses.MISSING


def option(default: Any, reason: str, *, help: str | None = None,
           choices: Sequence[Any] | None = None, flag: bool = True) -> Any:
    """A dataclass field with its default, the reason for that default, and optionally what
    the setting does (`help`, with its units: the start of its `--help` line, which ends with
    the default and its reason), allowed `choices`, and whether it gets its own flag
    (`flag=False`: settable through `--set` and `--config` only)."""
    meta = {"reason": reason, "what": help, "help": help or reason, "choices": choices,
            "flag": flag}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def reasons(cls: type) -> dict[str, str]:
    """Each field's reason for its default ("" where none was given)."""
    return {f.name: f.metadata.get("reason", "") for f in dataclasses.fields(cls)}


def defaults(cls: type) -> dict[str, Any]:
    """Each field's default value."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not _MISSING:
            out[f.name] = f.default
        elif f.default_factory is not _MISSING:
            out[f.name] = f.default_factory()
    return out


# --- types ---------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotation: fall back to the default's type
        return {f.name: Any for f in dataclasses.fields(cls)}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp` (bool, int, float, str, optionals, tuples, lists, dicts), or a
    ConfigError naming `key`. Strings are parsed; numbers are not silently truncated."""
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(number)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = _json_or_text(value)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        items = [coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _json_or_text(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table of KEY = VALUE, got {value!r}")
        return dict(value)
    return value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- sources -------------------------------------------------------------------------------


def load_config_file(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """The settings in a TOML (or `.json`) file: its `[section]` table when it has one, else
    its top level. A missing or unreadable file is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            data = _toml().loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"cannot read config file {path}: {_one_line(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    if section is not None and isinstance(data.get(section), dict):
        return dict(data[section])
    return data


def _toml() -> Any:
    return tomllib


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def parse_set(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` of `--set`: VALUE read as JSON where it parses (numbers, true, null,
    lists), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    return key.strip(), _json_or_text(value)


def _place(values: dict[str, Any], key: str, value: Any, field_names: set[str],
           where: str) -> None:
    """Put `key` (maybe `FIELD.SUB`) into `values`."""
    name, dot, sub = key.partition(".")
    if name not in field_names:
        raise ConfigError(f"{where}: unknown setting {name!r}; known: "
                          f"{', '.join(sorted(field_names))}")
    if dot:
        table = values.setdefault(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {name} is not a table, so {key} cannot be set")
        table[sub] = value
    else:
        values[name] = value


def resolve(cls: type[T], *, file: str | Path | None = None,
            sets: Sequence[str | tuple[str, Any]] = (), flags: Mapping[str, Any] | None = None,
            section: str | None = None) -> T:
    """An instance of the dataclass `cls` from its defaults, a config file, `--set` items
    and flags (see the module docstring for the order), every value checked."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values = defaults(cls)
    if file is not None:
        for key, value in load_config_file(file, section).items():
            if key == section and isinstance(value, dict):
                continue
            _place(values, key, value, names, f"config file {file}")
    explicit: dict[str, Any] = {}
    for item in sets:
        key, value = parse_set(item) if isinstance(item, str) else item
        _place(explicit, key, value, names, "--set")
    for key, value in (flags or {}).items():
        if key in explicit and not _same(explicit[key], value, hints.get(key, Any), key):
            raise ConfigError(f"{key} is given twice, as a flag ({value!r}) and with --set "
                              f"({explicit[key]!r})")
        _place(explicit, key, value, names, "flags")
    for key, value in explicit.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            raise ConfigError(f"setting {f.name!r} is required")
        value = coerce(values[f.name], hints.get(f.name, Any), f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{f.name}: {value!r} is not one of "
                              f"{', '.join(map(str, choices))}")
        out[f.name] = value
    return cls(**out)


def _same(a: Any, b: Any, tp: Any, key: str) -> bool:
    try:
        return coerce(a, tp, key) == coerce(b, tp, key)
    except ConfigError:
        return False


# --- argparse ------------------------------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and `--set KEY=VALUE` (repeatable) on a command's parser."""
    parser.add_argument("--config", metavar="FILE",
                        help="settings from a TOML (or .json) file; flags and --set win")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any setting, e.g. --set lr=3e-4 (see --help's list)")


def add_flags(parser: argparse.ArgumentParser, cls: type, names: Sequence[str] | None = None,
              rename: Mapping[str, str] | None = None,
              what: Mapping[str, str] | None = None) -> None:
    """A `--field-name` flag for each field of `cls` (or those in `names`) that has
    `flag=True`. Flags default to "not given", so only what the user typed overrides the
    file and the defaults. `rename` maps a field to another flag name; `what` says what a
    setting does where its field does not (`flag_help`)."""
    hints = _hints(cls)
    rename = rename or {}
    for f in dataclasses.fields(cls):
        if (names is not None and f.name not in names) or not f.metadata.get("flag", True):
            continue
        flag = "--" + rename.get(f.name, f.name.replace("_", "-"))
        tp = hints.get(f.name, Any)
        text = flag_help(f, (what or {}).get(f.name) or f.metadata.get("what"))
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,  # % is literal
                              "help": text.replace("%", "%%") or None}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["metavar"] = flag[2:].upper().replace("-", "_")
            if f.metadata.get("choices"):
                kw["choices"] = list(f.metadata["choices"])
        parser.add_argument(flag, **kw)


def flag_help(f: dataclasses.Field, what: str | None) -> str:
    """A flag's `--help` line in one style for every command: what the setting does (with
    its units), then its default and the reason for it: `how much to train (90s, 2000steps,
    ...); default None: the task's own budget`. A field that says nothing of what it does
    shows its reason alone."""
    reason = f.metadata.get("reason", "")
    if f.default is _MISSING and f.default_factory is _MISSING:
        return f"{f.metadata.get('what') or f.metadata.get('help') or what or reason} " \
               "(required)"
    value = f.default if f.default is not _MISSING else f.default_factory()
    shown = ("on" if value else "off") if isinstance(value, bool) else \
        "None" if value is None else json.dumps(value, default=str).strip('"')
    said = reason.partition(":")[0].strip().lower() in (shown.lower(), "none", "auto", "empty")
    tail = reason if said and ":" in reason else f"{shown}: {reason}" if reason else shown
    return f"{what}; default {tail}" if what else reason


def from_args(cls: type[T], args: argparse.Namespace, section: str | None = None) -> T:
    """`resolve` with the file, `--set` items and flags found on a parsed namespace."""
    names = {f.name for f in dataclasses.fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    return resolve(cls, file=getattr(args, "config", None), sets=getattr(args, "set", None) or (),
                   flags=flags, section=section)


def settings_help(cls: type) -> str:
    """One line per setting, `name = default  # reason`, for a command's `--help` epilog."""
    lines = []
    for name, value in defaults(cls).items():
        lines.append(f"  {name} = {json.dumps(value, default=str)}  # {reasons(cls)[name]}")
    return "settings (--set KEY=VALUE or --config FILE):\n" + "\n".join(lines)


# --- output --------------------------------------------------------------------------------


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def write_config(obj: Any, out_dir: str | Path, extra: Mapping[str, Any] | None = None
                 ) -> Path:
    """Write the resolved settings (and `extra`, e.g. the command line) to
    `out_dir/config.json`, atomically."""
    body = {**to_dict(obj), **(dict(extra) if extra else {})}
    path = Path(out_dir) / CONFIG_FILE
    atomic_write(path, lambda fh: fh.write((json.dumps(body, indent=1) + "\n").encode()))
    return path
