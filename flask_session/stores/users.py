"""The per-user index: which sessions belong to a user. An optional capability of a store.

An app binds a session to its user at login and unbinds it at logout; it can then list a
user's live sessions ("where am I signed in"), revoke one, revoke all of them (or all but
the current one: "sign out everywhere else"), and cap how many a user keeps. Revoked
means the session is deleted from the store: the next request with its cookie, on any
server, gets a fresh, empty session, and a request still holding it cannot bring it back
(``save`` never recreates a session that is gone).

Like :class:`~flask_session.stores.counters.Counters`, this is not part of the session
contract: a store offers it by implementing :class:`UserIndex`, and the interface's
helpers refuse, naming the store, when it does not.

Offered by every store: Redis, sqlalchemy, filesystem, and memcached, which may evict a
user's index while their sessions live on and so makes its index fail closed: a bound
session whose index is gone no longer loads (memcacheusers.py).

The index never outlives what it indexes for long: listing a user's sessions drops the
entries whose session is gone (expired, deleted), and ``prune_user_index`` (run by
``flask session cleanup``) drops every such entry, so that afterwards the index holds
exactly the live sessions. (memcached cannot list its keys: there binding, unbinding,
listing and revoking drop a user's stale entries, and ``prune_user_index`` finds none.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .common import ErrorGuard, at_rest_name

#: the longest label (an app's description of a session, such as its user agent)
MAX_LABEL = 256


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as the index knows it.

    Named by its ``handle``, never its id: a page listing a user's devices must not hand
    out the ids of the other sessions (whoever holds an id holds the session).
    """

    #: the session's handle (:func:`session_handle`): what revoking one session takes
    handle: str
    #: when the session was bound to the user (Unix seconds): the login
    bound_at: float
    #: what the app said about the session when binding it (a user agent, a device name)
    label: str
    #: seconds until the store expires the session unless it is used again (None: unknown)
    expires_in: float | None
    #: when the session was last used, as its expiry tells (Unix seconds; None: unknown):
    #: the expiry less the idle lifetime (PERMANENT_SESSION_LIFETIME), since every request
    #: that refreshes the expiry sets it to then + the idle lifetime; never before
    #: ``bound_at`` nor after now. Filled in by the session interface, which knows the
    #: lifetime (see :func:`last_seen`); stores leave it None.
    last_seen: float | None = None


def last_seen(entry: UserSession, idle_lifetime: float, now: float) -> float | None:
    """When ``entry``'s session was last used, from its time to expiry: ``now +
    expires_in - idle_lifetime``, kept between ``bound_at`` and ``now``. Exact to the
    store's expiry resolution (memcached: whole seconds) for a session whose expiry each
    request refreshes; otherwise (SESSION_REFRESH_EACH_REQUEST off, or a store TTL cut
    short by SESSION_ABSOLUTE_LIFETIME) the last write that set the expiry, or earlier:
    never later than the true last use."""
    if entry.expires_in is None:
        return None
    seen = now + entry.expires_in - idle_lifetime
    return min(now, max(entry.bound_at, seen))


def user_key(user_id: str | int) -> str:
    """The index's name for ``user_id``: a hash, so that any id (an email address, text with
    braces or colons) makes a safe key and the store does not hold user ids in the clear.
    ValueError for what is not an id."""
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
        raise ValueError(f"user id {user_id!r}: use a non-empty str or an int")
    return hashlib.sha256(f"flask_session user\0{user_id}".encode()).hexdigest()[:32]


def session_handle(key_prefix: str, sid: str) -> str:
    """A session's public name in the index: a one-way hash of its id (with the key
    prefix), so it names the session without giving it away. It is the session's
    at-rest name (:func:`~flask_session.stores.common.at_rest_name`): its key on Redis,
    SQL and memcached, its file name in the filesystem store (``<handle>.session``)."""
    return at_rest_name(key_prefix, sid)


def check_label(label: str) -> str:
    """``label`` if it is one; ValueError otherwise."""
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise ValueError(f"session label: use text of at most {MAX_LABEL} characters")
    return label


@runtime_checkable
class UserIndex(Protocol):
    """What a store offering the per-user index implements. Every verb may raise
    StoreUnavailable; ``user`` is :func:`user_key` of the app's user id."""

    def bind_user(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        """Record session ``sid`` as one of ``user``'s (again: its label is replaced, its
        bind time kept). With ``cap``, the user's oldest sessions beyond ``cap`` are
        revoked (``sid`` last of all); returns the revoked sessions' handles."""

    def unbind_user(self, user: str, sid: str) -> None:
        """Forget that ``sid`` is one of ``user``'s sessions; the session itself stays."""

    def user_sessions(self, user: str) -> list[UserSession]:
        """``user``'s live sessions, oldest bind first; entries of sessions that are gone
        are dropped from the index on the way."""

    def revoke_user_sessions(
        self, user: str, handles: Iterable[str] | None, *, keep: str | None
    ) -> list[str]:
        """Delete ``user``'s sessions (those whose handle is in ``handles``, or all of
        them when None), except the one whose handle is ``keep``, and their index
        entries. A handle that is not the user's is left alone. Returns the handles of
        the revoked sessions (each live until now)."""

    def prune_user_index(self) -> int:
        """Drop every index entry whose session is gone; returns how many. (0 on a store
        that cannot list its users' indexes, memcached: each is pruned when used.)"""


class IndexKeeper(Protocol):
    """What keeps a store's index in an object of its own (fileusers.py,
    memcacheusers.py): the :class:`UserIndex` verbs, without the error translation."""

    def bind(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]: ...

    def unbind(self, user: str, sid: str) -> None: ...

    def sessions(self, user: str) -> list[UserSession]: ...

    def revoke(
        self, user: str, handles: Iterable[str] | None, *, keep: str | None
    ) -> list[str]: ...

    def prune(self) -> int: ...


class KeptUserIndex:
    """:class:`UserIndex` for a store whose index an :class:`IndexKeeper` keeps
    (``_users``): each verb is the keeper's, under the store's error translation
    (``_errors``, which turns the store's errors into StoreUnavailable)."""

    _users: IndexKeeper

    def _errors(self) -> ErrorGuard:
        raise NotImplementedError

    def bind_user(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        with self._errors():
            return self._users.bind(user, sid, label=label, cap=cap)

    def unbind_user(self, user: str, sid: str) -> None:
        with self._errors():
            self._users.unbind(user, sid)

    def user_sessions(self, user: str) -> list[UserSession]:
        with self._errors():
            return self._users.sessions(user)

    def revoke_user_sessions(
        self, user: str, handles: Iterable[str] | None, *, keep: str | None
    ) -> list[str]:
        with self._errors():
            return self._users.revoke(user, handles, keep=keep)

    def prune_user_index(self) -> int:
        with self._errors():
            return self._users.prune()
