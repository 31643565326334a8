"""What every command shares: one parser class, one way to turn flags, `--set` and
`--config` into a command's dataclass, one check of `--out`, one console, one progress line
for runs off a terminal, and the one-line endings (errors, stops, non-finite losses).

Names used by every command (one name per idea): `--out DIR` (always a folder),
`--batch-size`, `--device`, `--seed`, `--budget`, `--quiet`, `--overwrite`, `--data`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from hasten.bench.machine import choose_threads as choose
from hasten.bench.records import command_line, write_record
from hasten.core import stop
from hasten.core.config import (
    CONFIG_FILE,
    add_config_arguments,
    add_flags,
    load_config_file,
    parse_set,
    resolve,
    to_dict,
)
from hasten.core.distributed import is_main_process as main
from hasten.core.errors import ConfigError
from hasten.core.trainer import Hook

EXIT_NONFINITE = 3
PROGRESS_EVERY = float(os.environ.get("HASTEN_PROGRESS_EVERY", "30"))  # seconds off a tty


class Parser(argparse.ArgumentParser):
    """argparse with hasten's error style: one line, `hasten: error: ...`, exit code 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


# --- rank: one place ---------------------------------------------------------------------


def is_main_process() -> bool:
    """True on the process that prints and writes (rank 0 under torchrun, or alone)."""
    return main()


def choose_threads() -> dict[str, Any]:
    """torch's threads for a benchmark, chosen on purpose and returned for the record: the
    cores this process may use (`taskset` pins them), or OMP_NUM_THREADS where it is set."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return choose(int(value) if value.isdigit() and int(value) >= 1 else None)


# --- settings ------------------------------------------------------------------------------


def add_settings(parser: argparse.ArgumentParser, *classes: type,
                 skip: Sequence[str] = (), rename: Mapping[str, str] | None = None,
                 aliases: Mapping[str, str] | None = None) -> None:
    """Flags for every field of `classes` (minus `skip`), `--config FILE` and `--set
    KEY=VALUE`; `aliases` are old flag spellings (hidden) of a field: {"--micro-batch":
    "batch_size"}."""
    for cls in classes:
        names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
        add_flags(parser, cls, names, rename)
    for flag, dest in (aliases or {}).items():
        parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_config_arguments(parser)


def settle(classes: Sequence[type], args: argparse.Namespace, section: str,
           fixed: Mapping[str, Any] | None = None) -> list[Any]:
    """One instance of each dataclass in `classes`, from (lowest first) its defaults, the
    `--config` file (its `[section]` table, else its top level), then `--set` items and
    flags. Keys go to the class that has the field; a key no class has is refused. `fixed`
    values (e.g. a positional argument) count as flags."""
    fields = [{f.name for f in dataclasses.fields(c)} for c in classes]
    every = set().union(*fields)
    file_values = load_config_file(args.config, section) if getattr(args, "config", None) \
        else {}
    file_values = {k: v for k, v in file_values.items() if k != section}
    sets = [_split_set(item) for item in (getattr(args, "set", None) or [])]
    flags = {k: v for k, v in vars(args).items() if k in every}
    flags.update(fixed or {})
    for key in [*file_values, *(k for k, _ in sets)]:
        if key.partition(".")[0] not in every:
            raise ConfigError(f"unknown setting {key.partition('.')[0]!r}; known: "
                              f"{', '.join(sorted(every))}")
    out = []
    for cls, names in zip(classes, fields, strict=True):
        mine = [(k, v) for k, v in file_values.items()
                if k.partition(".")[0] in names and k not in flags]
        mine += [(k, v) for k, v in sets if k.partition(".")[0] in names]
        try:
            out.append(resolve(cls, sets=mine, flags={k: v for k, v in flags.items()
                                                      if k in names}))
        except ConfigError as err:
            raise _flag_words(err) from None
    return out


def _split_set(item: str) -> tuple[str, Any]:
    return parse_set(item)


def _flag_words(err: ConfigError) -> ConfigError:
    """"setting 'data' is required" -> "--data is required" (what a user types)."""
    text = str(err)
    if text.startswith("setting '") and text.endswith("' is required"):
        name = text[len("setting '"):-len("' is required")]
        return ConfigError(f"--{name.replace('_', '-')} is required")
    return err


ARGV: list[str] = []  # the arguments `hasten.cli.main` was given


def command_text() -> str:
    """The command as a user would retype it (core pinning included), for records and
    config.json."""
    return command_line(ARGV)


def write_settings(out: Path, *objects: Any, extra: Mapping[str, Any] | None = None) -> Path:
    """The resolved settings of a command, merged, to `out/config.json` (atomic)."""
    body: dict[str, Any] = {}
    for obj in objects:
        if dataclasses.is_dataclass(obj):
            body.update(to_dict(obj))
        else:
            body.update(obj if isinstance(obj, Mapping) else vars(obj))
    body.update(extra or {})
    body.setdefault("command", command_text())
    return write_record(body, Path(out) / CONFIG_FILE)


# --- the output folder ---------------------------------------------------------------------


def check_out(path: str | Path, *, empty: bool = False, overwrite: bool = False) -> Path:
    """`--out` as a folder that can be written, checked before any work: a ConfigError when
    it, or a folder above it, is a file, when it cannot be created or written, or (`empty`)
    when it holds files and `overwrite` is off."""
    out = Path(path).expanduser()
    for place in (out, *out.parents):
        if not place.exists():
            continue
        if not place.is_dir():
            what = "is a file" if place == out else f"lies under the file {place}"
            raise ConfigError(f"--out {out} {what}; --out names a folder")
        try:  # the one sure test: make (and remove) a folder there
            tempfile.TemporaryDirectory(dir=place, prefix=".hasten-probe-").cleanup()
        except OSError as err:
            raise ConfigError(f"--out {out}: cannot write in {place} "
                              f"({err.strerror or type(err).__name__})") from None
        break
    if empty and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; pass --overwrite to "
                          "replace it")
    return out


# --- printing ------------------------------------------------------------------------------


def on_terminal() -> bool:
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Any:
    """A rich Console; off a terminal it is wide (tables are not squeezed to 80 columns)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 250, soft_wrap=True)


def print_tables(tables: Sequence[Any]) -> None:
    """Print rich tables to stdout at their full width (a terminal's width on one)."""
    if not tables:
        return
    if on_terminal():
        out = Console()
    else:
        probe = Console(width=10_000, file=open(os.devnull, "w"))  # noqa: SIM115
        widest = max(probe.measure(t).maximum for t in tables)
        out = Console(file=sys.stdout, width=max(80, widest + 2))
    for table in tables:
        out.print(table)


def sayer(quiet: bool) -> Callable[[str], None] | None:
    """A progress printer (flushed, so lines show through a pipe), or None when quiet or not
    the main process."""
    if quiet or not is_main_process():
        return None

    def say(line: str) -> None:
        print(line, flush=True)

    return say


def progress_hook(quiet: bool) -> Any:
    """A trainer hook that, off a terminal, prints one plain line every `PROGRESS_EVERY`
    seconds (step, budget used, last metric): a long run is never silent in a log. On a
    terminal the trainer's own bar shows progress, and the hook prints nothing."""
    class ProgressLines(Hook):
        def __init__(self) -> None:
            self.last = time.monotonic()
            self.active = not quiet and not on_terminal() and is_main_process()

        def on_step_end(self, state: Any) -> None:
            if not self.active or time.monotonic() - self.last < PROGRESS_EVERY:
                return
            self.last = time.monotonic()
            metric = state.config.metric
            value = (state.metrics or {}).get(metric)
            shown = f", {metric} {value:.4g}" if isinstance(value, (int, float)) else ""
            print(f"    step {state.step}, {100 * state.budget.progress():.0f}% of "
                  f"{state.config.budget}{shown}", flush=True)

    return ProgressLines()


# --- endings -------------------------------------------------------------------------------


def stop_line(err: stop.Stopped) -> str:
    """One line for a run ended by a signal: what was kept and how to continue."""
    name = {"sigterm": "SIGTERM", "sigint": "SIGINT (Ctrl-C)"}.get(err.signal, err.signal)
    return f"hasten: stopped by {name}; {err.saved or 'nothing saved'}"


def nonfinite_exit(where: str) -> int:
    """Print one line for a run stopped by a non-finite loss; exit code 3."""
    print(f"hasten: error: {where} stopped on a non-finite loss (lower the learning rate, "
          "or try fp32)", file=sys.stderr)
    return EXIT_NONFINITE
