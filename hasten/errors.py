"""User-facing errors.

Anything a user can fix (a missing file, a bad budget string, a wrong shape) raises a
`HastenError` subclass with a one-line message naming the problem. The CLI prints that line
and exits with code 2, without a traceback. Bugs in hasten itself stay ordinary exceptions.
"""

from __future__ import annotations


class HastenError(Exception):
    """An error caused by the user's input; the message is one line that names the problem."""

    exit_code = 2


class ConfigError(HastenError):
    """A bad option or configuration value (unparsable budget, unknown schedule, ...)."""


class DataError(HastenError):
    """Missing, corrupt, empty or wrongly shaped data."""


class CheckpointError(HastenError):
    """A checkpoint that is missing, corrupt or belongs to another model."""
