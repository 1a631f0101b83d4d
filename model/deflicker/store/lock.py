"""The inter-process lock of one cache key, fit for a cache folder shared by several users.

A ``<digest>.lock`` file beside the entry, locked (flock; msvcrt on Windows) without blocking,
retried every POLL_SECONDS while polling ``cancel`` and saying what it waits for: a process
analysing the same clip holds it. The file is created with the cache folder's sharing mode
(:func:`file_mode`: group-writable in a group-writable folder), opened read-only when another
user's file cannot be opened for writing (a lock needs no write access), and removed by its
holder when done; a waiter that locked a file removed meanwhile tries again on the new one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

from deflicker.progress import CancelCheck, Progress, check_cancel, report

log = logging.getLogger(__name__)

#: Seconds between two tries of a lock another process holds (cancel is polled as often).
POLL_SECONDS = 0.1
#: How a wait starts its progress label (the plugin's status line shows it).
WAITING = "waiting for another process analysing"

#: The process umask, read once at import (reading it means setting it, which is not thread safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def file_mode(folder: Path) -> int:
    """Mode of a new cache file in ``folder``: what the umask allows, plus group read and write
    where the folder itself is group-writable (a shared cache: every member replaces entries)."""
    mode = 0o666 & ~_UMASK
    with contextlib.suppress(OSError):
        if os.stat(folder).st_mode & stat.S_IWGRP:
            mode |= 0o660
    return mode


def _open(path: Path, mode: int) -> int:
    """A descriptor on the lock file, created with ``mode`` if missing (read-only on another
    user's file that this one may not write)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):  # the umask cut the group bits of a shared folder
        os.chmod(path, mode)
    return fd


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if free; False when another process holds it."""
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:  # flock: EWOULDBLOCK when held; msvcrt: EACCES or EDEADLOCK
        if isinstance(exc, BlockingIOError) or sys.platform == "win32":
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _is_current(fd: int, path: Path) -> bool:
    """True when ``fd`` is still the file at ``path`` (its holder did not remove it meanwhile)."""
    try:
        mine, current = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)


def _acquire(path: Path, mode: int, what: str, progress: Optional[Progress], cancel: Optional[CancelCheck]) -> int:
    """A descriptor holding the lock at ``path``, waited for (module doc)."""
    waiting = False
    while True:
        check_cancel(cancel)
        fd = _open(path, mode)
        try:
            while not _try_lock(fd):
                if not waiting:
                    waiting = True
                    log.info("%s %s (it holds %s)", WAITING, what, path)
                    report(progress, 0.0, f"{WAITING} {what}")
                check_cancel(cancel)
                time.sleep(POLL_SECONDS)
            if _is_current(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


@contextlib.contextmanager
def key_lock(path: Path, what: str, progress: Optional[Progress] = None,
             cancel: Optional[CancelCheck] = None) -> Iterator[None]:
    """Hold the exclusive lock file ``path`` for the block; ``what`` names the locked work in
    the messages of a wait. OSError when the lock file cannot be made or opened at all."""
    fd = _acquire(path, file_mode(path.parent), what, progress, cancel)
    try:
        yield
    finally:
        if sys.platform != "win32":  # Windows cannot remove an open file; the next holder reuses it
            with contextlib.suppress(OSError):  # a sticky folder keeps another user's file: harmless
                os.unlink(path)
        _unlock(fd)
        os.close(fd)
