"""The shared counter: one number for everybody, handed out once each.

It lives in the session store the app is configured with, never in process memory: a
module-level counter would be one counter per worker process (and per app server),
each handing out the same numbers. Two implementations, picked by the session store's
name from :data:`SHARED_COUNTER_FACTORIES`:

* Redis: ``INCR`` on one key. Atomic in Redis itself; the client never retries (the
  session store's client is built that way), so a lost reply cannot count twice.
* Filesystem: one small file in the session directory, read and rewritten under an
  exclusive ``flock``. See :class:`FileSharedCounter` for why it is written in place.

Every failure reaches the caller as :class:`flask_session.StoreUnavailable`, so the app
answers 503 for the shared counter exactly as for sessions.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import redis
from flask import current_app

from flask_session import StoreUnavailable
from flask_session.errors import OutageLog
from flask_session.stores.base import LockWait
from flask_session.stores.filesystem import OS_ERROR_REASONS

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)

EXTENSION_KEY = "sessionapp.shared_counter"


class SharedCounter(Protocol):
    """What the views need from a shared counter. Every method may raise StoreUnavailable."""

    def increment(self) -> int:
        """Add one and return the new value; no two calls ever return the same number
        (until a reset)."""

    def value(self) -> int:
        """The last number handed out (0 if none). Creates nothing in the store."""

    def reset(self) -> None:
        """Start again: the next increment returns 1."""


class RedisSharedCounter:
    """The shared counter as a Redis integer key."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.redis = client
        self.key = key
        self._outage = OutageLog(logger, f"shared counter in redis (key {key!r})")

    def increment(self) -> int:
        with self._errors():
            return int(self.redis.incr(self.key))

    def value(self) -> int:
        with self._errors():
            raw = self.redis.get(self.key)
            return 0 if raw is None else int(raw)

    def reset(self) -> None:
        with self._errors():
            self.redis.delete(self.key)  # a missing key counts as 0, and INCR starts it at 1

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ResponseError, ValueError) as error:
            # The key holds something else (INCR refuses it, or int() cannot read it).
            self._outage.failed(error)
            raise StoreUnavailable(
                f"redis key {self.key!r} is not a counter: {error}",
                reason="the shared counter holds something that is not a number",
            ) from error
        except redis.exceptions.RedisError as error:
            self._outage.failed(error)
            raise StoreUnavailable(
                f"redis is unavailable: {error}", reason="the session store cannot be reached"
            ) from error
        else:
            self._outage.succeeded()


class CorruptCounterFile(OSError):
    """The counter file holds something this module did not write."""


class FileSharedCounter:
    """The shared counter as a file holding a fixed-width decimal number.

    The file is ``"%020d\\n"``, rewritten in place with one ``pwrite`` while an
    exclusive ``flock`` is held. In place, not by temp file and rename: a rename would
    put a new file (and a new lock) at the path while others wait on the old one. Fixed
    width, so a rewrite never leaves stray digits behind and is one 21-byte write, which
    a killed worker either did or did not do. ``flock`` belongs to the open file
    description, so it excludes the other threads of this process as well as other
    processes, and the kernel drops it when its holder dies.

    Not durable across a power failure or OS crash (no fsync), like the session files
    and a Redis without AOF: after such a crash the counter can go back to a value the
    disk had last seen.
    """

    WIDTH = 20  # digits: room for any 64-bit count
    _FORMAT = re.compile(rb"[0-9]{%d}\n" % WIDTH)

    def __init__(self, path: str, lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._outage = OutageLog(logger, f"shared counter file {path}")

    def increment(self) -> int:
        with self._errors(), self._locked(fcntl.LOCK_EX, create=True) as fd:
            value = self._read(fd) + 1
            self._write(fd, value)
            return value

    def value(self) -> int:
        # A shared lock: a reader never sees a rewrite in progress, and readers do not
        # wait for each other.
        with self._errors(), self._locked(fcntl.LOCK_SH, create=False) as fd:
            return 0 if fd is None else self._read(fd)

    def reset(self) -> None:
        # Written as 0, never unlinked: an incrementer waiting on the old file's lock
        # would count on in a file nobody else sees.
        with self._errors(), self._locked(fcntl.LOCK_EX, create=False) as fd:
            if fd is not None:
                self._write(fd, 0)

    @contextlib.contextmanager
    def _locked(self, operation: int, *, create: bool) -> Iterator[int | None]:
        """The counter file, open and flocked; None if it does not exist and not ``create``."""
        access = os.O_RDWR if operation == fcntl.LOCK_EX else os.O_RDONLY
        fd = self._open(access | os.O_CLOEXEC | os.O_NOFOLLOW, create=create)
        if fd is None:
            yield None
            return
        try:
            self._wait_for_lock(fd, operation)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _open(self, flags: int, *, create: bool) -> int | None:
        if not create:
            try:
                return os.open(self.path, flags)
            except FileNotFoundError:
                return None
        try:
            return os.open(self.path, flags | os.O_CREAT, 0o600)
        except FileNotFoundError:
            # The session directory was removed under us (the session store makes it
            # again on its next write too).
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            return os.open(self.path, flags | os.O_CREAT, 0o600)

    def _wait_for_lock(self, fd: int, operation: int) -> None:
        # Polling with a deadline rather than a blocking flock: a holder stuck in I/O (a
        # hung network filesystem) must cost a 503, not every worker thread forever.
        wait = LockWait(self.lock_timeout, "the shared counter")
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                wait.pause()

    def _read(self, fd: int) -> int:
        raw = os.pread(fd, self.WIDTH + 2, 0)
        if not raw:
            return 0  # just created
        if self._FORMAT.fullmatch(raw) is None:
            # Handing out numbers from a guess could repeat some; refuse until an
            # operator looks (POST /shared/reset rewrites it).
            raise CorruptCounterFile(
                errno.EINVAL, f"unexpected content {raw[:40]!r} (reset it to start again)"
            )
        return int(raw)

    def _write(self, fd: int, value: int) -> None:
        data = b"%0*d\n" % (self.WIDTH, value)
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, "short write")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except CorruptCounterFile as error:
            self._outage.failed(error)
            raise StoreUnavailable(
                f"the shared counter file {self.path} cannot be used: {error.strerror or error}",
                reason="the shared counter holds something that is not a number",
            ) from error
        except OSError as error:
            self._outage.failed(error)
            raise StoreUnavailable(
                f"the shared counter file {self.path} cannot be used: {error.strerror or error}",
                reason=OS_ERROR_REASONS.get(error.errno, "the session store cannot be used"),
            ) from error
        except StoreUnavailable as error:
            self._outage.failed(error)
            raise
        else:
            self._outage.succeeded()


# -- choosing and checking ----------------------------------------------------------------

_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


def _redis_counter(app: Flask, store) -> SharedCounter:
    key = app.config["SHARED_COUNTER_KEY"]
    prefix = app.config["SESSION_KEY_PREFIX"]
    if not isinstance(key, str) or not key:
        raise ValueError(f"SHARED_COUNTER_KEY must be a non-empty string, not {key!r}")
    if prefix and key.startswith(prefix):
        raise ValueError(
            f"SHARED_COUNTER_KEY {key!r} starts with SESSION_KEY_PREFIX {prefix!r};"
            " it could collide with a session's key"
        )
    return RedisSharedCounter(store.redis, key)


def _file_counter(app: Flask, store) -> SharedCounter:
    name = app.config["SHARED_COUNTER_FILE"]
    if (
        not isinstance(name, str)
        or _SAFE_FILE_NAME.fullmatch(name) is None
        or name.endswith((".session", ".tmp"))
    ):
        raise ValueError(
            f"SHARED_COUNTER_FILE is {name!r}; it must be a plain file name (letters, digits,"
            " '.', '_', '-'; not starting with '.', not ending in '.session' or '.tmp') so"
            " that the session cleanup never takes it for a session or a temp file"
        )
    timeout = float(app.config["SESSION_LOCK_TIMEOUT"])
    return FileSharedCounter(os.path.join(store.directory, name), timeout)


#: One factory per session store name (``app.session_interface.store.name``).
SHARED_COUNTER_FACTORIES: dict[str, Callable[[Flask, object], SharedCounter]] = {
    "redis": _redis_counter,
    "filesystem": _file_counter,
}


def init_app(app: Flask) -> None:
    """Make the shared counter for the app's session store. Call after ``Session(app)``.

    Raises ValueError naming the setting when a SHARED_COUNTER_* setting is unusable.
    """
    store = app.session_interface.store
    try:
        factory = SHARED_COUNTER_FACTORIES[store.name]
    except KeyError:
        supported = ", ".join(repr(name) for name in SHARED_COUNTER_FACTORIES)
        raise ValueError(
            f"SESSION_TYPE {store.name!r}: the shared counter supports {supported}"
        ) from None
    app.extensions[EXTENSION_KEY] = factory(app, store)


def shared_counter() -> SharedCounter:
    """The current app's shared counter."""
    return current_app.extensions[EXTENSION_KEY]
