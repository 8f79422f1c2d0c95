"""The memcached store: one item per session, for apps that already run memcached.

Layout: ``<prefix><name>`` holds the whole session as one JSON or msgpack document,
``<name>`` being its at-rest name (:func:`~flask_session.stores.common.at_rest_name`),
never the id. ``<prefix><name>:lock`` is a session's lock, a lease taken with ``add``
(atomic: only one client creates an item) that expires by itself. Counters are
``<prefix>:counter:<name>`` (a name never holds a colon, so no counter is ever a
session).

Flask-Session 0.8 (and this package before ids were hashed) kept a session at
``<prefix><sid>``, the same document. Such an item is carried over on first use, only
when the hashed key is missing: ``gets`` of the old item, ``add`` at the new key (of two
requests carrying it over at once, one adds and the other is refused and reads the new
key), then the old item expired by a ``cas`` (only if nobody wrote it meanwhile). Nothing
of this package writes to an old key, so no update can be lost there. While
``SESSION_08_SERVERS`` is on, items stay at 0.8's key, where 0.8's servers read them (ids
at rest in the clear for as long as the transition lasts).

* Merges use CAS (``gets`` then ``cas``): a save whose item changed meanwhile reads it
  again and merges again; a failed CAS wrote nothing.
* ``incr`` is a CAS of its own, without a lease: one ``gets`` of the session and its
  lock key together (the session first), then a ``cas``: two round trips. If the lock
  key is there, someone holds the session: it waits and reads again. A locker closes
  the gap between an increment's read and its ``cas``: right after taking its lease it
  ``append``s nothing to the session's item, which changes the item's CAS value and
  nothing else, so an increment that read the session before the lease was taken
  fails its ``cas``, reads again and finds the lease. An increment never lands inside
  a locked request's read-modify-write.
* A lease is released by a CAS that expires the item (``exptime -1``) only if it still
  holds our token, so a lease that expired and was taken by another request is left
  alone.

The per-user index (``UserIndex``) is memcacheusers.py's: it fails closed, so a bound
session loads only while its user's index names it (one more ``get``, for bound sessions
only).

What memcached cannot promise (docs/flask_session.md): it evicts items, live sessions
and counters included, when it runs out of memory, and a restart forgets everything;
expiry has whole-second resolution.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pymemcache.client.base import Client, PooledClient  # type: ignore[import-untyped]
from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]
from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from ..codecs import DecodeError
from ..errors import OutageLog, SessionConfigError, StoreUnavailable, UnstorableValue
from ..readers import Setting, as_is
from .base import PERMANENT_KEY, USER_KEY, CleanupReport, IncrResult, Loaded, Store
from .common import (
    LEASE_GRACE,
    ErrorGuard,
    LockWait,
    at_rest_name,
    check_key_length,
    decode_int,
    is_at_rest_name,
)
from .counters import check_counter_name
from .documents import decode_document
from .memcacheusers import MemcachedUserIndex
from .memcachewire import Checkout, get_values, store, touch
from .upgrade08 import (
    MARKER_NAME,
    PROBE_SECONDS,
    SERVERS_08_AUTO,
    SharedLayout08,
    document_08,
    serves_08_at_start,
)
from .users import KeptUserIndex

if TYPE_CHECKING:
    from ..settings import SessionSettings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 11211
CONNECT_TIMEOUT = 2.0  # seconds
IO_TIMEOUT = 5.0
#: memcached reads an expiry above 30 days as a Unix time
RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600
EXPIRE_NOW = -1
#: memcached's limit on a key, in bytes
KEY_LENGTH_LIMIT = 250
LOCK_SUFFIX = ":lock"
_LOCK_SUFFIX = LOCK_SUFFIX.encode()
#: what memcached's text protocol takes in a key (the store writes its commands itself,
#: memcachewire.py): printable ASCII without spaces
_KEY_TEXT = re.compile(r"[!-~]*")
#: what memcached answers to an item over its limit ("SERVER_ERROR object too large for
#: cache"; "out of memory storing object" is an outage: the cache is full)
TOO_LARGE = "too large"
#: memcached's default item size limit (``-I 1m``)
MEMCACHED_ITEM_SIZE_MAX = 1024 * 1024
#: bytes of an item that are not the session document: header, key, framing
ITEM_OVERHEAD_ROOM = 1024


def servers_from_config(config: Any) -> list[tuple[str, int]]:
    """The servers named by ``SESSION_MEMCACHED`` (a pymemcache client) or
    ``SESSION_MEMCACHED_SERVERS`` ("host:port", comma-separated)."""
    client = config.get("SESSION_MEMCACHED")
    text = config.get("SESSION_MEMCACHED_SERVERS")
    if client is not None and text:
        raise SessionConfigError("set SESSION_MEMCACHED or SESSION_MEMCACHED_SERVERS, not both")
    if client is not None:
        return _servers_of_client(client)
    if not text:
        raise SessionConfigError(
            "SESSION_TYPE is 'memcached' but neither SESSION_MEMCACHED_SERVERS (for example"
            " 127.0.0.1:11211) nor SESSION_MEMCACHED (a pymemcache client) is set"
        )
    if isinstance(text, (list, tuple)):
        text = ",".join(str(item) for item in text)
    if not isinstance(text, str):
        raise SessionConfigError(f"SESSION_MEMCACHED_SERVERS must be text, not {text!r}")
    servers = [_parse_server(item.strip()) for item in text.split(",") if item.strip()]
    if not servers:
        raise SessionConfigError(
            f"SESSION_MEMCACHED_SERVERS is {text!r}, which names no server; write"
            " host:port, e.g. 127.0.0.1:11211"
        )
    return servers


def _parse_server(item: str) -> tuple[str, int]:
    host, colon, port_text = item.rpartition(":")
    if not colon:  # "host" alone: the default port
        host, port_text = item, str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise SessionConfigError(
            f"SESSION_MEMCACHED_SERVERS has {item!r}; write host:port, e.g. 127.0.0.1:11211"
        )
    return host.strip("[]"), port


def _servers_of_client(client: Any) -> list[tuple[str, int]]:
    if isinstance(client, HashClient):
        return [_parse_server(name) for name in client.clients]
    if isinstance(client, (Client, PooledClient)):
        server = client.server
        if isinstance(server, str):
            return [_parse_server(server)]
        return [(str(server[0]), int(server[1]))]
    raise SessionConfigError(
        "SESSION_MEMCACHED must be a pymemcache client (Client, PooledClient or"
        f" HashClient), not {type(client).__name__}; or set SESSION_MEMCACHED_SERVERS"
    )


class MemcachedStore(Store, SharedLayout08, KeptUserIndex):
    """Sessions in memcached. Each server gets a thread-safe pool of connections; the
    store builds them itself (also from a ``SESSION_MEMCACHED`` client, whose servers
    it uses) so every command waits for its reply and nothing is retried or silently
    skipped: a server that is down is a 503 for the sessions it holds, never an empty
    session."""

    name = "memcached"
    #: memcached's item limit (``-I``, 1 MiB unless the server is started with more)
    #: less room for an item's own overhead: its header and key (measured on memcached
    #: 1.6: the largest value it takes is the limit less 59 bytes less the key, at most
    #: 250 bytes) and the document's framing. A server started with a lower ``-I`` refuses
    #: smaller sessions: that is reported as UnstorableValue too (see ``save``).
    max_session_size = MEMCACHED_ITEM_SIZE_MAX - ITEM_OVERHEAD_ROOM
    settings = (
        Setting(
            "SESSION_MEMCACHED_SERVERS",
            None,
            as_is,  # text or a list; parsed (and refused, naming the key) by from_settings
            "the servers, '127.0.0.1:11211', comma-separated for several (sessions are"
            " spread over them by rendezvous hashing)",
        ),
        Setting(
            "SESSION_MEMCACHED",
            None,
            as_is,
            "instead (as in Flask-Session 0.8): a pymemcache Client, PooledClient or"
            " HashClient, whose servers the store uses with pools of its own",
        ),
    )

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> MemcachedStore:
        check_key_length(settings, KEY_LENGTH_LIMIT - len(LOCK_SUFFIX), "a memcached key")
        return cls(
            servers=servers_from_config(settings.store),
            serves_08=settings.fs08_servers,
            **cls.common(settings),
        )

    def __init__(
        self, *, servers: list[tuple[str, int]], serves_08: bool | str = False, **common: Any
    ) -> None:
        super().__init__(**common)
        if not _KEY_TEXT.fullmatch(self.key_prefix):
            raise SessionConfigError(
                f"SESSION_KEY_PREFIX is {self.key_prefix!r}; a memcached key holds printable"
                " ASCII characters without spaces only"
            )
        self.servers = servers
        #: SESSION_08_SERVERS: documents written as Flask-Session 0.8 writes them
        #: (resolved at the end, once the servers can be asked, when it is "auto")
        self.serves_08 = False
        self._clients = {
            f"{host}:{port}": PooledClient(
                (host, port),
                connect_timeout=CONNECT_TIMEOUT,
                timeout=IO_TIMEOUT,
                no_delay=True,
                default_noreply=False,
            )
            for host, port in servers
        }
        self._hash = RendezvousHash(list(self._clients))
        #: the one server, when there is one: every key is its, without hashing the key
        #: (pymemcache's rendezvous hash is murmur3 in pure Python, per server, per call)
        self._only: PooledClient | None = (
            next(iter(self._clients.values())) if len(self._clients) == 1 else None
        )
        self._lease = math.ceil(self.lock_timeout) + 1  # whole seconds, never shorter
        where = ", ".join(self._clients)
        self._outage = OutageLog(logger, f"memcached session store ({where})")
        self._error_guard = ErrorGuard(self._translate_error, self._outage.succeeded)
        self._users: MemcachedUserIndex = MemcachedUserIndex(self)
        self.serves_08 = serves_08_at_start(self, serves_08, self.name)
        if serves_08 == SERVERS_08_AUTO:
            # the search's connections: a store opens none until it serves (the pools
            # open them again on first use)
            self.close()

    # -- the store verbs ---------------------------------------------------------------

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        key = self._key(sid)
        with self._errors():
            node = self._node(key)
            token = None
            if lock:
                token = self._take_lease(node, key, "the session")
                # The CAS bump (module docstring): an increment that read the session
                # before our lease fails its cas. NOT_STORED: there is no such session,
                # and no lease is kept for one (strict ids).
                if not node.append(key, b"", noreply=False) and not (
                    # nothing at the hashed key: carry a raw-id layout's item over
                    self._carry_over_raw(sid) and node.append(key, b"", noreply=False)
                ):
                    self._drop_lease(node, key, token)
                    return None
            name = key.encode()
            read = b"get %s\r\n" % name
            with Checkout(node) as client:
                data = get_values(client, read).get(name, _MISS)[0]
                if data is None and not lock and self._carry_over_raw(sid):
                    data = get_values(client, read).get(name, _MISS)[0]
                values = self._decode(data, sid) if data is not None else None
                if values is not None and not self._admitted(sid, values):
                    values = None  # revoked, or its user's index is gone: fail closed
                if values is not None and refresh_ttl is not None:
                    touch(client, name, _expiry(refresh_ttl))
            if values is None:
                if token is not None:
                    self._drop_lease(node, key, token)
                return None
        return Loaded(values, lock=token)

    def save(
        self,
        sid: str,
        changed: dict[str, bytes],
        deleted: Iterable[str],
        *,
        ttl: float,
        create: bool,
        lock: str | None = None,
    ) -> bool:
        key = self._key(sid)
        deleted = list(deleted)
        with self._errors():
            node = self._node(key)
            try:
                return self._merge(
                    node, key, sid, ttl, create, lambda v: v.update(changed), deleted
                )
            finally:
                if lock is not None and not self._drop_lease(node, key, lock):
                    logger.warning(
                        "a request kept its session locked longer than SESSION_LOCK_TIMEOUT"
                        " (%g s), so the lock had expired; its changes were merged anyway",
                        self.lock_timeout,
                    )

    def delete(self, sid: str, *, lock: str | None = None) -> None:
        key = self._key(sid)
        with self._errors():
            node = self._node(key)
            node.delete(key, noreply=False)
            if lock is not None:
                self._drop_lease(node, key, lock)

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        item = self._key(sid)
        name = item.encode()
        lock_name = name + _LOCK_SUFFIX
        # The session first, its lock key second, in one command: memcached reads them in
        # that order, so a lock taken after our read of the lock key was taken after our
        # read of the session, and the locker's CAS bump makes our cas fail (module
        # docstring).
        read = b"gets %s %s\r\n" % (name, lock_name)
        wait: LockWait | None = None
        with self._errors():
            node = self._node(item)
            while True:
                # One connection for the gets and the cas (memcachewire.py).
                with Checkout(node) as client:
                    found = get_values(client, read)
                    if name not in found and not create:
                        step = _MISSING
                    elif lock_name in found:
                        step = _LOCKED  # another request holds the session
                    else:
                        data, cas = found.get(name, _MISS)
                        values = self._decode(data, sid) if data is not None else None
                        if values is not None and not self._admitted(sid, values):
                            values = None  # revoked, or its user's index is gone: fail closed
                        if values is None:
                            if not create:
                                return None
                            values = {}
                        new_value = decode_int(self.codec, values.get(key), key) + amount
                        values[key] = self.codec.encode(new_value)
                        if self._write(client, name, values, data, cas, ttl):
                            return IncrResult(new_value, values.get(PERMANENT_KEY))
                        step = _LOST
                if step == _MISSING:
                    if self._carry_over_raw(sid):  # a raw-id layout's item, moved
                        continue
                    return None
                if wait is None:
                    wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
                if step == _LOCKED:  # wait, and read again
                    wait.pause()
                # _LOST: someone wrote the session between our gets and our cas: read
                # again at once, for at most SESSION_LOCK_TIMEOUT (like a lock wait). No
                # pause: the increments of one busy session are serialised by the item's
                # CAS anyway, and a jittered pause here measured 5-10% fewer increments per
                # second on one cookie (bench/run --scenarios contention), p99 no better.
                elif wait.remaining() <= 0:
                    wait.give_up()

    def release(self, sid: str, lock: str) -> None:
        key = self._key(sid)
        with self._errors():
            self._drop_lease(self._node(key), key, lock)

    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        self.ping()
        return CleanupReport(
            note="memcached expires sessions and locks by itself; nothing to remove (each"
            " user's index drops its stale entries when it is next used)"
        )

    def ping(self) -> None:
        with self._errors():
            for node in self._clients.values():
                # A write (a full memcached refuses it), removed again at once.
                node.set(self.key_prefix + ":ping", b"1", expire=1, noreply=False)
                node.delete(self.key_prefix + ":ping", noreply=False)

    def close(self) -> None:
        for node in self._clients.values():
            node.close()

    # -- store-wide counters -----------------------------------------------------------

    def counter_incr(self, name: str) -> int:
        key = self._counter_key(name)
        with self._errors():
            node = self._node(key)
            while True:
                # incr on a missing item changes nothing and says so; add creates it
                # only if nobody else did. Neither can count twice.
                value = node.incr(key, 1, noreply=False)
                if value is not None:
                    return int(value)
                if node.add(key, b"1", expire=0, noreply=False):
                    return 1

    def counter_value(self, name: str) -> int:
        key = self._counter_key(name)
        with self._errors():
            raw = self._node(key).get(key)
        return int(raw) if raw is not None else 0

    def counter_reset(self, name: str) -> None:
        key = self._counter_key(name)
        with self._errors():
            self._node(key).delete(key, noreply=False)

    # -- helpers -----------------------------------------------------------------------

    def _key(self, sid: str) -> str:
        """The key of ``sid``'s item: ``<prefix><at-rest name>``; while Flask-Session
        0.8's servers may read the store (``SESSION_08_SERVERS``), 0.8's ``<prefix><sid>``."""
        if self.serves_08:
            if not _KEY_TEXT.fullmatch(sid):  # the prefix was checked at start-up
                raise ValueError(f"not a session id: {sid!r}")
            return self.key_prefix + sid
        return self.key_prefix + at_rest_name(self.key_prefix, sid)

    def _carry_over_raw(self, sid: str) -> bool:
        """Move ``sid``'s item from the raw-id key to its hashed key, keeping its expiry
        (module docstring); called only when the hashed key is missing. True if the
        session is now at its hashed key (moved by this request or another)."""
        if self.serves_08:
            return False
        old, new = self.key_prefix + sid, self._key(sid)
        old_node = self._node(old)
        data, cas = old_node.gets(old)
        expire = _remaining_expiry(old_node, old) if data is not None else None
        if data is None or expire is None:
            # none, or carried over by another request since this one missed the new key
            return self._node(new).get(new) is not None
        if self._node(new).add(new, data, expire=expire, noreply=False):
            old_node.cas(old, b"", cas, expire=EXPIRE_NOW, noreply=False)
            logger.info("carried session %s… over to its hashed key", sid[:6])
        return True  # added by us, or by another request carrying it over at once

    def _counter_key(self, name: str) -> str:
        check_counter_name(name)  # ValueError for a name some store could not hold
        return f"{self.key_prefix}:counter:{name}"

    # -- the rolling upgrade's marker (SharedLayout08): an item that never expires -------
    # memcached may evict it like any item: then the next server to start searches again
    # (and, finding live sessions, takes them for 0.8's: the docs say to end the
    # transition with SESSION_08_SERVERS = False, which never searches).

    def _marker_08(self) -> int | None:
        key = self._marker_key_08()
        with self._errors():
            value = self._node(key).get(key)
        return None if value is None else int(value)

    def _add_marker_08(self, state: int) -> int:
        key = self._marker_key_08()
        with self._errors():
            node = self._node(key)
            node.add(key, str(state).encode(), expire=0, noreply=False)
            value = node.get(key)
        return state if value is None else int(value)

    def _set_marker_08(self, state: int) -> None:
        key = self._marker_key_08()
        with self._errors():
            self._node(key).set(key, str(state).encode(), expire=0, noreply=False)

    def _first_session_08(self) -> bool:
        """memcached lists no keys cheaply: each server's ``lru_crawler metadump all``
        is read until a live session item of this key prefix keyed by a raw id (not an
        at-rest name) shows (or it ends, or
        :data:`PROBE_SECONDS` pass). A server without the LRU crawler says so in the
        log and counts as holding none."""
        deadline = time.monotonic() + PROBE_SECONDS
        with self._errors():
            return any(self._dump_shows_session(server, deadline) for server in self.servers)

    def _dump_shows_session(self, server: tuple[str, int], deadline: float) -> bool:
        prefix, now = self.key_prefix, time.time()
        with socket.create_connection(server, timeout=CONNECT_TIMEOUT) as connection:
            connection.settimeout(IO_TIMEOUT)
            connection.sendall(b"lru_crawler metadump all\r\n")
            pending = b""
            while time.monotonic() < deadline:
                chunk = connection.recv(1 << 16)
                if not chunk:
                    return False
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    text = line.rstrip(b"\r").decode("ascii", "replace")
                    if text == "END":
                        return False
                    if not text.startswith("key="):  # ERROR, BUSY ...: no listing
                        logger.warning(
                            "memcached %s:%d cannot list its keys for SESSION_08_SERVERS"
                            " 'auto' (%s): taken as holding no Flask-Session 0.8 session",
                            *server,
                            text,
                        )
                        return False
                    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
                    key = unquote(fields.get("key", ""))
                    rest = key[len(prefix) :] if key.startswith(prefix) else ""
                    expires = int(fields.get("exp", "-1"))
                    raw = rest and ":" not in rest and not is_at_rest_name(rest)
                    if raw and (expires < 0 or expires > now):
                        return True
        return False

    def _marker_key_08(self) -> str:
        # a session id never holds a colon, and counters are <prefix>:counter:<name>
        return self.key_prefix + MARKER_NAME

    def _node(self, key: str) -> PooledClient:
        if self._only is not None:
            return self._only
        return self._clients[self._hash.get_node(key)]

    def _admitted(self, sid: str, values: dict[str, bytes]) -> bool:
        """Whether session ``sid`` (its decoded ``values``) may be served: unbound, or
        named by its user's index (memcacheusers.py: the index fails closed)."""
        return USER_KEY not in values or self._users.admits(sid, values)

    def _document(self, values: dict[str, bytes]) -> bytes:
        """The item a session's values are stored as."""
        if self.serves_08:  # 0.8's servers read this item too
            return document_08(values, self.codec)
        return self.codec.encode_document(values)

    @staticmethod
    def _exptime(ttl: float) -> int:
        return _expiry(ttl)

    def _merge(
        self,
        node: PooledClient,
        key: str,
        sid: str,
        ttl: float,
        create: bool,
        change: Any,
        deleted: Iterable[str],
    ) -> bool:
        """Read-modify-write the session with CAS until no one wrote in between.

        ``change(values)`` edits the values in place; ``deleted`` keys are removed.
        Returns whether the session exists afterwards.
        """
        name = key.encode()
        read = b"gets %s\r\n" % name
        while True:
            with Checkout(node) as client:  # one connection for the gets and the cas
                data, cas = get_values(client, read).get(name, _MISS)
                values = self._decode(data, sid) if data is not None else None
                if values is None:
                    if not create:
                        return False
                    values = {}
                change(values)
                for gone in deleted:
                    values.pop(gone, None)
                if not values:
                    if data is not None:
                        store(client, b"cas", name, b"", EXPIRE_NOW, cas)
                    return False
                if self._write(client, name, values, data, cas, ttl):
                    return True

    def _write(
        self,
        client: Any,
        name: bytes,
        values: dict[str, bytes],
        data: bytes | None,
        cas: bytes,
        ttl: float,
    ) -> bool:
        """Store ``values`` as the session's document at key ``name``, on a checked-out
        connection: ``add`` if there was no item (``data`` None), else ``cas`` against
        the ``gets`` that read ``data``. False if someone wrote the item in between
        (nothing was written)."""
        document = self._document(values)
        try:
            if data is None:
                return bool(store(client, b"add", name, document, _expiry(ttl)))
            return bool(store(client, b"cas", name, document, _expiry(ttl), cas))
        except MemcacheServerError as error:
            if TOO_LARGE not in str(error):
                raise
            # The server's item limit (-I) is lower than max_session_size assumes:
            # the app's value, not an outage. Nothing was written.
            raise UnstorableValue(
                f"session[{_largest(values)!r}] cannot be stored: the session document"
                f" is {len(document):,} bytes and memcached refused it as larger than"
                " its item size limit (memcached -I); the stored session is unchanged"
            ) from None

    def _take_lease(self, node: PooledClient, key: str, what: str) -> str:
        token = secrets.token_hex(16)
        wait = LockWait(self.lock_timeout, what, grace=LEASE_GRACE)
        while not node.add(key + LOCK_SUFFIX, token.encode(), expire=self._lease, noreply=False):
            wait.pause()
        return token

    def _drop_lease(self, node: PooledClient, key: str, token: str) -> bool:
        """End our lease; False if it was no longer ours."""
        name = (key + LOCK_SUFFIX).encode()
        with Checkout(node) as client:
            held, cas = get_values(client, b"gets %s\r\n" % name).get(name, _MISS)
            if held != token.encode():
                return False
            return bool(store(client, b"cas", name, b"", EXPIRE_NOW, cas))

    def _decode(self, data: bytes, sid: str) -> dict[str, bytes] | None:
        try:
            return decode_document(data, self.codec)
        except (DecodeError, TypeError) as error:
            logger.warning(
                "ignoring session %s… in memcached: not %s data (%s); the client gets a new"
                " session",
                sid[:6],
                self.codec.name,
                error,
            )
            return None

    def _errors(self) -> ErrorGuard:
        """Turn client errors into StoreUnavailable, logged once per outage."""
        return self._error_guard

    def _translate_error(self, error: BaseException) -> BaseException | None:
        if isinstance(error, (OSError, MemcacheUnexpectedCloseError)):
            self._outage.failed(error)
            return StoreUnavailable(
                f"memcached is unavailable: {error!r}",
                reason="the session store cannot be reached",
            )
        if isinstance(error, MemcacheError):  # out of memory, item too large, ...
            self._outage.failed(error)
            return StoreUnavailable(
                f"memcached refused a session command: {error}",
                reason="the session store refused the request",
            )
        return None


#: what a ``get``/``gets`` reply lacks a key as: no value, no cas unique
_MISS: tuple[None, bytes] = (None, b"")
#: how an increment's read ended when it wrote nothing (``incr``)
_MISSING, _LOCKED, _LOST = "missing", "locked", "lost"


def _remaining_expiry(node: PooledClient, key: str) -> int | None:
    """The expiry to give a copy of item ``key`` so that it ends when the item does (0:
    never), read with the meta command ``mg <key> t``; None if the item is gone."""
    reply = node.raw_command(f"mg {key} t").decode("ascii", "replace").split()
    if not reply or reply[0] != "HD":
        return None
    for flag in reply[1:]:
        if flag.startswith("t"):
            seconds = int(flag[1:])
            return 0 if seconds < 0 else _expiry(max(1, seconds))
    return None


def _largest(values: dict[str, bytes]) -> str:
    """The key holding the largest value (what a size refusal names)."""
    return max(values, key=lambda name: len(values[name]))


def _expiry(ttl: float) -> int:
    """memcached's expiry for ``ttl`` seconds: whole seconds (rounded up), and above 30
    days a Unix time, as memcached reads larger numbers as one."""
    seconds = max(1, math.ceil(ttl))
    if seconds > RELATIVE_EXPIRY_LIMIT:
        return int(time.time()) + seconds
    return seconds
