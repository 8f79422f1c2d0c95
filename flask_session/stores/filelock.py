"""Cross-process file locks with flock(2), bounded by a timeout.

flock locks belong to an open file description, so they exclude other threads of the
same process as well as other processes, and the kernel releases them when the holder
dies (even by SIGKILL): a crashed worker can never leave a session locked.
"""

from __future__ import annotations

import fcntl
import os

from .base import LockWait


def lock_existing(path: str, timeout: float, what: str) -> int | None:
    """Open ``path`` and take an exclusive flock on it; None if the file does not exist.

    Returns the open descriptor: closing it releases the lock. Waits up to ``timeout``
    seconds, then raises SessionLockTimeout. Writers replace files by rename, so a
    waiter may end up locking a file that is no longer at ``path``; it checks, and
    locks the current file instead.
    """
    wait = LockWait(timeout, what)
    fd = None
    try:
        while True:
            if fd is None:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                wait.pause()
                continue
            if is_still_at(fd, path):
                locked, fd = fd, None
                return locked
            os.close(fd)  # replaced or removed while we waited: try the current file
            fd = None
    finally:
        if fd is not None:
            os.close(fd)


def is_still_at(fd: int, path: str) -> bool:
    """True if ``path`` still names the file open as ``fd``."""
    return same_file(os.fstat(fd), path)


def same_file(opened: os.stat_result, path: str) -> bool:
    """True if ``path`` names the file whose fstat is ``opened``."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_ino, here.st_dev) == (opened.st_ino, opened.st_dev)
