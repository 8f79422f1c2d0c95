"""Cross-process file locks with flock(2), bounded by a timeout.

flock locks belong to an open file description, so they exclude other threads of the
same process as well as other processes, and the kernel releases them when the holder
dies (even by SIGKILL): a crashed worker can never leave a session locked.

Waiting for an flock means polling it (a blocking flock cannot time out), and polling is
unfair: a waiter asleep when the lock frees loses its turn to a newcomer. So threads of
one process first queue on an ordinary lock per path, which hands over at once and
supports a timeout, and only the thread at the head of that queue polls the flock.
"""

from __future__ import annotations

import fcntl
import os
import threading
from typing import Any

from .common import LockWait


class FileLock:
    """An flock held on an open file, and this process's turn for its path."""

    __slots__ = ("fd", "_path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self._path = path

    def release(self) -> None:
        """Close the file (which drops the flock), then let this process's next waiter in."""
        try:
            os.close(self.fd)
        finally:
            _leave_queue(self._path, holding=True)


def lock_existing(path: str, timeout: float, what: str) -> FileLock | None:
    """Open ``path`` and take an exclusive flock on it; None if the file does not exist.

    Waits up to ``timeout`` seconds in all, then raises SessionLockTimeout. Writers
    replace files by rename, so a waiter may end up locking a file that is no longer
    at ``path``; it checks, and locks the current file instead.
    """
    wait = LockWait(timeout, what)
    if not _join_queue(path).acquire(timeout=wait.remaining()):
        _leave_queue(path, holding=False)
        wait.give_up()
    try:
        fd = _flock_current_file(path, wait)
    except BaseException:
        _leave_queue(path, holding=True)
        raise
    if fd is None:
        _leave_queue(path, holding=True)
        return None
    return FileLock(fd, path)


def flock_within(fd: int, operation: int, wait: LockWait) -> None:
    """Take ``operation`` (LOCK_EX or LOCK_SH) on ``fd``, polling until ``wait`` gives up.

    Polling with a deadline rather than a blocking flock: a holder stuck in I/O (a hung
    network filesystem) must cost a SessionLockTimeout (a 503), not every worker thread
    forever.
    """
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            wait.pause()


def _flock_current_file(path: str, wait: LockWait) -> int | None:
    fd = None
    try:
        while True:
            if fd is None:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return None
            flock_within(fd, fcntl.LOCK_EX, wait)
            if is_still_at(fd, path):
                locked, fd = fd, None
                return locked
            os.close(fd)  # replaced or removed while we waited: try the current file
            fd = None
    finally:
        if fd is not None:
            os.close(fd)


# One lock per path this process is locking or waiting for, removed with its last user.
_queues: dict[str, list[Any]] = {}  # path -> [threading.Lock, number of users]
_queues_guard = threading.Lock()


def _join_queue(path: str) -> threading.Lock:
    with _queues_guard:
        entry = _queues.get(path)
        if entry is None:
            entry = _queues[path] = [threading.Lock(), 0]
        entry[1] += 1
        lock: threading.Lock = entry[0]
        return lock


def _leave_queue(path: str, *, holding: bool) -> None:
    """Give up this thread's place (releasing the path's lock if it held it)."""
    with _queues_guard:
        entry = _queues[path]
        if holding:
            entry[0].release()
        entry[1] -= 1
        if entry[1] == 0:
            del _queues[path]


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
