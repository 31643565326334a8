"""One writer per output folder: an exclusive `fcntl.flock` on `FOLDER/.lock`.

Two runs writing one folder would interleave checkpoints and logs. The lock is held on an
open file, so the operating system releases it when the process dies in any way (SIGKILL
included): a killed run never leaves a stale lock behind, and the lock file itself (which
holds the owner's pid, for the message) may stay. Locks are re-entrant within a process, so
a command can hold its folder's lock around a `train()` that takes it again. Where `fcntl`
does not exist (Windows) locking is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hasten.core.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
_held: dict[str, list[int]] = {}  # resolved folder -> [descriptor, depth, created it]


def acquire(folder: str | Path) -> None:
    """Lock `folder` (creating it) for this process, or raise a one-line ConfigError naming
    the process that holds it."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _held:
        _held[key][1] += 1
        return
    if fcntl is None:  # pragma: no cover
        _held[key] = [-1, 1, int(created)]
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if created:
            _remove_if_empty(folder)
        raise ConfigError(f"{folder} is in use by another run (pid {owner} holds "
                          f"{folder / LOCK_FILE}); wait for it or choose another output "
                          "folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = [fd, 1, int(created)]


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder `acquire` created when nothing but the lock file went into it (a run
    that failed before writing anything leaves no folder behind)."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def release(folder: str | Path) -> None:
    """Undo one `acquire` of `folder`; the lock goes when the outermost one is undone (and
    the folder too, if this process created it and wrote nothing else there)."""
    folder = Path(folder)
    key = str(folder.resolve())
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[key]
    if entry[2]:
        _remove_if_empty(folder)  # while still holding the lock
    if entry[0] >= 0:
        os.close(entry[0])  # closing the descriptor drops the flock


@contextmanager
def folder_lock(folder: str | Path | None, enabled: bool = True) -> Iterator[None]:
    """Hold `folder`'s lock inside the block (nothing when `folder` is None or not
    `enabled`, e.g. on ranks other than the main one)."""
    if folder is None or not enabled:
        yield
        return
    acquire(folder)
    try:
        yield
    finally:
        release(folder)


def is_locked(folder: str | Path) -> bool:
    """Whether some process (this one included) holds `folder`'s lock now."""
    folder = Path(folder)
    if str(folder.resolve()) in _held:
        return True
    if fcntl is None or not (folder / LOCK_FILE).exists():  # pragma: no cover
        return False
    fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
