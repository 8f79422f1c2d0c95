"""The Redis store: one hash per session, for many processes and many machines.

Layout: ``<prefix>{<name>}`` is a hash of session key -> encoded value, plus a marker
field ``"\\xff"`` (never a UTF-8 key) naming the codec that wrote the values. The marker
is authoritative: msgpack would read the JSON text ``5`` as 53, so values are always
decoded with the codec the marker names. A hash written in the other format (a change of
``SESSION_SERIALIZATION_FORMAT``, or a rolling deploy) is read by transcoding its values,
incremented in place in its own format, and converted whole, atomically, before the
first save writes into it, so a hash is never a mix of two formats.
``<prefix>{<name>}:lock`` holds a lock token with a lease of ``SESSION_LOCK_TIMEOUT``.
``<name>`` is the session's at-rest name (:func:`~flask_session.stores.common.at_rest_name`,
a SHA-256 of the prefix and id), never the id: a dump of the server holds no id that
opens a session. The braces are a hash tag: a session's keys share one cluster slot.

Sessions written before ids were hashed (``<prefix>{<sid>}``) are carried over to their
hashed key on first use (only when the hashed key is missing, so a session already
carried over costs nothing more); see ``CLAIM_RAW`` in ``redis_scripts.py``.

Each verb is one round trip in the common case: Lua scripts do load+lock(+refresh),
save+unlock(+expire), and increment-unless-locked. Expiry is Redis's own TTL.

Retries: the client may retry a command whose reply was lost (redis-py does by
default), so every verb is safe to repeat. An increment carries a unique id and the
script records its result under ``<prefix>#{<name>}:incr:<id>`` (beside the session's keys in
its cluster slot, never matching them) for :data:`INCR_RECORD_TTL_MS`, so a
repeat returns the recorded result instead of counting twice; a repeated load finds its
own lock token and keeps the lock; save, delete and release are idempotent.

Refusals (full, read-only, failing to persist, loading, ...) are outages:
:class:`StoreUnavailable` with a reason that says which
(:data:`~flask_session.stores.redis_health.REFUSALS`). Only a value that is genuinely
not an integer is a ``TypeError``.

Sessions written by Flask-Session 0.8 (``<prefix><sid>``, a msgpack or JSON document,
with a TTL) are carried into this layout on first use, keeping their expiry.

A rolling upgrade (``SESSION_08_SERVERS``: 0.8 servers may still serve the store): each
session lives in both layouts. Before each verb, 0.8's copy is compared with the SHA-1
the hash keeps of the copy it last wrote or read (field ``"\\xfe"``): a copy a 0.8
server wrote since replaces the hash's values, a copy a 0.8 server deleted deletes the
session. After each write, the whole session is written to 0.8's key as 0.8 writes it
(one document, the configured format, the session's TTL), unless a later write of ours
or an unread write of 0.8's got there first. 0.8's copy is never deleted but with the
session. Once the setting is off, the first load of a session (or ``flask session
upgrade-08 --finish``, for all at once) reads any last write of a 0.8 server and drops
0.8's copy. 0.8's keys hold the raw id (0.8's servers look sessions up by it): while the
transition lasts, ids are at rest in the clear there, and only there.

Counters (:meth:`RedisStore.counter_incr`) are plain integers at
``<prefix>#counter{<name>}``: ``#`` never appears in a session id, so no session, lock or
0.8 key can ever be a counter's key.

This module holds the verbs; the client is built and checked in ``redis_client.py``,
health and durability (errors, outages, ``ping``, eviction, replicas) are in
``redis_health.py``, and the Lua scripts in ``redis_scripts.py``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import redis
from redis.cluster import RedisCluster

from ..codecs import CODECS, Codec
from ..errors import SessionConfigError, StoreUnavailable
from ..readers import Setting, as_is, boolean, number, text
from .base import CleanupReport, IncrResult, Loaded, Store
from .common import LEASE_GRACE, ErrorGuard, LockWait, at_rest_name, unique_token
from .counters import check_counter_name
from .redis_client import Client, client_from_settings, client_retries, close_client
from .redis_health import (
    MAX_REPLICAS,
    EvictionPolicyCheck,
    ReplicaWait,
    check_topology,
    outage_log_for,
    replica_wait,
    unavailable,
)
from .redis_scripts import (
    ABSORB_08,
    ADOPT,
    CLAIM_RAW,
    CONVERT,
    COUNTER_INCR,
    DELETE,
    DELETE_IF_EQUAL,
    DONE,
    DROP_08,
    FINISH_08,
    FOREIGN,
    GONE,
    INCR,
    LEGACY,
    LOAD,
    LOCKED,
    MARKER,
    MIRROR,
    MIRROR_08,
    MISSING,
    MOVED_RAW,
    NOT_AN_INTEGER,
    OTHER_FORMAT,
    OVERFLOW,
    PROBE,
    READ_LEGACY,
    RELEASE,
    RESTORE_RAW,
    SAVE,
    SNAPSHOT_08,
    STALE,
    SYNC_08,
    USER_BIND,
    USER_FORGET,
    Script,
)
from .upgrade08 import (
    MARKER_FOUND,
    MARKER_NAME,
    PROBE_SECONDS,
    SERVERS_08_AUTO,
    Count08,
    Serves08,
    document_08,
    refuse_finish_while_serving_08,
    serves_08_at_start,
)
from .users import UserSession

if TYPE_CHECKING:
    from ..settings import SessionSettings

logger = logging.getLogger(__name__)

#: How long an increment's result is kept for a repeat of the same call. It must outlast
#: the client's retries (redis-py 8's default ten retries back off for about 5 s in
#: all, plus a socket timeout per attempt); each record costs about 200 bytes of Redis
#: memory for this long.
INCR_RECORD_TTL_MS = 120_000

#: Attempts at converting a hash written in the other format before giving up (each
#: attempt fails only if another request changed the hash in between).
CONVERT_ATTEMPTS = 10

#: the store's settings (``RedisStore.settings``)
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SESSION_REDIS_URL",
        None,
        text(none=True),
        "the server: redis://127.0.0.1:6379/0, redis+cluster://h1:6379,h2:6379 or"
        " redis+sentinel://h1:26379,h2:26379/mymaster/0 (see redis_client.py for the"
        " forms and options); the client retries once on a broken connection",
    ),
    Setting(
        "SESSION_REDIS",
        None,
        as_is,
        "a ready redis.Redis (also Sentinel(...).master_for(...)) or RedisCluster client"
        " instead of a URL, retries included; not with decode_responses",
    ),
    Setting(
        "SESSION_REDIS_ALLOW_EVICTION",
        False,
        boolean,
        "start even though the server's maxmemory-policy can evict keys (anything but"
        " noeviction), accepting that live sessions and counters may vanish",
    ),
    Setting(
        "SESSION_REDIS_MIN_REPLICAS",
        0,
        number(minimum=0, maximum=MAX_REPLICAS, integer=True, what="replicas"),
        "1 or more: writes are acknowledged only once that many replicas confirm them"
        " (WAIT), else StoreUnavailable",
    ),
    Setting(
        "SESSION_REDIS_WAIT_TIMEOUT",
        1,
        number(minimum=0, minimum_inclusive=False, maximum=60, what="seconds"),
        "seconds such a write waits for its replicas",
    ),
)


#: keys a SCAN step looks at (counting sessions, finding Flask-Session 0.8's), and ids
#: classified per round trip
SCAN_BATCH = 1000
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis pattern (MATCH)."""
    return _GLOB_SPECIALS.sub(r"\\\1", text)


class RedisStore(Store, Serves08):
    """Sessions in Redis (module docstring); counters too (``Counters``), the per-user
    index (``UserIndex``), and it counts its sessions (``SessionCount``)."""

    name = "redis"
    settings = SETTINGS
    #: Redis's limit on one value, a hash field here (proto-max-bulk-len, 512 MiB by
    #: default); a session no larger keeps every field within it
    max_session_size = 512 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> RedisStore:
        own = settings.store
        wait = replica_wait(own["SESSION_REDIS_MIN_REPLICAS"], own["SESSION_REDIS_WAIT_TIMEOUT"])
        given = own["SESSION_REDIS"]
        client = client_from_settings(given, own["SESSION_REDIS_URL"])
        try:
            return cls(
                client=client,
                allow_eviction=own["SESSION_REDIS_ALLOW_EVICTION"],
                replica_wait=wait,
                serves_08=settings.fs08_servers,
                **cls.common(settings),
            )
        except BaseException:
            if given is None:  # ours (built from the URL): close it
                close_client(client)
            raise

    def __init__(
        self,
        *,
        client: Client,
        allow_eviction: bool = False,
        replica_wait: ReplicaWait | None = None,
        serves_08: bool | str = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.redis = client
        #: SESSION_08_SERVERS: keep every session current in Flask-Session 0.8's layout too
        #: (resolved below, once the store can be searched, when it is "auto")
        self.serves_08 = False
        if serves_08 is True and isinstance(client, RedisCluster):
            # 0.8's key (prefix + sid) and ours ({sid}) hash to different slots, and the
            # scripts that keep the two in step need both in one script.
            raise SessionConfigError(
                "SESSION_08_SERVERS is True but the redis store is a Redis Cluster, where"
                " Flask-Session 0.8's keys and this package's live in different slots and"
                " cannot be kept in step atomically: upgrade with a cutover (stop every 0.8"
                " server first), or leave SESSION_08_SERVERS False"
            )
        self.allow_eviction = allow_eviction
        self._format = self.codec.name.encode()
        self._lock_ms = str(int(self.lock_timeout * 1000))
        #: SESSION_REDIS_MIN_REPLICAS: writes acknowledged only once replicas have them
        self.replica_wait = replica_wait
        retry = client_retries(client)
        # A record of each increment is only needed when the client may repeat a call.
        self._record_ms = (
            str(INCR_RECORD_TTL_MS).encode()
            if retry is not None and retry.get_retries() > 0
            else b"0"
        )
        #: (seconds, their _ms as bytes) of the last lifetime seen: one value in practice
        self._last_ttl: tuple[float, bytes] = (-1.0, b"")
        self._load = Script(client, LOAD)
        self._save = Script(client, SAVE)
        self._convert = Script(client, CONVERT)
        self._incr = Script(client, INCR)
        self._delete = Script(client, DELETE)
        self._release = Script(client, RELEASE)
        self._read_legacy = Script(client, READ_LEGACY)
        self._adopt = Script(client, ADOPT)
        self._claim_raw = Script(client, CLAIM_RAW)
        self._moved_raw = Script(client, MOVED_RAW)
        self._restore_raw = Script(client, RESTORE_RAW)
        self._delete_if_equal = Script(client, DELETE_IF_EQUAL)
        self._counter_incr = Script(client, COUNTER_INCR)
        self._user_bind = Script(client, USER_BIND)
        self._user_forget = Script(client, USER_FORGET)
        self._probe = Script(client, PROBE)
        self._sync = Script(client, SYNC_08)
        self._absorb = Script(client, ABSORB_08)
        self._drop = Script(client, DROP_08)
        self._snapshot = Script(client, SNAPSHOT_08)
        self._mirror = Script(client, MIRROR_08)
        self._finish = Script(client, FINISH_08)
        self._outage = outage_log_for(client, logger, "redis session store", replica_wait)
        self._eviction = EvictionPolicyCheck(client, allow_eviction=allow_eviction)
        self._error_guard = ErrorGuard(self._translate_error, self._succeeded)
        self._eviction.check(at_start_up=True)
        if isinstance(client, RedisCluster):
            if serves_08 == SERVERS_08_AUTO:
                logger.info(
                    "SESSION_08_SERVERS is 'auto' on a Redis Cluster: no rolling upgrade's"
                    " transition (Flask-Session 0.8's keys and this package's live in"
                    " different slots); any 0.8 session is carried over on first use"
                )
        else:
            self.serves_08 = serves_08_at_start(self, serves_08, self.name)

    # -- sessions --------------------------------------------------------------------

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        keys = self._keys(sid)
        token = secrets.token_hex(16) if lock else ""
        refresh = _ms(refresh_ttl) if refresh_ttl is not None else "0"
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
        with self._errors():
            if self.serves_08:
                self._sync_08(sid, refresh)
            while True:
                reply = self._load(keys, [token, self._lock_ms, refresh])
                if reply == LOCKED:
                    wait.pause()
                    continue
                if isinstance(reply, list) and MIRROR in reply[::2] and not self.serves_08:
                    self._finish_one_08(sid)  # the transition is over: one last read
                    continue  # load again (a repeated load keeps its own lock)
                if reply is None:
                    carried = self._carry_over_raw(sid)
                    if carried is False:  # another request is moving it
                        wait.pause()
                        continue
                    if carried:
                        continue  # a session of the raw-id layout, now at its hashed key
                if reply is None and self.serves_08:
                    if self._sync_08(sid, refresh):
                        continue  # a 0.8 session written meanwhile: now ours too
                    return None
                if reply is None:
                    adopted = self._adopt_legacy(sid, token, refresh)
                    if adopted is False:  # raced with another adopter or locker
                        wait.pause()
                        continue
                    if adopted is None:
                        return None
                    return Loaded(adopted, lock=token or None)
                break
            values = self._decode_fields(reply, sid)
            if values is None:
                if lock:
                    self._release([keys[1]], [token])
                return None
        return Loaded(values, lock=token or None)

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
        args: list[Any] = [lock or "", _ms(ttl), "1" if create else "0", self._format]
        args.append(len(changed))
        for key, raw in changed.items():
            args += (key, raw)
        args.extend(deleted)
        keys = self._keys(sid)
        with self._errors():
            if self.serves_08:
                self._sync_08(sid, "0")  # a 0.8 server's write first: ours merges onto it
            for _ in range(CONVERT_ATTEMPTS):
                reply = self._write(self._save, keys, args)
                if reply[0] != OTHER_FORMAT:
                    break
                self._convert_hash(keys[0], sid, reply[1])
            else:
                raise StoreUnavailable(
                    f"session {sid[:6]}… kept changing while being converted to {self.codec.name}",
                    reason="the session is busy with another request",
                )
        exists, lock_lost = reply
        if exists and self.serves_08:
            with self._errors():
                self._mirror_08(sid)
        if lock_lost:
            logger.warning(
                "a request kept its session locked longer than SESSION_LOCK_TIMEOUT (%g s),"
                " so the lock had expired (or the save was a retry); its changes were merged"
                " anyway",
                self.lock_timeout,
            )
        return bool(exists)

    def delete(self, sid: str, *, lock: str | None = None) -> None:
        with self._errors():
            self._write(self._delete, self._keys(sid), [lock or ""])
            # A 0.8 session, or one of the raw-id layout, not yet carried over must not
            # come back on the next load; nor may the moving key a carry-over's mover
            # that died left behind (it would be restored once its lease ended).
            self.redis.delete(self._legacy_key(sid), *self._raw_keys(sid)[:2])

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        # Built for the one EVALSHA most increments are: one at-rest name (a sha256) for
        # all three keys, and the constant arguments already bytes (redis-py's encoder
        # takes a slower path for each str or int).
        prefix = self.key_prefix
        name = at_rest_name(prefix, sid)
        data = f"{prefix}{{{name}}}"
        # unique_token: os.urandom's system call was 3.6% of a loaded worker's samples
        keys = [data, data + ":lock", f"{prefix}#{{{name}}}:incr:{unique_token()}"]
        args = [
            key,
            str(amount).encode(),
            self._ttl_ms(ttl),
            b"1" if create else b"0",
            self._format,
            self._record_ms,
        ]
        wait: LockWait | None = None  # made at the first wait: most increments never wait
        with self._errors():
            if self.serves_08:
                self._sync_08(sid, "0")  # a 0.8 server's write first: the increment adds to it
            while True:
                reply = self._write(self._incr, keys, args)
                status = reply[0]
                if status == DONE:
                    break
                if wait is None:
                    wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
                if status == LOCKED:
                    wait.pause()
                    continue
                if status == MISSING and not create:
                    carried = self._carry_over_raw(sid)
                    if carried is False:  # another request is moving it
                        wait.pause()
                        continue
                    if carried:
                        continue  # a session of the raw-id layout: increment it now
                if status == MISSING and not create and self.serves_08:
                    break  # _sync_08 found no 0.8 session either
                if status == MISSING and not create:
                    adopted = self._adopt_legacy(sid, "", "0")
                    if adopted is False:  # raced with another adopter: look again
                        wait.pause()
                        continue
                    if adopted is not None:
                        continue  # a 0.8 session was carried over: increment it now
                break
        if status == DONE and self.serves_08:
            with self._errors():
                self._mirror_08(sid)
        if status == DONE:
            permanent = reply[2] if len(reply) > 2 else None
            if permanent is not None and reply[3] != self._format:
                permanent = self._transcode(reply[3], permanent)
            return IncrResult(int(reply[1]), permanent)
        if status == NOT_AN_INTEGER:
            raise TypeError(f"session[{key!r}] holds something that is not an int")
        if status == OVERFLOW:
            raise TypeError(f"session[{key!r}] would overflow a 64-bit integer")
        if status == FOREIGN:
            logger.warning(
                "session data in redis is not %s; the client gets a new session", self.codec.name
            )
        return None

    def release(self, sid: str, lock: str) -> None:
        with self._errors():
            self._release([self._keys(sid)[1]], [lock])

    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        self.ping()
        pruned = self.prune_user_index()
        return CleanupReport(
            index_removed=pruned,
            note="redis expires sessions and locks by itself; removed"
            f" {pruned} per-user index entries of sessions that were gone",
        )

    def ping(self) -> None:
        """A tiny write that leaves nothing behind: refused exactly when a session's is."""
        with self._errors():
            check_topology(self.redis, self._probe_server, f"{self.key_prefix}#ping")

    def close(self) -> None:
        """Close every connection the client holds (cluster nodes and sentinels too)."""
        close_client(self.redis)

    def _probe_server(self, server: redis.Redis, key: str) -> None:
        """One server's health, for ``ping``; run on each server requests write to (the
        one server, sentinel's master, every cluster primary with a key of its slots)."""
        self._probe.run_on(server, [key], [])
        if self.replica_wait is not None:
            self.replica_wait.check_replicas(server)

    def _ttl_ms(self, seconds: float) -> bytes:
        """``_ms(seconds)`` as bytes, remembered for the last value (the app's lifetime:
        the same on nearly every request)."""
        last = self._last_ttl  # one tuple: threads see a matching pair
        if last[0] == seconds:
            return last[1]
        rendered = _ms(seconds).encode()
        self._last_ttl = (seconds, rendered)
        return rendered

    def _write(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script that changes acknowledged data, waiting for replicas if asked
        (SESSION_REDIS_MIN_REPLICAS)."""
        if self.replica_wait is None:
            return script(keys, args)
        return self.replica_wait.run(self.redis, script.sha, script.source, keys, args)

    # -- counters --------------------------------------------------------------------

    def counter_incr(self, name: str) -> int:
        key = self._counter_key(name)
        record = f"{key}:incr:{unique_token()}"
        with self._errors():
            reply = self._write(self._counter_incr, [key, record], [self._record_ms])
        if reply[0] != DONE:
            raise self._not_a_counter(key)
        return int(reply[1])

    def counter_value(self, name: str) -> int:
        key = self._counter_key(name)
        with self._errors():
            try:
                raw = self.redis.get(key)
            except redis.exceptions.ResponseError as error:
                if "WRONGTYPE" in str(error):
                    raise self._not_a_counter(key) from error
                raise
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            raise self._not_a_counter(key) from None

    def counter_reset(self, name: str) -> None:
        with self._errors():
            self.redis.delete(self._counter_key(name))

    # -- counting sessions (SessionCount) ---------------------------------------------

    def count_sessions(self, deadline: float) -> int | None:
        """SCAN for the session hashes, ``<prefix>{*}``, stopping at ``deadline``."""
        pattern = _glob_escape(self.key_prefix) + "{*}"
        options: dict[str, Any] = {"match": pattern, "count": SCAN_BATCH}
        if isinstance(self.redis, redis.RedisCluster):
            options["target_nodes"] = redis.RedisCluster.PRIMARIES  # replicas hold copies
        found = 0
        with self._errors():
            for _key in self.redis.scan_iter(**options):
                found += 1
                if time.monotonic() > deadline:
                    return None
        return found

    def _counter_key(self, name: str) -> str:
        # One naming rule for every store (base.py), which also keeps braces out.
        return f"{self.key_prefix}#counter{{{check_counter_name(name)}}}"

    def _not_a_counter(self, key: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"redis key {key!r} holds something that is not a counter",
            reason="the shared counter holds something that is not a number",
        )

    # -- the per-user index (UserIndex) ---------------------------------------------
    # A user's index is one hash, ``<prefix>#user{<user key>}``: a session's at-rest name
    # (its handle) -> "<bind time>|<label>". Each script touches that one key, and each
    # session is deleted by DELETE, so every step is atomic on every topology (a
    # cluster puts a user's index and their sessions in different slots). A session is
    # deleted before its entry, so an interrupted revoke leaves a stale entry (pruned
    # later), never a live session the index has lost.

    def bind_user(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        index = self._user_index_key(user)
        current = at_rest_name(self.key_prefix, sid)
        with self._errors():
            reply = self._write(self._user_bind, [index], [current, repr(time.time()), label])
        if cap is None:
            return []
        live = self._live_entries(index, _pairs(reply))
        live.sort(key=lambda pair: (pair[1].handle == current, pair[1].bound_at, pair[0]))
        excess = [found for found, _ in live[: max(0, len(live) - cap)]]
        return self._revoke(index, excess) if excess else []

    def unbind_user(self, user: str, sid: str) -> None:
        with self._errors():
            self._write(
                self._user_forget,
                [self._user_index_key(user)],
                [at_rest_name(self.key_prefix, sid)],
            )

    def user_sessions(self, user: str) -> list[UserSession]:
        index = self._user_index_key(user)
        with self._errors():
            entries = self.redis.hgetall(index)
        live = [entry for _, entry in self._live_entries(index, entries)]
        return sorted(live, key=lambda entry: (entry.bound_at, entry.handle))

    def revoke_user_sessions(
        self, user: str, handles: Iterable[str] | None, *, keep: str | None
    ) -> list[str]:
        index = self._user_index_key(user)
        with self._errors():
            bound = [_text(name) for name in self.redis.hkeys(index)]
        wanted = None if handles is None else set(handles)
        targets = []
        for handle in bound:
            if handle != keep and (wanted is None or handle in wanted):
                targets.append(handle)
        return self._revoke(index, targets) if targets else []

    def prune_user_index(self) -> int:
        pattern = f"{self.key_prefix}#user{{*}}"
        removed = 0
        with self._errors():
            for index in self.redis.scan_iter(match=pattern, count=1000):
                entries = self.redis.hgetall(index)
                removed += len(entries) - len(self._live_entries(_text(index), entries))
        return removed

    def _revoke(self, index: str, handles: list[str]) -> list[str]:
        """Delete the sessions (named by handle: their at-rest names), then their
        entries; the handles of those that were live."""
        revoked = []
        with self._errors():
            for handle in handles:
                keys = self._named_keys(handle)
                if self.redis.exists(keys[0]):
                    revoked.append(handle)
                # 0.8's copy, while the transition lasts, goes too: else 0.8's servers,
                # and ours (reading 0.8's writes back), would still serve the session
                legacy = self.redis.hget(keys[0], LEGACY)
                self._write(self._delete, keys, [""])
                if legacy is not None:
                    self.redis.delete(legacy)
            self._write(self._user_forget, [index], handles)
        return revoked

    def _live_entries(self, index: str, entries: dict[Any, Any]) -> list[tuple[str, UserSession]]:
        """(handle, entry) of each entry whose session is live; the others are dropped
        from the index."""
        live, dead = [], []
        with self._errors():
            for name, raw in entries.items():
                handle = _text(name)
                pttl = self.redis.pttl(self._named_keys(handle)[0])
                if pttl == PTTL_MISSING:
                    dead.append(handle)
                    continue
                bound_at, _, label = _text(raw).partition("|")
                expires_in = pttl / 1000 if pttl >= 0 else None
                live.append((handle, UserSession(handle, float(bound_at), label, expires_in)))
            if dead:
                self._write(self._user_forget, [index], dead)
        return live

    def _user_index_key(self, user: str) -> str:
        return f"{self.key_prefix}#user{{{user}}}"

    # -- internals -------------------------------------------------------------------

    def _keys(self, sid: str) -> list[str]:
        """The session's data and lock keys: named by its at-rest name, never its id."""
        return self._named_keys(at_rest_name(self.key_prefix, sid))

    def _named_keys(self, name: str) -> list[str]:
        """The data and lock keys of the session whose at-rest name is ``name``."""
        data = f"{self.key_prefix}{{{name}}}"
        return [data, data + ":lock"]

    def _raw_keys(self, sid: str) -> list[str]:
        """Where a session was kept before ids were hashed at rest: its data key, and the
        moving key and lease of a carry-over in progress (``_carry_over_raw``)."""
        data = f"{self.key_prefix}{{{sid}}}"
        return [data, data + ":moving", data + ":moving:lease"]

    def _carry_over_raw(self, sid: str) -> bool | None:
        """Move a session of the raw-id layout to its hashed key (inside ``_errors``).

        Called only when the hashed key is missing. True if the session is now at its
        hashed key (moved by us, or found there: load again), None if there is no such
        session, False if another request is moving it (wait, then load again).
        """
        token = secrets.token_hex(16)
        raw = self._raw_keys(sid)
        # Not waited for (SESSION_REDIS_MIN_REPLICAS): for a session that is nowhere (the
        # usual miss) it writes nothing, and a claimed session's move ends with two
        # writes that are waited for.
        reply = self._claim_raw(raw, [token, self._lock_ms])
        if reply is None:
            # none, or carried over by another request since this one missed the hashed
            # key (then: load again)
            return True if self.redis.exists(self._keys(sid)[0]) else None
        if reply == LOCKED:
            return False
        dump, pttl = reply
        self._write(self._restore_raw, self._keys(sid)[:1], [max(0, int(pttl)), dump])
        self._write(self._moved_raw, raw[1:], [token])
        logger.info("carried session %s… over to its hashed key", sid[:6])
        return True

    def _legacy_key(self, sid: str) -> str:
        """Where Flask-Session 0.8 kept this session."""
        return self.key_prefix + sid

    def _transcode(self, fmt: bytes, raw: bytes) -> bytes:
        """A value encoded by codec ``fmt``, encoded by ours instead."""
        return self.codec.encode(CODECS[fmt.decode()].decode(raw))

    def _other_codec(self, marker: bytes | None) -> Codec | None:
        name = marker.decode("ascii", "replace") if marker is not None else ""
        return CODECS.get(name) if marker != self._format else None

    def _decode_fields(self, reply: list[bytes] | int, sid: str) -> dict[str, bytes] | None:
        """The session's values from a LOAD reply, in our format; None (with a warning)
        if the data is not a session or cannot be read."""
        try:
            if reply == FOREIGN or not isinstance(reply, list):
                raise ValueError("the key holds something other than a hash")
            fields = dict(zip(reply[::2], reply[1::2], strict=True))
            marker = fields.pop(MARKER, None)
            fields.pop(MIRROR, None)
            fields.pop(LEGACY, None)
            values = {name.decode(): raw for name, raw in fields.items()}
            if marker == self._format:
                return values
            other = self._other_codec(marker)
            if other is None:
                raise ValueError(f"format marker is {marker!r}")
        except ValueError as error:  # UnicodeDecodeError is a ValueError
            logger.warning(
                "ignoring session %s… in redis: not %s data (%s); the client gets a new session",
                sid[:6],
                self.codec.name,
                error,
            )
            return None
        return {
            name: new
            for name, raw in values.items()
            if (new := self._transcoded(other, name, raw, sid)) is not None
        }

    def _transcoded(self, other: Codec, name: str | bytes, raw: bytes, sid: str) -> bytes | None:
        """``raw`` (encoded by ``other``) encoded by our codec; None, with a warning, if it
        cannot be (the key is then dropped from the session)."""
        try:
            return self.codec.encode(other.decode(raw))
        except (TypeError, ValueError, msgspec.DecodeError) as error:
            logger.warning(
                "dropping key %r of session %s… written as %s: it cannot be read as %s: %s",
                name,
                sid[:6],
                other.name,
                self.codec.name,
                error,
            )
            return None

    def _convert_hash(self, key: str, sid: str, reply: list[bytes]) -> None:
        """Rewrite a hash of the other format in ours, if it is still what ``reply`` saw."""
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        marker = fields.pop(MARKER, b"")
        fields.pop(MIRROR, None)  # bookkeeping, not a value: CONVERT leaves it
        fields.pop(LEGACY, None)
        other = self._other_codec(marker)
        if other is None:
            raise StoreUnavailable(
                f"session {sid[:6]}… has an unknown format marker {marker!r}",
                reason="the session store holds data this service cannot read",
            )
        args: list[Any] = [marker, self._format, len(fields)]
        for name, raw in fields.items():
            args += (name, raw, self._transcoded(other, name, raw, sid) or b"")
        self._convert([key], args)

    def _adopt_legacy(
        self, sid: str, token: str, refresh: str
    ) -> dict[str, bytes] | None | Literal[False]:
        """Carry a Flask-Session 0.8 session into our layout (inside ``_errors``).

        Returns its values (now ours, locked with ``token`` if given), None if there is
        no usable 0.8 session, or False if someone else got there first (load again).
        """
        legacy = self._legacy_key(sid)
        found = self._read_legacy([legacy], [])
        if found is None:
            return None
        raw, pttl = found
        values = self._decode_legacy(raw, sid)
        if not values:
            return None
        ttl = refresh if refresh != "0" else str(pttl)
        args: list[Any] = [self._format, ttl, token, self._lock_ms]
        for name, value in values.items():
            args += (name, value)
        if not self._adopt(self._keys(sid), args):
            return False
        self._delete_if_equal([legacy], [raw])
        logger.info("carried session %s… over from Flask-Session 0.8's layout", sid[:6])
        return values

    def _decode_legacy(self, raw: bytes, sid: str) -> dict[str, bytes] | None:
        """0.8's document (msgpack, else JSON: its decoder's order; never pickle), each
        value encoded by our codec; None if it is not a session we can read."""
        for decoder in (msgspec.msgpack.decode, msgspec.json.decode):
            try:
                document = decoder(raw)
                break
            except msgspec.DecodeError:
                continue
        else:
            logger.warning("ignoring Flask-Session 0.8 session %s…: not msgpack or JSON", sid[:6])
            return None
        if not isinstance(document, dict) or not all(isinstance(k, str) for k in document):
            logger.warning("ignoring Flask-Session 0.8 session %s…: not a dict", sid[:6])
            return None
        try:
            return {name: self.codec.encode(value) for name, value in document.items()}
        except TypeError as error:
            logger.warning("ignoring Flask-Session 0.8 session %s…: %s", sid[:6], error)
            return None

    # -- a rolling upgrade from Flask-Session 0.8 ---------------------------------------

    def _sync_08(self, sid: str, refresh: str) -> bool:
        """Bring the hash up to 0.8's copy (inside ``_errors``): a copy a 0.8 server wrote
        since replaces its values, one a 0.8 server deleted deletes the session. True if
        a 0.8 copy was read into the hash."""
        keys = [self._keys(sid)[0], self._legacy_key(sid)]
        absorbed = False
        for _ in range(CONVERT_ATTEMPTS):
            reply = self._sync(keys, [refresh])
            status = reply[0]
            if status == DONE:
                return absorbed
            if status == GONE:
                self._write(self._drop, keys, [reply[1]])
                continue
            assert status == STALE
            document, mirror = reply[1], reply[3]
            values = self._decode_legacy(document, sid)
            if not values:  # unreadable, or empty: ours stays as it is (warned)
                return absorbed
            args: list[Any] = [hashlib.sha1(document).hexdigest(), mirror, self._format]  # noqa: S324
            for name, value in values.items():
                args += (name, value)
            if self._write(self._absorb, keys, args):
                absorbed = True
        raise StoreUnavailable(
            f"session {sid[:6]}… kept changing in both layouts while being read",
            reason="the session is busy with another request",
        )

    def _mirror_08(self, sid: str) -> None:
        """Write the whole session to 0.8's key as 0.8 writes it (inside ``_errors``),
        unless the hash changed since (that write mirrors itself) or 0.8 wrote first."""
        keys = [self._keys(sid)[0], self._legacy_key(sid)]
        snapshot = self._snapshot(keys[:1], [])
        if not snapshot:
            return
        digest, fields = snapshot[0], snapshot[1:]
        document = self._document_of(dict(zip(fields[::2], fields[1::2], strict=True)), sid)
        if document is not None:
            self._write(self._mirror, keys, [digest, document])

    def _document_of(self, fields: dict[bytes, bytes], sid: str) -> bytes | None:
        """The session as Flask-Session 0.8 stores it (:func:`document_08`), from a
        hash's fields; None (with a warning) if it cannot be written so."""
        codec = CODECS.get((fields.pop(MARKER, b"") or b"").decode("ascii", "replace"))
        fields.pop(MIRROR, None)
        fields.pop(LEGACY, None)
        if codec is None:
            return None
        try:
            return document_08({name.decode(): raw for name, raw in fields.items()}, codec)
        except (TypeError, ValueError, msgspec.DecodeError) as error:
            logger.warning(
                "session %s… not written for Flask-Session 0.8's servers: %s", sid[:6], error
            )
            return None

    def _finish_one_08(self, sid: str) -> None:
        """The transition is over: read a last write of a 0.8 server, if any, then drop
        0.8's copy and the hash's MIRROR (inside ``_errors``)."""
        keys = [self._keys(sid)[0], self._legacy_key(sid)]
        for _ in range(CONVERT_ATTEMPTS):
            if self._write(self._finish, keys, []):
                return
            self._sync_08(sid, "0")
        raise StoreUnavailable(
            f"session {sid[:6]}… kept changing in Flask-Session 0.8's layout",
            reason="the session is busy with another request",
        )

    def _sids_08(self) -> Iterator[tuple[str, bool]]:
        """Each session id with a key in Flask-Session 0.8's layout, and whether this
        package holds it too (mirrored)."""
        prefix = self.key_prefix
        pattern = _glob_escape(prefix) + "*"
        batch: list[str] = []

        def classify(sids: list[str]) -> Iterator[tuple[str, bool]]:
            pipe = self.redis.pipeline(transaction=False)
            for sid in sids:
                pipe.type(self._legacy_key(sid))
                pipe.exists(self._keys(sid)[0])
            replies = pipe.execute()
            for sid, kind, ours in zip(sids, replies[::2], replies[1::2], strict=True):
                if kind in (b"string", "string"):
                    yield sid, bool(ours)

        for raw in self.redis.scan_iter(match=pattern, count=SCAN_BATCH):
            rest = (raw.decode() if isinstance(raw, bytes) else raw)[len(prefix) :]
            if not rest or rest[0] in "{#" or ":" in rest or "{" in rest:
                continue  # this package's keys (hashes, locks, counters, records)
            batch.append(rest)
            if len(batch) >= SCAN_BATCH:
                yield from classify(batch)
                batch = []
        if batch:
            yield from classify(batch)

    def count_08(self) -> Count08:
        with self._errors():
            return Count08.of(mirrored for _sid, mirrored in self._sids_08())

    def finish_08(self) -> Count08:
        refuse_finish_while_serving_08(self.serves_08)
        moved = Count08()
        with self._errors():
            for sid, mirrored in list(self._sids_08()):
                if mirrored:
                    self._finish_one_08(sid)
                    moved.mirrored += 1
                elif self._adopt_legacy(sid, "", "0"):
                    moved.not_carried_over += 1
            self.redis.delete(self._marker_key_08())
        return moved

    def holds_08(self) -> str | None:
        """The transition's marker, ``<prefix>:upgrade-08``, or else the first key in
        0.8's layout (a string at ``<prefix><sid>``) a bounded SCAN finds; finding one
        sets the marker. Not on a Redis Cluster (the store never serves 0.8 there)."""
        marker = self._marker_key_08()
        with self._errors():
            if self.redis.exists(marker):
                return MARKER_FOUND
            found = self._first_sid_08(time.monotonic() + PROBE_SECONDS)
            if found is None:
                return None
            self.redis.set(marker, b"1")
        return f"Flask-Session 0.8's session {found[:6]}… (the transition's marker is now set)"

    def _first_sid_08(self, deadline: float) -> str | None:
        """The id of a session in 0.8's layout, or None if the keyspace holds none (or
        the search reached ``deadline``); one SCAN step per round trip."""
        prefix = self.key_prefix
        # not "{" (a hash of ours), "#" (counters, records, user indexes) or ":" (markers)
        pattern = _glob_escape(prefix) + "[^{#:]*"
        cursor = 0
        while True:
            cursor, keys = self.redis.scan(cursor, match=pattern, count=SCAN_BATCH)
            for raw in keys:
                rest = _text(raw)[len(prefix) :]
                if ":" in rest or "{" in rest:
                    continue  # a lock or record of ours
                if self.redis.type(raw) in (b"string", "string"):
                    return rest
            if cursor == 0 or time.monotonic() > deadline:
                return None

    def _marker_key_08(self) -> str:
        return self.key_prefix + MARKER_NAME

    def _errors(self) -> ErrorGuard:
        """Turn redis errors into StoreUnavailable with the reason, logged once per outage."""
        return self._error_guard

    def _translate_error(self, error: BaseException) -> BaseException | None:
        replacement = unavailable(error)
        if replacement is not None:
            self._outage.failed(error)
        return replacement

    def _succeeded(self) -> None:
        self._outage.succeeded()
        if self._eviction.pending:
            self._eviction.check_if_pending()


#: what PTTL answers for a key that does not exist
PTTL_MISSING = -2


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(reply: list[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply from a script (a flat list) as a dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))
