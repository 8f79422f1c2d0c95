"""Machinery the stores share: error translation, lock waits, reading an increment's value,
the at-rest name of a session id.

None of it is part of the contract (:mod:`flask_session.stores.base`); each store uses
what fits it, so that a rule (how long a waiter waits past a lease, what counts as an
integer) is written once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, NoReturn

from ..codecs import Codec, DecodeError
from ..errors import SessionConfigError, SessionLockTimeout
from ..ids import session_id_length

if TYPE_CHECKING:
    from ..settings import SessionSettings

#: Seconds a waiter waits beyond a lock's lease, on the stores whose locks are leases
#: (Redis, SQL, memcached). Requests queued behind a crashed worker's lock all become
#: free when its lease ends; without the grace, those that queued first would time out
#: at that very moment instead of taking their turn. (memcached's clock ticks in whole
#: seconds, so its leases end up to a second late: the same grace covers that.)
LEASE_GRACE = 1.0


def at_rest_name(key_prefix: str, sid: str) -> str:
    """The name a session is stored under: ``sha256(key_prefix + sid)``, 64 hex digits.

    Every store keys a session (its data, lock, lease, increment records, forwarding
    record and per-user index entry) by this name, never by the id itself, so a dump of
    the store or a backup holds nothing that opens a session: the cookie's id cannot be
    recovered from it. It is also the session's public handle in the per-user index
    (:func:`~flask_session.stores.users.session_handle`) and its file name in the
    filesystem store, so one name means one session everywhere. An id has 256 bits (or
    ``SESSION_ID_LENGTH``'s) of randomness, so an unsalted hash is safe: there is no
    dictionary of ids to try.
    """
    return hashlib.sha256((key_prefix + sid).encode()).hexdigest()


#: characters in :func:`at_rest_name`
AT_REST_NAME_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


def is_at_rest_name(text: str) -> bool:
    """Whether ``text`` has the shape of an :func:`at_rest_name` (an id of the same
    length made of hex digits only is, for 256 random bits, never met)."""
    return len(text) == AT_REST_NAME_LENGTH and _HEX_DIGITS.issuperset(text)


class _UniqueTokens:
    """Tokens unique across processes and machines, without a system call each: a random
    prefix per process (drawn again in a forked child, which would otherwise repeat its
    parent's tokens) and a counter (``next`` on ``itertools.count`` is atomic)."""

    def __init__(self) -> None:
        self._fresh()
        os.register_at_fork(after_in_child=self._fresh)

    def _fresh(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


#: A token no other call of it, in any process, returns: for names that must never be
#: reused (a Redis increment's record, read by a retry of that increment only). Not a
#: secret: use ``secrets`` for what a client must not guess.
unique_token = _UniqueTokens()


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


def check_key_length(settings: SessionSettings, limit: int, where: str) -> None:
    """Refuse at start-up a prefix and id length whose keys would not fit the store: a
    key holds the prefix and either the session's at-rest name or (Flask-Session 0.8's
    layout, during its transition) the id itself."""
    longest = max(session_id_length(settings.id_bytes), AT_REST_NAME_LENGTH)
    length = len(settings.key_prefix.encode()) + longest
    if length > limit:
        raise SessionConfigError(
            f"SESSION_KEY_PREFIX ({settings.key_prefix!r}) plus a session id of"
            f" SESSION_ID_LENGTH {settings.id_bytes} bytes makes keys of {length} characters;"
            f" {where} holds {limit}: use a shorter prefix or SESSION_ID_LENGTH"
        )
