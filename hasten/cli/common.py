"""What every command shares: one parser class, one way to turn flags, `--set` and
`--config` into a command's dataclass, one check of `--out`, one console, one progress line
for runs off a terminal, and the one-line endings (errors, stops, non-finite losses).

Names used by every command (one name per idea): `--out DIR` (always a folder),
`--batch-size` (`--micro-batch` where a command sets both a step's batch and its forward
passes), `--device`, `--seed`, `--budget`, `--quiet`, `--overwrite`, `--data`,
`--cache-dir`, `--config`, `--set`. What each does: `hasten.cli.flag_help`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from hasten.bench.machine import choose_threads as choose
from hasten.bench.records import command_line, write_record
from hasten.cli.flag_help import WHAT
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
from hasten.core.lock import LOCK_FILE
from hasten.core.runlog import progress_line
from hasten.core.trainer import Hook

EXIT_NONFINITE = 3
PROGRESS_EVERY = float(os.environ.get("HASTEN_PROGRESS_EVERY", "30"))  # seconds off a tty


class Parser(argparse.ArgumentParser):
    """argparse with hasten's error style: one line, `hasten: error: ...`, exit code 2. A
    value that starts with a minus and a digit (`--budget -5m`, `--lr -1e-3`) is a value,
    not an unknown flag, so its own check can say what is wrong with it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?[0-9]")

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
                 aliases: Mapping[str, str] | None = None,
                 what: Mapping[str, str] | None = None) -> None:
    """Flags for every field of `classes` (minus `skip`), `--config FILE` and `--set
    KEY=VALUE`; `aliases` are old flag spellings (hidden) of a field: {"--micro-batch":
    "batch_size"}; `what`: what a setting does on this command where the shared text
    (`hasten.cli.flag_help.WHAT`) does not fit."""
    for cls in classes:
        fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
        # this command's text, else the field's own, else the shared one
        texts = {f.name: (what or {}).get(f.name) or f.metadata.get("what")
                 or WHAT.get(f.name) for f in fields}
        add_flags(parser, cls, [f.name for f in fields], rename,
                  {k: v for k, v in texts.items() if v})
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


HASTEN_FOLDER = "a folder a hasten command wrote"  # `own=`: any such folder (its config.json)


def check_out(path: str | Path, *, empty: bool = False, overwrite: bool = False,
              own: Collection[str] | str | None = None) -> Path:
    """`--out` as a folder that can be written, checked before any work: a ConfigError when
    it, or a folder above it, is a file, when it cannot be created or written, or, unless
    `overwrite`, when it holds files and `empty`, or files the command did not write: names
    not in `own` (the names the command writes there), or with `own=HASTEN_FOLDER` any
    files of a folder no hasten command wrote (no config.json naming its command)."""
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
    if overwrite or not out.is_dir():
        return out
    entries = sorted(p.name for p in out.iterdir()
                     if not p.name.startswith((".hasten-probe-", ".hasten-replaced-")))
    if empty and entries:
        raise ConfigError(f"--out {out} exists and is not empty; pass --overwrite to "
                          "replace it")
    foreign = _foreign(out, entries, own)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise ConfigError(f"--out {out} holds files this command did not write ({shown}); "
                          "choose another folder, or pass --overwrite to write there anyway")
    return out


def _foreign(out: Path, entries: list[str], own: Collection[str] | str | None) -> list[str]:
    """The entries of `out` its command did not write (see `check_out`)."""
    if own is None or not entries:
        return []
    if own == HASTEN_FOLDER:
        return [] if written_by_hasten(out) else entries
    return [name for name in entries if name not in own and name != LOCK_FILE]


def written_by_hasten(folder: Path) -> bool:
    """Whether `folder` holds the config.json a hasten command writes (with its command)."""
    try:
        body = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(body, dict) and "command" in body


@contextmanager
def replacing(out: Path, names: Collection[str]) -> Iterator[None]:
    """`--overwrite` of a folder holding an earlier result: its entries among `names` are
    set aside while the command runs, deleted once it ends (or is stopped by a signal, which
    keeps the new run's checkpoint), and put back if it fails, so a failed replacement
    loses nothing and never mixes two runs. Only the main process moves files."""
    present = [n for n in names if (out / n).exists() or (out / n).is_symlink()]
    if not present or not is_main_process():
        yield
        return
    aside = Path(tempfile.mkdtemp(dir=out, prefix=".hasten-replaced-"))
    for name in present:
        os.replace(out / name, aside / name)
    try:
        yield
    except (stop.Stopped, KeyboardInterrupt):
        shutil.rmtree(aside, ignore_errors=True)
        raise
    except BaseException:
        for name in present:
            _remove(out / name)
            os.replace(aside / name, out / name)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
    """A trainer hook for runs whose trainer prints nothing itself (its config quiet, as in
    a suite's runs): off a terminal, one line every `PROGRESS_EVERY` seconds in the
    trainer's own format (`hasten.core.runlog.progress_line`), so a long run is never silent
    in a log and a log never holds two formats. On a terminal, or when the trainer prints
    its own lines, it prints nothing."""
    class ProgressLines(Hook):
        def __init__(self) -> None:
            self.last = time.monotonic()
            self.active = not quiet and not on_terminal() and is_main_process()

        def on_start(self, state: Any) -> None:
            self.active = self.active and bool(state.config.quiet)

        def on_step_end(self, state: Any) -> None:
            if not self.active or time.monotonic() - self.last < PROGRESS_EVERY:
                return
            self.last = time.monotonic()
            info = f"step {state.step}"
            if math.isfinite(getattr(state, "last_loss", math.nan)):
                info += f" loss {state.last_loss:.4f}"
            value = (state.metrics or {}).get(state.config.metric)
            if isinstance(value, (int, float)):
                info += f" {state.config.metric} {value:.2f}"
            p, spent = state.budget.progress(), state.budget.ledger.current("train")
            eta = spent * (1 - p) / p if p > 0 else None
            print(progress_line("train", p, info, eta), file=sys.stderr, flush=True)

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
