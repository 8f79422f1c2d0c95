"""The contract every session store keeps.

A store is a small class with a handful of verbs. It knows nothing of cookies, Flask or
requests: the session interface owns those. Values cross this boundary already encoded
(``dict[str, bytes]``, one encoded value per session key), so a store merges changes key
by key without decoding them, and the session detects changes by comparing encodings.

Every verb either succeeds or raises :class:`~flask_session.StoreUnavailable` (or its
subclass :class:`~flask_session.SessionLockTimeout`). A verb that failed was applied at
most once, and a verb is applied once however often its client repeats it (a Redis client
retrying a command whose reply was lost finds the first call's recorded result).

Rules every store proves in ``tests/flask_session/test_store_contract.py``:

* A session that is missing, expired, corrupt or in a foreign format loads as ``None``
  (corrupt and foreign data also log one warning). Nothing is created by looking.
* A session written in the other supported format (json <-> msgpack, after a change of
  SESSION_SERIALIZATION_FORMAT or during a rolling deploy across one) is a live
  session: ``load`` and ``incr`` read it, values always cross this boundary encoded in
  the configured format (see :func:`recode`), and the next write stores the configured
  format.
* Counters (``counter_*``) live apart from sessions, namespaced by ``key_prefix``.
* ``save`` merges: only the keys passed are written or deleted. It never brings back a
  session that is gone unless told ``create=True``; a session left with no keys is
  deleted.
* ``incr`` is atomic across threads and processes and waits for the session's lock.
* A lock is exclusive across processes, dies with its process (or within
  ``lock_timeout`` on a network store), and waiting for one is bounded by
  ``lock_timeout``.
"""

from __future__ import annotations

import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NoReturn

from ..codecs import Codec, DecodeError
from ..errors import SessionLockTimeout

#: The key Flask keeps ``session.permanent`` under; ``incr`` reports it (see IncrResult).
PERMANENT_KEY = "_permanent"

#: What a counter's name may be: safe in a file name, a Redis key and a SQL value alike.
COUNTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)


def check_counter_name(name: str) -> str:
    """``name`` if it is a valid counter name; ValueError otherwise. Every store's counter
    verbs call it, so a name that works on one store works on all."""
    if not isinstance(name, str) or COUNTER_NAME.fullmatch(name) is None:
        raise ValueError(
            f"counter name {name!r}: use 1 to 64 letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def recode(values: dict[str, bytes], source: Codec, target: Codec) -> dict[str, bytes]:
    """A session's values written by ``source``, encoded as ``target`` encodes them.

    How a store keeps every session when SESSION_SERIALIZATION_FORMAT changes: it reads
    the other format, and the next write stores the configured one. Raises
    ``DecodeError`` if a value is not ``source`` data, TypeError if ``target`` cannot
    hold it (a msgpack map with integer keys has no JSON form).
    """
    if source is target:
        return values
    return {key: target.encode(source.decode(raw)) for key, raw in values.items()}


@dataclass
class Loaded:
    """A session read from a store: its encoded values, and its lock if one was taken."""

    values: dict[str, bytes]
    lock: Any = None


@dataclass
class IncrResult:
    """The value after an increment, and the session's stored ``_permanent`` (raw, or None).

    ``permanent`` lets a request that only incremented set the cookie's expiry right
    without a second round trip to load the session.
    """

    value: int
    permanent: bytes | None = field(default=None)


@dataclass
class CleanupReport:
    """What ``Store.cleanup`` removed and kept."""

    expired_removed: int = 0
    temp_removed: int = 0
    live_kept: int = 0
    removed_paths: list[str] = field(default_factory=list)
    note: str = ""


class Store(ABC):
    """Where sessions live. Subclasses implement the verbs below."""

    #: the name used for SESSION_TYPE
    name: str

    def __init__(self, *, codec: Codec, key_prefix: str, lock_timeout: float) -> None:
        self.codec = codec
        self.key_prefix = key_prefix
        self.lock_timeout = lock_timeout

    @abstractmethod
    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        """Read a session, or None if no live session has this id.

        ``lock=True`` waits (up to ``lock_timeout``) for the session's lock and returns
        holding it in ``Loaded.lock``. ``refresh_ttl`` (seconds) pushes the expiry out.
        """

    @abstractmethod
    def save(
        self,
        sid: str,
        changed: dict[str, bytes],
        deleted: Iterable[str],
        *,
        ttl: float,
        create: bool,
        lock: Any = None,
    ) -> bool:
        """Merge ``changed`` and ``deleted`` into the session, set its expiry to ``ttl``.

        Releases ``lock`` (taken by ``load``) whatever happens. Returns whether the
        session exists afterwards: False when it was gone (and ``create`` is false) or was
        left with no keys and so deleted.
        """

    @abstractmethod
    def delete(self, sid: str, *, lock: Any = None) -> None:
        """Remove the session if it exists; releases ``lock``."""

    @abstractmethod
    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        """Atomically add ``amount`` to the integer at ``key`` (missing counts as 0).

        Waits for the session's lock if another request holds it, so an increment never
        lands inside someone's read-modify-write. (A request that holds the lock itself
        increments its loaded copy and commits it with ``save``.) Returns None if the
        session does not exist and ``create`` is false. Raises TypeError if the key holds
        something other than an integer.
        """

    @abstractmethod
    def release(self, sid: str, lock: Any) -> None:
        """Give up a lock taken by ``load`` without writing anything."""

    @abstractmethod
    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        """Remove expired sessions (and any leftovers of crashed writers). Never a live one."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers and would accept a write.

        This is what a health check reports, so it must tell the truth about what
        requests will meet: a store that answers but refuses writes (full, read-only,
        failing to persist) raises, with a ``reason`` that says which.
        """

    def close(self) -> None:  # noqa: B027 - optional: most stores hold nothing to close
        """Give back the store's connections (tests, app shutdown). Stores that hold
        none need not override this; a closed store reconnects if used again."""

    # -- store-wide counters -----------------------------------------------------------
    #
    # A counter is one integer shared by every client of the store (the service's
    # shared counter). Counters live in a namespace of their own under ``key_prefix``:
    # they never collide with a session, and two apps with different prefixes on one
    # store never share one. Every store implements all three verbs, and refuses (with
    # ValueError) a name check_counter_name refuses, so a name works on every store.

    @abstractmethod
    def counter_incr(self, name: str) -> int:
        """Add one to counter ``name`` (missing counts as 0) and return the new value.

        Atomic across threads, processes and machines: no two calls return the same
        number until ``counter_reset``. Never applied twice for one call.
        """

    @abstractmethod
    def counter_value(self, name: str) -> int:
        """The counter's current value (0 if never incremented). Creates nothing."""

    @abstractmethod
    def counter_reset(self, name: str) -> None:
        """Start counter ``name`` again: the next ``counter_incr`` returns 1."""


def decode_int(codec: Codec, raw: bytes | None, key: str) -> int:
    """The integer an encoded session value holds (None counts as 0), for ``incr``.

    Raises TypeError for anything but an int (bool included), as ``incr`` promises.
    """
    if raw is None:
        return 0
    try:
        value = codec.decode(raw)
    except DecodeError:
        value = raw
    if type(value) is not int:
        raise TypeError(f"session[{key!r}] holds {type(value).__name__}, not an int")
    return value


class ErrorGuard:
    """A reusable ``with`` block turning a store client's errors into StoreUnavailable.

    ``translate(error)`` returns the exception to raise instead (from ``error``), or None
    to let ``error`` through; ``succeeded()`` runs when the block raised nothing. A
    class with ``__exit__`` rather than ``@contextmanager``, which builds and drives a
    generator on every use: every store verb of every request passes through one.
    Holds no per-use state, so one guard serves every thread and nested use.
    """

    __slots__ = ("_translate", "_succeeded")

    def __init__(
        self,
        translate: Callable[[BaseException], BaseException | None],
        succeeded: Callable[[], None],
    ) -> None:
        self._translate = translate
        self._succeeded = succeeded

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:  # never swallows an error (mypy relies on this)
        if error is None:
            self._succeeded()
            return False
        replacement = self._translate(error)
        if replacement is None:
            return False
        raise replacement from error


class LockWait:
    """The waiting half of taking a lock: sleep between attempts, give up at a deadline.

    Capped, jittered exponential backoff: short sleeps keep latency low when a lock is
    held for a few milliseconds (the usual case); the cap keeps a long holder from being
    polled hard.
    """

    def __init__(self, timeout: float, what: str, *, grace: float = 0.0) -> None:
        self.timeout = timeout
        self.what = what
        self._deadline = time.monotonic() + timeout + grace
        self._delay = 0.0005

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self._deadline - time.monotonic())

    def pause(self) -> None:
        """Sleep before the next attempt; raise SessionLockTimeout once time is up."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.give_up()
        time.sleep(min(remaining, self._delay * (0.5 + random.random())))
        # Capped low: a session is usually held for a millisecond or two, and a waiter
        # that oversleeps its turn is what the slowest requests are made of.
        self._delay = min(self._delay * 2, 0.002)

    def give_up(self) -> NoReturn:
        raise SessionLockTimeout(
            f"{self.what} stayed locked by another request for over {self.timeout:g} s"
            " (SESSION_LOCK_TIMEOUT)",
            reason=f"{self.what} is busy with another request",
        )
