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
  the configured format (see :func:`~flask_session.stores.documents.recode`), and the
  next write stores the configured format.
* ``save`` merges: only the keys passed are written or deleted. It never brings back a
  session that is gone unless told ``create=True``; a session left with no keys is
  deleted.
* ``incr`` is atomic across threads and processes and waits for the session's lock.
* A lock is exclusive across processes, dies with its process (or within
  ``lock_timeout`` on a network store), and waiting for one is bounded by
  ``lock_timeout``.

A store class also lists its own settings (``settings``, rows of
:class:`~flask_session.readers.Setting`) and builds itself from the checked, frozen
:class:`~flask_session.settings.SessionSettings` (``from_settings``); the registry in
:mod:`flask_session.stores` names the class. Capabilities beyond sessions are small
protocols a store may implement: :class:`~flask_session.stores.counters.Counters`,
:class:`~flask_session.stores.sessioncount.SessionCount`.
Machinery the stores share (error translation, lock waits) is in
:mod:`flask_session.stores.common`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..codecs import CODECS, Codec

if TYPE_CHECKING:
    from ..readers import Setting
    from ..settings import SessionSettings

#: The key Flask keeps ``session.permanent`` under; ``incr`` reports it (see IncrResult).
PERMANENT_KEY = "_permanent"

#: Keys this package keeps in the stored values for itself, never shown in the session the
#: app sees (stores hold them like any other key). ``CREATED_KEY``: the session's creation
#: time (Unix seconds), written when SESSION_ABSOLUTE_LIFETIME is set. ``FORWARD_KEY``: in
#: a forwarding record left by ``regenerate()``, the new id masked (ids.mask_forward) and the
#: record's deadline.
#: ``USER_KEY``: the user (hashed) and label a session is bound to in the per-user index
#: (stores/users.py), so that ``regenerate()`` can bind the new id in its place.
CREATED_KEY = "_fs_created"
FORWARD_KEY = "_fs_forward"
USER_KEY = "_fs_user"
RESERVED_KEYS = frozenset({CREATED_KEY, FORWARD_KEY, USER_KEY})


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
    #: per-user index entries of sessions that were gone (see stores/users.py)
    index_removed: int = 0
    removed_paths: list[str] = field(default_factory=list)
    note: str = ""


class Store(ABC):
    """Where sessions live. Subclasses implement the verbs below."""

    #: the name used for SESSION_TYPE
    name: ClassVar[str]
    #: this store's own settings (beyond the core's); read and checked by read_settings
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: the largest session (bytes of its keys and encoded values) the store can hold, or
    #: None if only its disk bounds it. SESSION_MAX_SIZE may not be larger (refused at
    #: start-up); the session refuses a larger one before ``save`` is called, with
    #: :class:`~flask_session.UnstorableValue`. A store that still finds a session too
    #: large for it (its server configured lower) raises that too, never StoreUnavailable.
    max_session_size: ClassVar[int | None] = None

    def __init__(self, *, codec: Codec, key_prefix: str, lock_timeout: float) -> None:
        self.codec = codec
        self.key_prefix = key_prefix
        self.lock_timeout = lock_timeout

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: SessionSettings) -> Store:
        """The store ``settings`` describe (its own in ``settings.store``, checked).

        Raises SessionConfigError naming the key for a setting only the store can judge
        (a client of the wrong kind, a URL it cannot use); builds nothing it leaves open.
        """

    @staticmethod
    def common(settings: SessionSettings) -> dict[str, Any]:
        """The constructor arguments every store takes, from ``settings``."""
        return {
            "codec": CODECS[settings.serialization_format],
            "key_prefix": settings.key_prefix,
            "lock_timeout": settings.lock_timeout,
        }

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
