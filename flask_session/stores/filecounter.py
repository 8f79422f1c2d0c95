"""Store-wide counters for the filesystem store: one small file per counter.

A counter's file sits next to the sessions, named ``<name>.<namespace>.counter``: the
namespace is a digest of ``SESSION_KEY_PREFIX``, so two apps with different prefixes
sharing one directory never share a counter, and the ``.counter`` suffix is one the
session cleanup never touches (it removes only ``*.session`` and ``.*.tmp`` files).

The file is ``"%020d\\n"``, rewritten in place with one ``pwrite`` while an exclusive
``flock`` is held. In place, not by temp file and rename: a rename would put a new file
(and a new lock) at the path while others wait on the old one. Fixed width, so a
rewrite never leaves stray digits behind and is one 21-byte write, which a killed
writer either did or did not do. ``flock`` belongs to the open file description, so it
excludes the other threads of this process as well as other processes, and the kernel
drops it when its holder dies.

Not durable across a power failure or OS crash (no fsync), like the session files and
a Redis without AOF: after such a crash a counter can go back to a value the disk had
last seen.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator

from .common import LockWait
from .counters import check_counter_name
from .filelock import flock_within

SUFFIX = ".counter"
WIDTH = 20  # digits: room for any 64-bit count
_CONTENT = re.compile(rb"[0-9]{%d}\n" % WIDTH)


class CorruptCounterFile(OSError):
    """The counter file holds something this module did not write."""

    #: what a client is told (see StoreUnavailable.reason)
    reason = "the shared counter holds something that is not a number"


class FileCounters:
    """The counters of one key prefix in one directory. Raises OSError (including
    CorruptCounterFile) and SessionLockTimeout; the store turns OSError into
    StoreUnavailable."""

    def __init__(self, directory: str, key_prefix: str, lock_timeout: float) -> None:
        self.directory = directory
        self.lock_timeout = lock_timeout
        self._namespace = hashlib.sha256(key_prefix.encode()).hexdigest()[:16]

    def path(self, name: str) -> str:
        """The file of counter ``name`` (ValueError for a name no store accepts)."""
        return os.path.join(self.directory, f"{check_counter_name(name)}.{self._namespace}{SUFFIX}")

    def incr(self, name: str) -> int:
        with self._locked(name, fcntl.LOCK_EX, create=True) as fd:
            assert fd is not None
            value = _read(fd) + 1
            _write(fd, value)
            return value

    def value(self, name: str) -> int:
        # A shared lock: a reader never sees a rewrite in progress, and readers do not
        # wait for each other.
        with self._locked(name, fcntl.LOCK_SH, create=False) as fd:
            return 0 if fd is None else _read(fd)

    def reset(self, name: str) -> None:
        # Written as 0, never unlinked: an incrementer waiting on the old file's lock
        # would count on in a file nobody else sees.
        with self._locked(name, fcntl.LOCK_EX, create=False) as fd:
            if fd is not None:
                _write(fd, 0)

    @contextlib.contextmanager
    def _locked(self, name: str, operation: int, *, create: bool) -> Iterator[int | None]:
        """The counter file, open and flocked; None if it does not exist and not ``create``."""
        access = os.O_RDWR if operation == fcntl.LOCK_EX else os.O_RDONLY
        fd = self._open(self.path(name), access | os.O_CLOEXEC | os.O_NOFOLLOW, create=create)
        if fd is None:
            yield None
            return
        try:
            flock_within(fd, operation, LockWait(self.lock_timeout, "the shared counter"))
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _open(self, path: str, flags: int, *, create: bool) -> int | None:
        if not create:
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                return None
        try:
            return os.open(path, flags | os.O_CREAT, 0o600)
        except FileNotFoundError:
            # The directory was removed under us (the session store makes it again on
            # its next write too).
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            return os.open(path, flags | os.O_CREAT, 0o600)


def _read(fd: int) -> int:
    raw = os.pread(fd, WIDTH + 2, 0)
    if not raw:
        return 0  # just created
    if _CONTENT.fullmatch(raw) is None:
        # Handing out numbers from a guess could repeat some; refuse until an operator
        # looks (a reset rewrites it).
        raise CorruptCounterFile(
            errno.EINVAL, f"unexpected content {raw[:40]!r} (reset it to start again)"
        )
    return int(raw)


def _write(fd: int, value: int) -> None:
    data = b"%0*d\n" % (WIDTH, value)
    if os.pwrite(fd, data, 0) != len(data):
        raise OSError(errno.ENOSPC, "short write")
