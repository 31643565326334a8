"""User-facing errors.

Anything a user can fix (a missing file, a bad budget string, a wrong shape) raises a
`HastenError` subclass with a one-line message naming the problem. The CLI prints that line
and exits with code 2, without a traceback. Bugs in hasten itself stay ordinary exceptions.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn


class HastenError(Exception):
    """An error caused by the user's input; the message is one line that names the problem."""

    exit_code = 2


class ConfigError(HastenError):
    """A bad option or configuration value (unparsable budget, unknown schedule, ...)."""


class DataError(HastenError):
    """Missing, corrupt, empty or wrongly shaped data."""


class CheckpointError(HastenError):
    """A checkpoint that is missing, corrupt or belongs to another model, or one that cannot
    be written (a full disk)."""


class DistributedError(HastenError):
    """Another rank of a distributed job died or stopped answering. Not the user's input, so
    it exits with 1; the message names the rank and says how to continue."""

    exit_code = 1


def check_options(kind: str, name: str, fn: Callable[..., Any], options: Iterable[str],
                  fixed: int) -> None:
    """A ConfigError naming every keyword in `options` that `fn` does not take after its first
    `fixed` (positional) parameters, and the ones it does."""
    known = list(inspect.signature(fn).parameters)[fixed:]
    bad = sorted(set(options) - set(known))
    if bad:
        raise ConfigError(f"{kind} {name!r} has no option(s) {', '.join(bad)}; "
                          f"known: {', '.join(known) or 'none'}")


def run_script(main: Callable[[], int]) -> NoReturn:
    """Exit with `main()`'s code; a HastenError is one clear line on stderr and its exit
    code (2 for bad input), no traceback. For the scripts under scripts/."""
    try:
        code = main()
    except HastenError as err:
        print(f"hasten: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    raise SystemExit(code)
