"""The session object a view sees as ``flask.session``."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from flask import has_request_context
from flask import request as current_request
from flask.sessions import SessionMixin

from .codecs import DecodeError
from .errors import SessionConflict, SessionReleased, UnstorableValue
from .ids import forward_id, mask_forward, new_session_id, unmask_forward
from .settings import LOCKING_AUTO
from .stores.base import CREATED_KEY, FORWARD_KEY, PERMANENT_KEY, RESERVED_KEYS, USER_KEY

if TYPE_CHECKING:
    from .codecs import Codec
    from .metrics import SessionMetrics
    from .stores.base import Loaded, Store

logger = logging.getLogger(__name__)

#: The shortest expiry handed to a store (seconds): a session at the very end of its
#: SESSION_ABSOLUTE_LIFETIME is written with this rather than a zero or negative one.
MIN_TTL = 0.01

#: How many forwarding records one request follows (a session regenerated twice within
#: the grace window leaves two); more means a loop, and the id is treated as unknown.
MAX_FORWARDS = 3


class EndpointLocking:
    """What SESSION_LOCKING='auto' has learned, in this worker, about each endpoint.

    An endpoint not yet seen to finish takes the session's lock at its first access,
    as with SESSION_LOCKING=true (pessimistic: the first requests of a read-modify-write
    endpoint are exact before anything is known). One seen to finish without writing the
    session is a reader: its requests read without the lock. An endpoint that wrote
    once (in either mode) locks for the rest of the worker's life. A reader's request
    that writes takes the lock at its first write and checks that what it read is
    unchanged; if it changed, the request fails with SessionConflict (counted in
    ``conflicts`` and logged), never a lost update. Keyed by ``request.endpoint``
    (None for a request no route matched). Safe across threads: each entry only ever
    moves from unseen to reader or writer, and from reader to writer.
    """

    def __init__(self) -> None:
        self._writes: dict[str | None, bool] = {}
        self._guard = threading.Lock()
        #: requests failed with SessionConflict since the worker started
        self.conflicts = 0

    def locks(self, endpoint: str | None) -> bool:
        """Whether a request of ``endpoint`` takes the lock at its first access."""
        return self._writes.get(endpoint, True)

    def finished(self, endpoint: str | None, *, wrote: bool) -> None:
        """Learn from a request of ``endpoint`` that saved its session."""
        if wrote:
            self._writes[endpoint] = True
        elif endpoint not in self._writes:
            with self._guard:
                self._writes.setdefault(endpoint, False)

    def conflicted(self, endpoint: str | None, keys: list[str]) -> None:
        """A reader's request found what it read changed when it came to write."""
        self._writes[endpoint] = True
        with self._guard:
            self.conflicts += 1
        logger.warning(
            "session conflict on endpoint %r: session keys %s changed between this request's"
            " read and its first write; the request was refused (503, retryable) and the"
            " endpoint now takes the lock at its first access",
            endpoint,
            keys,
        )


@dataclass(frozen=True)
class RequestPolicy:
    """What one request's session needs to know from the app's settings."""

    store: Store
    codec: Codec
    id_bytes: int
    locking: bool | str  # True, False or LOCKING_AUTO
    permanent_default: bool
    ttl: float  # PERMANENT_SESSION_LIFETIME in seconds: the server-side idle timeout
    refresh_each_request: bool
    max_size: int  # SESSION_MAX_SIZE: bytes of keys and encoded values
    #: SESSION_METRICS (None: off) and the store's name it labels the session's events with
    metrics: SessionMetrics | None = None
    store_name: str = ""
    endpoints: EndpointLocking | None = None  # what SESSION_LOCKING='auto' learned
    absolute: float | None = None  # SESSION_ABSOLUTE_LIFETIME in seconds; None: none
    grace: float = 0  # SESSION_REGENERATE_GRACE in seconds; 0: the old id ends at once


class Commit(NamedTuple):
    """What saving the session did, for the interface's cookie decision.

    A named tuple rather than a frozen dataclass: one is made per request, and a frozen
    dataclass sets each field through ``object.__setattr__``.
    """

    touched: bool  # loaded or incremented during the request
    exists: bool  # a live session is in the store under ``sid`` now
    existed: bool  # the request's cookie named a live session
    wrote: bool  # the store was written by this request
    issued: bool  # ``sid`` was created (or regenerated) by this request


class ServerSideSession(SessionMixin):
    """A dict-like session whose data lives in a store, keyed by ``sid``.

    Nothing touches the store until the session is first read or written. With
    ``SESSION_LOCKING=True``, that first access also takes the session's lock, held
    until the response is saved, so read-modify-write code such as
    ``session["n"] += 1`` is serialized per session. With ``"auto"`` (the default) only
    requests of endpoints that write take it at first access; others read without it
    and take it at their first write, checking that what they read is unchanged (see
    :class:`EndpointLocking` and docs/concurrency.md). At save only the keys whose
    value changed are written, merged into the stored session; nested changes are
    found by comparing encodings, so ``modified = True`` is not needed for them.
    """

    def __init__(
        self, policy: RequestPolicy, sid: str | None, *, other_sids: tuple[str, ...] = ()
    ) -> None:
        self._policy = policy
        #: the session id; None until one is needed (a fresh session issues one on write)
        self.sid = sid
        # Further ids from duplicate cookies, tried in order if ``sid`` is not live (a
        # sibling subdomain can plant a cookie of the same name next to the real one).
        self._other_sids = list(other_sids)
        self.accessed = False  # set by Flask when the ``session`` proxy is used
        self._values: dict[str, Any] | None = None  # decoded data; None = not loaded
        self._stored: dict[str, bytes] = {}  # encoded values as the store has them
        self._lock: Any = None
        self._existed = False  # the cookie's sid named a live session
        self._issued = False
        self._incremented = False
        self._incr_permanent: bytes | None = None
        self._modified_flag = False
        self._read_only = False  # set by @read_only_session
        self._refused = False  # a save refused a value: a second save writes nothing
        self._released: Commit | None = None  # what save_and_release did, once called
        # SESSION_LOCKING='auto': the endpoint learned from; whether this request read
        # without the lock and would take it at its first write (optimistic); what it
        # read meanwhile (keys, and whether it read the key set or the length); whether
        # it wrote; whether a conflict refused it
        self._endpoint: str | None = None
        self._learning = False
        self._optimistic = False
        self._read_keys: set[str] = set()
        self._read_keyset = False
        self._read_len = False
        self._wrote_data = False
        self._conflict: SessionConflict | None = None
        # SESSION_ABSOLUTE_LIFETIME: the creation time as stored (None: not stored yet),
        # and whether the next write must store it (first use of a session stored
        # without it, or an expiry the load pushed past the absolute end)
        self._created: float | None = None
        self._stamp = False
        #: True if ``sid`` was reached through the forwarding record of a regenerated
        #: session's old id: the response sets no cookie (see the interface)
        self.forwarded = False
        self._forwards = 0  # forwarding records followed for the current cookie id
        # The per-user index binding as stored (USER_KEY's raw value; None: unbound),
        # and whether this request changed it (written at commit)
        self._binding: bytes | None = None
        self._binding_changed = False

    # -- the mapping -------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        values = self._data()
        if self._optimistic:
            self._read_keys.add(key)
        return values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in RESERVED_KEYS:
            raise ValueError(f"session key {key!r} is reserved for flask_session's own use")
        self._writable()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._writable()[key]

    def __iter__(self) -> Iterator[str]:
        values = self._data()
        if self._optimistic:
            self._read_keyset = True
        return iter(values)

    def __len__(self) -> int:
        values = self._data()
        if self._optimistic:
            self._read_len = True
        return len(values)

    def __contains__(self, key: object) -> bool:
        values = self._data()
        if self._optimistic and isinstance(key, str):
            self._read_keys.add(key)
        return key in values

    def get(self, key: str, default: Any = None) -> Any:
        values = self._data()
        if self._optimistic:
            self._read_keys.add(key)
        return values.get(key, default)

    def clear(self) -> None:
        self._writable().clear()

    def _writable(self) -> dict[str, Any]:
        """The data, for a write: refused if the view may not write; with the lock taken
        first if this request has read without it."""
        self._refuse_if_read_only()
        values = self._data()
        if self._optimistic:
            self._lock_for_write()
        return values

    def __repr__(self) -> str:
        shown = "not loaded" if self._values is None else repr(self._values)
        sid = f"{self.sid[:6]}…" if self.sid else "new"
        return f"<{type(self).__name__} {sid} {shown}>"

    @property
    def ttl(self) -> float:
        """Seconds the session lives unused: PERMANENT_SESSION_LIFETIME as this request
        read it, or less if SESSION_ABSOLUTE_LIFETIME ends the session sooner. Every
        write gives the store this expiry, and a permanent cookie this lifetime."""
        policy = self._policy
        if policy.absolute is None:
            return policy.ttl
        now = time.time()
        created = now if self._created is None else self._created
        return max(MIN_TTL, min(policy.ttl, created + policy.absolute - now))

    # -- Flask's SessionMixin ----------------------------------------------------------

    @property
    def permanent(self) -> bool:
        return bool(self.get(PERMANENT_KEY, self._policy.permanent_default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self[PERMANENT_KEY] = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True unless the request's cookie named a live session."""
        self._data()
        return not self._existed

    @property
    def modified(self) -> bool:
        """True if this request changed the session (found by comparing encodings)."""
        if self._modified_flag or self._incremented or self._issued:
            return True
        if self._values is None:
            return False
        changed, deleted = self._changes()
        return bool(changed or deleted)

    @modified.setter
    def modified(self, value: bool) -> None:
        # Kept for code written for Flask; changes are found without it.
        self._modified_flag = value

    # -- atomic increment --------------------------------------------------------------

    def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key`` (missing counts as 0); return the result.

        Atomic across threads, processes and machines without holding the session's
        lock for the request: the store adds it in one step. If this request already
        holds the lock, or changed ``key`` itself, the add happens in the request's
        copy and is committed with the response. Raises TypeError if ``key`` holds
        something other than an int.
        """
        self._refuse_if_read_only()
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError(f"incr amount must be an int, not {type(amount).__name__}")
        if self._policy.absolute is not None:
            # The session's age is in its stored values: an increment must not keep a
            # session past SESSION_ABSOLUTE_LIFETIME alive, so it is loaded (and checked)
            # first. One more round trip, only with the setting on.
            self._data()
        if self._optimistic and (key in self._read_keys or self._read_keyset or self._read_len):
            self._lock_for_write()  # an add to what this request read: exact, under the lock
        values = self._values
        if values is not None and (
            self._lock is not None or self.sid is None or self._is_dirty(key)
        ):
            current = values.get(key, 0)
            if type(current) is not int:
                raise TypeError(f"session[{key!r}] holds {type(current).__name__}, not an int")
            total: int = current + amount
            values[key] = total
            return total
        return self._store_incr(key, amount)

    def _store_incr(self, key: str, amount: int) -> int:
        policy = self._policy
        result = None
        if self.sid is not None:
            result = policy.store.incr(self.sid, key, amount, ttl=self.ttl, create=False)
            while result is None and (self._follow_forward() or self._next_sid()):
                result = policy.store.incr(self.sid, key, amount, ttl=self.ttl, create=False)
            if result is not None:
                self._existed = self._existed or not self._issued
        if result is None:  # no session yet, or the cookie's is gone: start a fresh one
            self._start_fresh()
            self.sid = new_session_id(policy.id_bytes)
            result = policy.store.incr(self.sid, key, amount, ttl=self.ttl, create=True)
            if result is None:  # the contract: create=True always yields a result
                raise RuntimeError(f"{type(policy.store).__name__}.incr(create=True) returned None")
            self._issued = True
            if policy.metrics is not None:
                policy.metrics.session_created(policy.store_name)
            if self._values is not None:
                self._values = {}  # the fresh session holds only this key
        self._incremented = True
        self._incr_permanent = result.permanent
        if self._values is not None:
            self._values[key] = result.value
            self._stored[key] = policy.codec.encode(result.value)
        return result.value

    # -- the interface's side ----------------------------------------------------------

    def _data(self) -> dict[str, Any]:
        """The decoded data, loading it (and taking the lock) on first use."""
        if self._values is None:
            self._load()
        return self._values  # type: ignore[return-value]

    def _load(self) -> None:
        policy = self._policy
        if self.sid is None:
            self._values = {}
            return
        absolute = policy.absolute
        # The idle refresh: pushing the expiry out by PERMANENT_SESSION_LIFETIME. With an
        # absolute lifetime no longer than that, the absolute end always comes first and
        # the expiry each write sets stands; there is nothing to push.
        refresh = (
            policy.ttl
            if policy.refresh_each_request and (absolute is None or absolute > policy.ttl)
            else None
        )
        lock = bool(policy.locking) and not self._read_only and self._released is None
        if lock and policy.locking == LOCKING_AUTO and policy.endpoints is not None:
            self._endpoint = current_request.endpoint if has_request_context() else None
            self._learning = True
            lock = policy.endpoints.locks(self._endpoint)
            self._optimistic = not lock
        loaded = self._fetch(lock, refresh)
        while loaded is None and (self._follow_forward() or self._next_sid()):
            loaded = self._fetch(lock, refresh)
        if loaded is None:  # unknown, expired, corrupt or foreign: a fresh session
            self._start_fresh()
            self._values = {}
            return
        self._lock = loaded.lock
        stored = loaded.values
        created_raw = None
        if CREATED_KEY in stored or USER_KEY in stored:  # never shown to the app: kept aside
            stored = dict(stored)
            created_raw = stored.pop(CREATED_KEY, None)
            self._binding = stored.pop(USER_KEY, None)
        try:
            self._values = {key: policy.codec.decode(raw) for key, raw in stored.items()}
        except DecodeError:
            self.release_lock()
            self._start_fresh()
            self._values = {}
            return
        self._stored = stored
        self._existed = True
        if absolute is not None:
            self._created = self._decode_time(created_raw)
            # Stamped on first use; and when the refresh above pushed the expiry past the
            # absolute end (the session's last PERMANENT_SESSION_LIFETIME), cut back.
            self._stamp = self._created is None or (
                refresh is not None and self._created + absolute - time.time() < refresh
            )

    def _fetch(self, lock: bool, refresh: float | None) -> Loaded | None:
        """Load ``sid`` if it names a live session, else None.

        Not live: unknown or expired in the store; a forwarding record (its own id sent
        as a cookie); or, with SESSION_ABSOLUTE_LIFETIME, older than that (deleted now,
        so that it is gone for every server).
        """
        policy = self._policy
        sid = self.sid
        assert sid is not None
        loaded = policy.store.load(sid, lock=lock, refresh_ttl=refresh)
        if loaded is None:
            return None
        if FORWARD_KEY in loaded.values:
            if loaded.lock is not None:
                policy.store.release(sid, loaded.lock)
            return None
        if policy.absolute is not None:
            created = self._decode_time(loaded.values.get(CREATED_KEY))
            if created is not None and time.time() - created >= policy.absolute:
                policy.store.delete(sid, lock=loaded.lock)
                return None
        return loaded

    def _decode_time(self, raw: bytes | None) -> float | None:
        """A stored timestamp, or None if missing or not a number (then stamped anew)."""
        if raw is None:
            return None
        try:
            value = self._policy.codec.decode(raw)
        except DecodeError:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    def _follow_forward(self) -> bool:
        """Move to the id that ``sid`` was regenerated to, if ``sid`` is a regenerated
        session's old id within SESSION_REGENERATE_GRACE; False if it is not."""
        policy = self._policy
        if not policy.grace or self.sid is None or self._forwards >= MAX_FORWARDS:
            return False
        record = policy.store.load(
            forward_id(self.sid, policy.id_bytes), lock=False, refresh_ttl=None
        )
        if record is None:
            return False
        try:
            masked, deadline = policy.codec.decode(record.values[FORWARD_KEY])
        except (KeyError, DecodeError, TypeError, ValueError):
            return False
        # The deadline, not the record's expiry, ends the grace: a store that keeps
        # the record longer (memcached rounds up to whole seconds) changes nothing.
        if not isinstance(masked, str) or not isinstance(deadline, (int, float)):
            return False
        if time.time() >= deadline:
            return False
        new_sid = unmask_forward(masked, self.sid, policy.id_bytes)
        if new_sid is None:
            return False
        self.sid = new_sid
        self.forwarded = True
        self._forwards += 1
        return True

    def _next_sid(self) -> bool:
        """Move on to the next duplicate cookie's id; False if there is none."""
        if not self._other_sids:
            return False
        self.sid = self._other_sids.pop(0)
        self.forwarded = False
        self._forwards = 0
        return True

    def _start_fresh(self) -> None:
        """Forget the cookie's id: a new one is issued if anything is written."""
        self._optimistic = False  # nothing stored to race for: a new id is issued
        self.sid = None
        self._other_sids.clear()
        self._stored = {}
        self._existed = False
        self.forwarded = False
        self._created = None
        self._stamp = self._policy.absolute is not None
        self._binding = None
        self._binding_changed = False

    def _is_dirty(self, key: str) -> bool:
        values = self._values or {}
        if key not in values:
            return key in self._stored
        return self._stored.get(key) != self._encode(key, values[key])

    def _encode(self, key: str, value: Any) -> bytes:
        """``value`` encoded; UnstorableValue (a TypeError) names the key that holds it."""
        try:
            return self._policy.codec.encode(value)
        except TypeError as error:
            raise UnstorableValue(f"session[{key!r}] cannot be stored: {error}") from None

    def _check_size(self, merged: dict[str, bytes], changed: dict[str, bytes]) -> None:
        """Refuse (UnstorableValue, naming the largest changed key) a session whose keys
        and encoded values, as this request would leave them, exceed SESSION_MAX_SIZE."""
        limit = self._policy.max_size
        size = session_size(merged)
        if size <= limit:
            return
        key = max(changed, key=lambda name: len(changed[name])) if changed else "?"
        raise UnstorableValue(
            f"session[{key!r}] cannot be stored: it makes the session {size:,} bytes,"
            f" over SESSION_MAX_SIZE ({limit:,} bytes); the stored session is unchanged"
        )

    def _changes(self) -> tuple[dict[str, bytes], list[str]]:
        encode = self._encode
        values = self._values or {}
        changed = {}
        for key, value in values.items():
            raw = encode(key, value)
            if self._stored.get(key) != raw:
                changed[key] = raw
        deleted = [key for key in self._stored if key not in values]
        return changed, deleted

    def mark_read_only(self) -> None:
        """Read without the session lock; refuse writes. See :func:`read_only_session`."""
        self._read_only = True

    def _refuse_if_read_only(self) -> None:
        if self._conflict is not None:  # the app caught it and went on writing
            raise SessionConflict(str(self._conflict))
        if self._released is not None:
            raise SessionReleased(
                "session.save_and_release() was called earlier in this request: the session"
                " was saved and its lock released, so it can no longer be changed here;"
                " make every change before calling save_and_release()"
            )
        if self._read_only:
            raise RuntimeError(
                "this view is marked @read_only_session and must not change the session;"
                " remove the decorator to write"
            )

    def save_and_release(self) -> None:
        """Save this request's changes now and release the session's lock (PHP's
        ``session_write_close``), for a view that has more, slow work to do.

        The user's other requests stop waiting for this one at once. Reads keep working
        on what was saved; any later change in this request (``session[k] = v``, ``del``,
        ``incr``, ``regenerate``) raises :class:`~flask_session.errors.SessionReleased`,
        and a change made in place to a value read before or after is not saved (and
        logged). Raises what saving raises (UnstorableValue, StoreUnavailable), from the
        view. Calling it again does nothing.
        """
        if self._released is not None:
            return
        try:
            self._released = self.commit()
        except BaseException:
            # The error is answered from the view; the response's own save must not try
            # the write a second time (a lock handed to the store is gone already).
            self._refused = True
            raise

    def commit(self, *, succeeded: bool = True) -> Commit:
        """Write this request's changes and release the lock. Called by save_session,
        which says whether the response is a success (below 400): only a successful
        request that did not write teaches SESSION_LOCKING='auto' that its endpoint
        only reads."""
        if self._released is not None:
            return self._after_release(self._released)
        touched = self._values is not None or self._incremented
        wrote = self._incremented
        exists = self.sid is not None and (self._existed or self._issued)
        if self._refused or self._conflict is not None:
            # Flask saves again while answering the refusal (a 500): nothing is written
            # and no cookie is set on that answer.
            return Commit(False, exists, self._existed, False, self._issued)
        if self._values is not None and self._read_only and self._lock is None:
            changed, deleted = self._changes()
            if changed or deleted:
                logger.warning(
                    "a @read_only_session view changed session keys %s in place;"
                    " the change was not saved",
                    sorted([*changed, *deleted]),
                )
            stamp = self._stamp_values(new=False) if exists else {}
            if stamp:  # a merge of this one key only: safe without the lock
                assert self.sid is not None
                exists = self._policy.store.save(self.sid, stamp, [], ttl=self.ttl, create=False)
                wrote = True
        elif self._values is not None:
            try:
                exists, wrote = self._write(exists)
            except UnstorableValue:
                # Flask saves once more while answering this error: that save writes
                # nothing. A lock not yet handed to the store is freed by teardown.
                self._refused = True
                raise
        endpoints = self._policy.endpoints
        # a failed request that did not write teaches nothing about its endpoint's reads
        learned = self._values is not None and (self._wrote_data or succeeded)
        if self._learning and learned and endpoints is not None:
            endpoints.finished(self._endpoint, wrote=self._wrote_data)
        return Commit(touched, exists, self._existed, wrote, self._issued)

    def _after_release(self, released: Commit) -> Commit:
        """The final save of a request that called save_and_release: nothing is written;
        a change made in place since is logged. The cookie is decided by what the early
        save did (and by whether the session was read at all)."""
        if self._values is not None and not self._refused:
            try:
                changed, deleted = self._changes()
            except UnstorableValue as error:  # changed in place to something unstorable
                changed, deleted = {str(error): b""}, []
            if changed or deleted:
                logger.warning(
                    "session keys %s were changed in place after session.save_and_release();"
                    " the change was not saved",
                    sorted([*changed, *deleted]),
                )
        touched = released.touched or self._values is not None
        return released._replace(touched=touched)

    def _write(self, exists: bool) -> tuple[bool, bool]:
        """Commit's write: (whether the session exists, whether the store was written)."""
        changed, deleted = self._changes()  # encoded and measured before any write
        if self._optimistic and (changed or deleted):  # changed in place after a lockless read
            self._lock_for_write()
            changed, deleted = self._changes()
        if changed or deleted:
            self._wrote_data = True
        if changed:
            merged = {**self._stored, **changed}
            for key in deleted:
                merged.pop(key, None)
            self._check_size(merged, changed)
        lock, self._lock = self._lock, None
        policy = self._policy
        saved = False  # by this commit (the request's increments were written already)
        if self.sid is None:
            if changed:
                self.sid = new_session_id(policy.id_bytes)
                stamp = self._stamp_values(new=True)
                exists = policy.store.save(
                    self.sid, {**changed, **stamp}, [], ttl=self.ttl, create=True
                )
                self._issued = saved = True
                if policy.metrics is not None:
                    policy.metrics.session_created(policy.store_name)
        elif changed or deleted or (exists and (self._stamp or self._binding_changed)):
            if self._values:
                stamp = self._stamp_values(new=False) if exists else {}
                gone = list(deleted)
                if self._binding_changed and self._binding is not None:
                    stamp[USER_KEY] = self._binding
                elif self._binding_changed:
                    gone.append(USER_KEY)
            else:  # the app emptied the session: what we kept in it goes with it
                stamp, gone = {}, [*deleted, CREATED_KEY, USER_KEY]
            self._binding_changed = False
            exists = policy.store.save(
                self.sid, {**changed, **stamp}, gone, ttl=self.ttl, create=False, lock=lock
            )
            saved = True
        elif lock is not None:
            policy.store.release(self.sid, lock)
        self._stored = {**self._stored, **changed}
        for key in deleted:
            self._stored.pop(key, None)
        if saved and exists and policy.metrics is not None:
            policy.metrics.session_saved(policy.store_name, session_size(self._stored))
        return exists, saved or self._incremented

    def _lock_for_write(self) -> None:
        """The first write of a request that read without the lock (SESSION_LOCKING='auto',
        an endpoint that had not written before): take the lock now, re-load, and check
        that every key this request read (and the key set or count, if it read those)
        is as it read it. If so, the request is exact from here on, as if it had locked
        at first access: keys it did not change take their current stored values, and
        it writes under the lock. If not, SessionConflict (nothing written, the lock
        released, the endpoint switched to locking)."""
        self._optimistic = False
        policy = self._policy
        sid = self.sid
        if sid is None or self._values is None:
            return
        loaded = policy.store.load(sid, lock=True, refresh_ttl=None)
        # what the app sees: the keys this package keeps in the session stay aside
        fresh = {
            key: raw
            for key, raw in (loaded.values if loaded is not None else {}).items()
            if key not in RESERVED_KEYS
        }
        stale = self._stale_reads(fresh)
        decoded: dict[str, Any] = {}
        if not stale:
            try:
                decoded = {
                    key: policy.codec.decode(raw)
                    for key, raw in fresh.items()
                    if self._stored.get(key) != raw
                }
            except DecodeError:
                stale = ["(undecodable)"]
        if stale:
            if loaded is not None and loaded.lock is not None:
                with contextlib.suppress(Exception):  # a lease or the kernel frees it too
                    policy.store.release(sid, loaded.lock)
            if policy.endpoints is not None:
                policy.endpoints.conflicted(self._endpoint, stale)
            self._conflict = SessionConflict(
                f"session keys {stale} were changed by another request between this"
                f" request's read (endpoint {self._endpoint!r}) and its first write;"
                " nothing was written: retry the request"
            )
            if policy.metrics is not None:  # a 503 like the store's own refusals
                policy.metrics.store_unavailable(policy.store_name, self._conflict.reason)
            raise self._conflict
        self._lock = loaded.lock if loaded is not None else None
        self._wrote_data = True
        self._rebase(fresh, decoded)

    def _stale_reads(self, fresh: dict[str, bytes]) -> list[str]:
        """The keys this request read whose stored encoding is no longer ``fresh``'s."""
        old = self._stored
        stale = {key for key in self._read_keys if old.get(key) != fresh.get(key)}
        if self._read_keyset:
            stale.update(old.keys() ^ fresh.keys())
        if self._read_len and len(old) != len(fresh):
            stale.update(old.keys() ^ fresh.keys() or {"(the number of keys)"})
        return sorted(stale)

    def _rebase(self, fresh: dict[str, bytes], decoded: dict[str, Any]) -> None:
        """Make the request's copy the stored session (``fresh``) plus its own changes:
        a key it changed keeps its value, any other takes the stored one (or is gone)."""
        values = self._values
        assert values is not None
        old = self._stored
        for key in old.keys() | fresh.keys():
            if self._changed_here(key):
                continue
            if key in decoded:
                values[key] = decoded[key]
            elif key not in fresh:
                values.pop(key, None)
        self._stored = dict(fresh)

    def _changed_here(self, key: str) -> bool:
        """Whether this request changed ``key`` (a value it cannot encode counts as
        changed: the save refuses it later, naming the key)."""
        values = self._values or {}
        if key not in values:
            return key in self._stored
        try:
            return self._stored.get(key) != self._encode(key, values[key])
        except UnstorableValue:
            return True

    def _stamp_values(self, *, new: bool) -> dict[str, bytes]:
        """What a write must add for SESSION_ABSOLUTE_LIFETIME: the creation time (kept if
        known, else now) when the session is ``new`` or a stamp is due; else nothing."""
        policy = self._policy
        if policy.absolute is None or not (new or self._stamp):
            return {}
        if self._created is None:
            self._created = time.time()
        self._stamp = False
        return {CREATED_KEY: policy.codec.encode(self._created)}

    @property
    def binding(self) -> tuple[str, str] | None:
        """The per-user index entry this session is bound to: (user key, label), or None."""
        self._data()
        if self._binding is None:
            return None
        try:
            decoded = self._policy.codec.decode(self._binding)
        except DecodeError:
            return None
        if isinstance(decoded, list) and len(decoded) == 2:
            user, label = decoded
            if isinstance(user, str) and isinstance(label, str):
                return user, label
        return None

    def set_binding(self, user: str | None, label: str = "") -> None:
        """Record (or, with None, forget) the session's binding; stored at commit."""
        self._refuse_if_read_only()
        self._data()
        encoded = None if user is None else self._policy.codec.encode([user, label])
        if encoded != self._binding:
            self._binding, self._binding_changed = encoded, True

    def stored_sid(self) -> str:
        """The session's id, writing the session now if it has none yet (a session is
        otherwise first stored when the response is saved). RuntimeError if it is empty:
        an empty session is never stored."""
        self._refuse_if_read_only()
        self._data()
        if self.sid is None:
            self._write(False)
        if self.sid is None:
            raise RuntimeError(
                "this session is empty and so has no id: store something in it (the"
                " user's id, say) before binding it to a user"
            )
        return self.sid

    def release_lock(self) -> None:
        """Give up the lock without writing. Safe to call twice; never raises."""
        lock, self._lock = self._lock, None
        if lock is not None and self.sid is not None:
            # If the store is down, the lock's lease (or the kernel, for a file) frees it.
            with contextlib.suppress(Exception):
                self._policy.store.release(self.sid, lock)

    def is_permanent(self) -> bool:
        """``permanent`` without loading the session just to answer."""
        if self._values is not None:
            return bool(self._values.get(PERMANENT_KEY, self._policy.permanent_default))
        if self._incr_permanent is not None:
            try:
                return bool(self._policy.codec.decode(self._incr_permanent))
            except DecodeError:
                pass
        return self._policy.permanent_default

    def regenerate(self, on_stored: Callable[[str], None] | None = None) -> None:
        """Move the data to a new id (after login, say); the old id ends.

        With SESSION_REGENERATE_GRACE, the old id's session is deleted and a
        forwarding record is left for the grace window, so a request already in flight
        with the old cookie still reaches the session. The record is stored under
        :func:`~flask_session.ids.forward_id` of the old id (hashed again by the store,
        as every id) and holds the new id masked with a pad only the old id yields
        (:func:`~flask_session.ids.mask_forward`) and a deadline: nothing in the store
        names or opens the new session without the old cookie. The
        creation time moves with the data: regenerating never extends
        SESSION_ABSOLUTE_LIFETIME. ``on_stored(new_id)`` runs once the new session is
        stored, before anything can reach it through the old id (the interface binds
        the new id in the per-user index there).
        """
        self._refuse_if_read_only()
        values = self._data()
        if self._optimistic:
            self._lock_for_write()
        old_sid, lock = self.sid, self._lock
        if old_sid is None:
            return  # never stored: a new id is issued when it is
        policy = self._policy
        try:  # before the lock is handed to the store: a refusal leaves it to teardown
            encoded = {key: self._encode(key, value) for key, value in values.items()}
            self._check_size(encoded, encoded)
        except UnstorableValue:
            self._refused = True
            raise
        self._lock = None
        self._wrote_data = True
        new_sid = new_session_id(policy.id_bytes)
        if encoded:
            kept = self._stamp_values(new=True)
            if self._binding is not None:  # the binding moves with the data
                kept[USER_KEY] = self._binding
            self._binding_changed = False
            policy.store.save(new_sid, {**encoded, **kept}, [], ttl=self.ttl, create=True)
            if on_stored is not None:
                on_stored(new_sid)
            if policy.grace:
                # Written before the old session is deleted: a request with the old id
                # finds one or the other, never neither.
                record = [mask_forward(new_sid, old_sid), time.time() + policy.grace]
                policy.store.save(
                    forward_id(old_sid, policy.id_bytes),
                    {FORWARD_KEY: policy.codec.encode(record)},
                    [],
                    ttl=policy.grace,
                    create=True,
                )
        policy.store.delete(old_sid, lock=lock)
        if policy.metrics is not None:
            policy.metrics.session_regenerated(policy.store_name)
        self.sid = new_sid if encoded else None
        self._stored = encoded
        self._issued = bool(encoded)
        self.forwarded = False


def session_size(values: dict[str, bytes]) -> int:
    """What SESSION_MAX_SIZE measures: the bytes of every key (UTF-8) and encoded value."""
    return sum(len(key.encode()) + len(raw) for key, raw in values.items())


View = TypeVar("View", bound=Callable[..., Any])


def read_only_session(view: View) -> View:
    """Mark a view as only reading the session: it loads without the session lock.

    With ``SESSION_LOCKING=True``, a view that reads the session waits for any request
    holding that session's lock and then holds it itself (with ``"auto"``, until the
    view has been seen to only read). A view that only reads
    (showing a counter, a page) needs neither: decorated, it reads what was last
    saved, in one store round trip and without waiting. Writing to the session in
    such a view raises RuntimeError; a change made in place to a value it read is
    not saved (and logged). Put it below the route decorator::

        @app.get("/counter")
        @read_only_session
        def counter():
            return {"counter": session.get("counter", 0)}

    An ``async def`` view (Flask's async views) stays a coroutine function, so Flask
    still sees it as async and awaits it.
    """
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def read_only_async_view(*args: Any, **kwargs: Any) -> Any:
            _mark_read_only()
            return await view(*args, **kwargs)

        return read_only_async_view  # type: ignore[return-value]

    @functools.wraps(view)
    def read_only_view(*args: Any, **kwargs: Any) -> Any:
        _mark_read_only()
        return view(*args, **kwargs)

    return read_only_view  # type: ignore[return-value]


def _mark_read_only() -> None:
    """Mark this request's session read-only (before the view first touches it)."""
    current = opened_session()
    if current is not None:
        current.mark_read_only()


#: The WSGI environ key under which the interface's ``open_session`` leaves the session it
#: opened for the request, so that the extension's own look-ups (the lock-release teardown,
#: ``@read_only_session``, revoking the current session) find it without going through
#: Flask's ``session`` proxy: since Flask 3.1.3 the proxy marks the session accessed (which
#: adds ``Vary: Cookie``), and it raises AssertionError when ``open_session`` failed.
OPENED_SESSION_KEY = "flask_session.opened"


def opened_session() -> ServerSideSession | None:
    """The current request's session if this extension opened it, else None (no request,
    another interface, or ``open_session`` failed). Does not mark the session accessed."""
    if not has_request_context():
        return None
    current = current_request.environ.get(OPENED_SESSION_KEY)
    return current if isinstance(current, ServerSideSession) else None
