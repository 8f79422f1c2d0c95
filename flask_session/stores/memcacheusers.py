"""The per-user index (stores/users.py) for the memcached store: exact, and safe when
memcached evicts it, because it **fails closed**.

memcached may evict any item, a user's index included, while that user's sessions live
on. An index that could silently lose sessions would make "sign out everywhere" miss
them. So here the index is not only a list: it is what admits a bound session.

* A user's index is one item, ``<prefix>#user:<user key>`` (``#`` never occurs in a
  session id), a JSON object: session handle -> ``[bind time, label, item key]``. The
  item key is where the session's own item lives (the store's name for it: a hash of the
  id once ids are hashed at rest); handles are one-way hashes. It never expires by time:
  it goes when its last entry does, or when memcached evicts it (an index nobody uses
  goes cold first).
* Every change is a ``gets``/``cas`` read-modify-write (``add`` for a new index),
  repeated until no one wrote in between, bounded by ``SESSION_LOCK_TIMEOUT``.
* A bound session carries its binding (the reserved key ``_fs_user``, as on every
  store). When the store loads or increments a session that carries one, it also reads
  its user's index (one more ``get``, only for bound sessions: the user is known only
  from the session's own item, so the two cannot be fetched together). **A handle
  missing from the index, or an index that is gone, means revoked**: the session loads
  as absent, and the request gets a fresh, empty session. Evicting a user's index thus
  logs that user out everywhere, which is what memcached evicting their sessions would
  do; it can never leave a live session that "sign out everywhere" does not reach.
* Revoking removes the handles from the index first (one ``cas``), then deletes the
  session items. Once the ``cas`` is in, no server admits the session any more, even if a
  delete fails or a request in flight writes the session again.
* Unbinding takes the binding out of the session item first (keeping its expiry), then
  the handle out of the index: a session never carries a binding its index lacks unless
  it was revoked.
* Listing, binding, unbinding and revoking also drop the entries whose session item is
  gone (expired, deleted, evicted): liveness and the time to expiry come from one
  pipelined meta get (``mg <key> t``) per server. memcached cannot list its keys, so
  ``flask session cleanup`` cannot visit the indexes of users who do not come back: each
  user's index is pruned when it is next used, and an unused one holds only handles
  until it is evicted.

Needs memcached 1.6 or later (the meta commands).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pymemcache.exceptions import MemcacheClientError  # type: ignore[import-untyped]

from ..codecs import DecodeError
from ..errors import SessionConfigError
from .base import USER_KEY
from .common import LockWait
from .memcachewire import pipelined
from .users import UserSession, session_handle

if TYPE_CHECKING:
    from .memcached import MemcachedStore

#: a user's index item: ``<prefix>#user:<user key>``
INDEX_MARK = "#user:"
#: the user key's form (stores/users.py ``user_key``): 32 hex digits
_USER = re.compile(r"[0-9a-f]{32}")
#: a handle's form (stores/users.py ``session_handle``)
_HANDLE = re.compile(r"[0-9a-f]{64}")
#: memcached's limit on a key, in bytes
KEY_LENGTH_LIMIT = 250
#: memcached's exptime for an index item: none (it goes when emptied, or is evicted)
NO_EXPIRY = 0
EXPIRE_NOW = -1
#: the reserved key's bytes, as they show in a stored document (JSON or msgpack): a
#: document without them carries no binding and needs no look at the index
_MARKER = USER_KEY.encode()

#: handle -> [bind time, label, the session item's key]
Entries = dict[str, list[Any]]
T = TypeVar("T")


def check_prefix(key_prefix: str) -> None:
    """Refuse at start-up a SESSION_KEY_PREFIX too long for a user's index key."""
    if len(f"{key_prefix}{INDEX_MARK}".encode()) + 32 > KEY_LENGTH_LIMIT:
        raise SessionConfigError(
            f"SESSION_KEY_PREFIX is {len(key_prefix.encode())} bytes: too long for the"
            f" memcached per-user index's keys (at most {KEY_LENGTH_LIMIT} bytes with"
            f" {INDEX_MARK!r} and a 32-character user hash)"
        )


class MemcachedUserIndex:
    """The index of one store (``store``: its nodes, item keys, documents). Raises
    pymemcache's errors and SessionLockTimeout; the store turns the former into
    StoreUnavailable."""

    def __init__(self, store: MemcachedStore) -> None:
        check_prefix(store.key_prefix)
        self.store = store
        self.key_prefix = store.key_prefix

    # -- admitting a session (the store's load and incr) ---------------------------------

    def admits(self, sid: str, values: dict[str, bytes]) -> bool:
        """Whether a session read from the store may be used: it carries no binding, or
        its handle is in its user's index. False for a binding that cannot be read."""
        raw = values.get(USER_KEY)
        if raw is None:
            return True
        user = self._bound_user(raw)
        if user is None:
            return False
        key = self._index_key(user)
        handle = session_handle(self.key_prefix, sid)
        item = self.store._key(sid)
        data = self.store._node(key).get(key)
        if data is None:
            return False
        # Every request of a bound session asks, so first without parsing the index: the
        # index as _dump writes it holds ``"<handle>":[`` only as the handle's entry, and
        # ``"<item>"]`` only as an entry's last field (inside a label, JSON escapes
        # every quote: ``\"``), and a handle names one item.
        if f'"{handle}":['.encode() in data and f'"{item}"]'.encode() in data:
            return True
        entry = _parse(data).get(handle)
        if entry is None:
            return False
        if entry[2] != item:  # the session's item was renamed (ids hashed at rest): follow
            self._update(user, lambda entries: _set_item(entries, handle, item))
        return True

    # -- the UserIndex verbs ---------------------------------------------------------------

    def bind(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        handle, item = session_handle(self.key_prefix, sid), self.store._key(sid)
        doomed: list[tuple[str, str]] = []

        def change(entries: Entries) -> None:
            alive = self._prune(entries, keep=handle)
            old = entries.get(handle)
            entries[handle] = [old[0] if old else time.time(), label, item]
            doomed.clear()
            if cap is not None:
                live = [h for h in entries if h in alive or h == handle]
                live.sort(key=lambda h: (h == handle, entries[h][0], h))
                for gone in live[: max(0, len(live) - cap)]:
                    doomed.append((gone, entries.pop(gone)[2]))

        self._update(user, change)
        self._delete_items(item for _, item in doomed)
        return [handle for handle, _ in doomed]

    def unbind(self, user: str, sid: str) -> None:
        self._strip_binding(user, sid)
        handle = session_handle(self.key_prefix, sid)
        self._update(user, lambda entries: self._prune(entries, drop=handle))

    def sessions(self, user: str) -> list[UserSession]:
        def change(entries: Entries) -> list[UserSession]:
            alive = self._prune(entries)
            return [
                UserSession(handle, float(bound_at), str(label), alive[handle])
                for handle, (bound_at, label, _) in entries.items()
            ]

        found = self._update(user, change)
        return sorted(found, key=lambda entry: (entry.bound_at, entry.handle))

    def revoke(self, user: str, handles: Iterable[str] | None, *, keep: str | None) -> list[str]:
        wanted = None if handles is None else set(handles)
        doomed: list[tuple[str, str]] = []

        def change(entries: Entries) -> list[str]:
            targets = [h for h in entries if h != keep and (wanted is None or h in wanted)]
            alive = self._alive({h: entries[h] for h in targets})
            doomed[:] = [(h, entries.pop(h)[2]) for h in targets]
            return [h for h in targets if h in alive]

        revoked = self._update(user, change)
        # The index first: from here on no server admits these sessions; the items go too.
        self._delete_items(item for _, item in doomed)
        return revoked

    def prune(self) -> int:
        """Nothing: memcached cannot list its users' indexes; each drops its stale
        entries whenever it is used (bind, unbind, list, revoke)."""
        return 0

    # -- internals -----------------------------------------------------------------------

    def _index_key(self, user: str) -> str:
        return f"{self.key_prefix}{INDEX_MARK}{user}"

    def _bound_user(self, raw: bytes | None) -> str | None:
        """The user key a stored binding names, or None if it is not one."""
        if raw is None:
            return None
        try:
            decoded = self.store.codec.decode(raw)
        except DecodeError:
            return None
        if isinstance(decoded, list) and len(decoded) == 2 and isinstance(decoded[0], str):
            user = decoded[0]
            return user if _USER.fullmatch(user) else None
        return None

    def _update(self, user: str, change: Callable[[Entries], T]) -> T:
        """Read-modify-write ``user``'s index with CAS until no one wrote in between;
        ``change`` edits the entries in place (and may run again). Returns its result."""
        key = self._index_key(user)
        node = self.store._node(key)
        wait = LockWait(self.store.lock_timeout, "the per-user index")
        while True:
            data, cas = node.gets(key)
            entries = _parse(data)
            before = _dump(entries)
            result = change(entries)
            after = _dump(entries)
            if after == before and data is not None or not entries and data is None:
                return result
            if not entries:
                written = node.cas(key, b"", cas, expire=EXPIRE_NOW, noreply=False)
            elif data is None:
                written = node.add(key, after, expire=NO_EXPIRY, noreply=False)
            else:
                written = node.cas(key, after, cas, expire=NO_EXPIRY, noreply=False)
            if written:
                return result
            wait.pause()

    def _prune(
        self, entries: Entries, *, keep: str | None = None, drop: str | None = None
    ) -> dict[str, float | None]:
        """Drop the entries whose session item is gone (but ``keep``'s), and ``drop``'s;
        returns the live ones' seconds to expiry."""
        if drop is not None:
            entries.pop(drop, None)
        alive = self._alive(entries)
        for handle in [h for h in entries if h not in alive and h != keep]:
            del entries[handle]
        return alive

    def _alive(self, entries: Entries) -> dict[str, float | None]:
        """handle -> seconds until its session item expires (None: never), for the
        entries whose item exists: one pipelined batch of ``mg <key> k t q`` per server,
        ended by ``mn`` (``q``: misses say nothing; ``k``: a hit names its key). Flags
        come back in the order asked, so every hit line ends in ``t<seconds>``: a key
        ending in "MN" cannot be taken for the batch's end."""
        by_item = {entry[2]: handle for handle, entry in entries.items()}
        batches: dict[int, tuple[Any, list[str]]] = {}
        for item in by_item:
            node = self.store._node(item)
            batches.setdefault(id(node), (node, []))[1].append(item)
        alive: dict[str, float | None] = {}
        for node, items in batches.values():
            command = "".join(f"mg {item} k t q\r\n" for item in items) + "mn\r\n"
            for line in pipelined(node, command.encode()):
                if not line.startswith("HD "):
                    raise MemcacheClientError(f"memcached answered {line[:64]!r} to mg")
                flags = {token[0]: token[1:] for token in line.split()[1:]}
                handle = by_item.get(flags.get("k", ""))
                if handle is not None:
                    ttl = int(flags.get("t", "-1"))
                    alive[handle] = None if ttl < 0 else float(ttl)
        return alive

    def _strip_binding(self, user: str, sid: str) -> None:
        """Take ``user``'s binding out of session ``sid``'s item, keeping its expiry."""
        store = self.store
        key = store._key(sid)
        node = store._node(key)
        wait = LockWait(store.lock_timeout, "the session")
        while True:
            data, cas = node.gets(key)
            if data is None or _MARKER not in data:
                return
            values = store._decode(data, sid)
            if values is None or self._bound_user(values.get(USER_KEY)) != user:
                return
            del values[USER_KEY]
            ttl = self._ttl(node, key)
            if ttl is None:
                return  # gone meanwhile
            if not values:
                written = node.cas(key, b"", cas, expire=EXPIRE_NOW, noreply=False)
            else:
                written = node.cas(
                    key, store._document(values), cas, expire=store._exptime(ttl), noreply=False
                )
            if written is None or written:  # None: gone meanwhile
                return
            wait.pause()

    def _ttl(self, node: Any, key: str) -> float | None:
        """Seconds until ``key`` expires (a large number for never), None if it is gone."""
        lines = pipelined(node, f"mg {key} t q\r\nmn\r\n".encode())
        if not lines or not lines[0].startswith("HD "):
            return None
        flags = {token[0]: token[1:] for token in lines[0].split()[1:]}
        ttl = int(flags.get("t", "-1"))
        return float(ttl) if ttl >= 0 else float(NEVER)

    def _delete_items(self, items: Iterable[str]) -> None:
        for item in items:
            self.store._node(item).delete(item, noreply=False)


#: what "never expires" is kept as when an item is rewritten: 10 years, the longest lifetime
NEVER = 3650 * 24 * 3600


def _set_item(entries: Entries, handle: str, item: str) -> None:
    if handle in entries:
        entries[handle][2] = item


def _parse(data: bytes | None) -> Entries:
    """An index item's entries; what is not one (corrupt, foreign) reads as none, which
    fails closed: its sessions are no longer admitted."""
    if data is None:
        return {}
    try:
        decoded = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {
        handle: entry
        for handle, entry in decoded.items()
        if _HANDLE.fullmatch(handle)
        and isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], (int, float))
        and isinstance(entry[1], str)
        and isinstance(entry[2], str)
    }


def _dump(entries: Entries) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()
