"""The Redis store: one hash per session, for many processes and many machines.

Layout: ``<prefix>{<sid>}`` is a hash of session key -> encoded value, plus a marker
field ``"\\xff"`` (never a UTF-8 key) naming the codec that wrote the values. The marker
is authoritative: msgpack would read the JSON text ``5`` as 53, so values are always
decoded with the codec the marker names. A hash written in the other format (a change of
``SESSION_SERIALIZATION_FORMAT``, or a rolling deploy) is read by transcoding its values,
incremented in place in its own format, and converted whole, atomically, before the
first save writes into it, so a hash is never a mix of two formats.
``<prefix>{<sid>}:lock`` holds a lock token with a lease of ``SESSION_LOCK_TIMEOUT``.
The braces are a hash tag: a session's keys share one cluster slot.

Each verb is one round trip in the common case: Lua scripts do load+lock(+refresh),
save+unlock(+expire), and increment-unless-locked. Expiry is Redis's own TTL.

Retries: the client may retry a command whose reply was lost (redis-py does by
default), so every verb is safe to repeat. An increment carries a unique id and the
script records its result under ``<key>:incr:<id>`` for :data:`INCR_RECORD_TTL_MS`, so a
repeat returns the recorded result instead of counting twice; a repeated load finds its
own lock token and keeps the lock; save, delete and release are idempotent.

Refusals (full, read-only, failing to persist, loading, ...) are outages:
:class:`StoreUnavailable` with a reason that says which (:data:`REFUSALS`). Only a value
that is genuinely not an integer is a ``TypeError``.

Sessions written by Flask-Session 0.8 (``<prefix><sid>``, a msgpack or JSON document,
with a TTL) are carried into this layout on first use, keeping their expiry.

Counters (:meth:`RedisStore.counter_incr`) are plain integers at
``<prefix>#counter{<name>}``: ``#`` never appears in a session id, so no session, lock or
0.8 key can ever be a counter's key.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..codecs import CODECS, Codec
from ..errors import SessionConfigError, StoreUnavailable
from .base import (
    CleanupReport,
    ErrorGuard,
    IncrResult,
    Loaded,
    LockWait,
    Store,
    check_counter_name,
)
from .redis_scripts import (
    ADOPT,
    CONVERT,
    COUNTER_INCR,
    DELETE,
    DELETE_IF_EQUAL,
    DONE,
    FOREIGN,
    INCR,
    LOAD,
    LOCKED,
    MISSING,
    NOT_AN_INTEGER,
    OTHER_FORMAT,
    OVERFLOW,
    PROBE,
    READ_LEGACY,
    RELEASE,
    SAVE,
    Script,
)

# -- topology (h5): cluster / sentinel clients, health, WAIT; see redis_topology.py --
from .redis_topology import (
    TOPOLOGY_ERRORS,
    Client,
    ReplicaWait,
    check_client,
    check_topology,
    client_from_url,
    client_retries,
    close_client,
    is_topology_url,
    outage_log_for,
    topology_error,
)

logger = logging.getLogger(__name__)

MARKER = b"\xff"

#: Seconds a waiter waits beyond a lock's lease. Requests queued behind a crashed
#: worker's lock all become free when its lease ends; without the grace, those that
#: queued first would time out at that very moment instead of taking their turn.
LEASE_GRACE = 1.0

#: How long an increment's result is kept for a repeat of the same call. It must outlast
#: the client's retries (redis-py 8's default ten retries back off for about 5 s in
#: all, plus a socket timeout per attempt); each record costs about 200 bytes of Redis
#: memory for this long.
INCR_RECORD_TTL_MS = 120_000

#: Attempts at converting a hash written in the other format before giving up (each
#: attempt fails only if another request changed the hash in between).
CONVERT_ATTEMPTS = 10

#: The one eviction policy that never removes a live session or counter.
SAFE_EVICTION_POLICY = "noeviction"

#: Retries for a client built from SESSION_REDIS_URL: one, on a broken connection only
#: (a server restart, an idle connection dropped by a firewall). Not on a timeout: a hung
#: server should cost one timeout, not two. Every verb is safe to repeat.
URL_CLIENT_RETRIES = 1

#: Redis error codes (the first word of an error reply) meaning "not now": the server
#: refuses to work, the data is fine. Each maps to (client-safe reason, Retry-After).
REFUSALS: dict[str, tuple[str, int]] = {
    "OOM": ("the session store is full", 5),
    "READONLY": ("the session store is read-only", 2),
    "MISCONF": ("the session store cannot save its data", 5),
    "BUSY": ("the session store is busy", 1),
    "LOADING": ("the session store is loading its data", 2),
    "MASTERDOWN": ("the session store has lost its primary server", 2),
    "NOREPLICAS": ("the session store has too few replicas to accept writes", 2),
    "CLUSTERDOWN": ("the session store cluster is down", 2),
    "TRYAGAIN": ("the session store is moving data", 1),
    "NOPERM": ("the session store denies this application access", 5),
}
#: Reason for any other refusal, and for a store that does not answer at all.
REFUSED = ("the session store refused the request", 1)
UNREACHABLE = ("the session store cannot be reached", 1)
_ERROR_CODE = re.compile(r"(?:^|[\s:-])(" + "|".join(REFUSALS) + r")\b")

# -- the client --------------------------------------------------------------------------


def client_from_settings(client: Any, url: str | None) -> Client:
    """The Redis client for the store: ``SESSION_REDIS`` as given, or one made from
    ``SESSION_REDIS_URL``. The one place a client is built; fails loudly, never falls
    back to localhost."""
    if client is not None and url:
        raise SessionConfigError("set SESSION_REDIS or SESSION_REDIS_URL, not both")
    if client is not None:
        check_client(client)
        return client  # type: ignore[no-any-return]
    if not url:
        raise SessionConfigError(
            "SESSION_TYPE is 'redis' but neither SESSION_REDIS (a redis.Redis client) nor"
            " SESSION_REDIS_URL (for example redis://127.0.0.1:6379/0) is set"
        )
    if is_topology_url(url):  # redis+cluster:// or redis+sentinel:// (h5)
        return client_from_url(url)
    try:
        # Options in the URL's query string (?socket_timeout=...) override these.
        return redis.Redis.from_url(
            url,
            retry=Retry(
                ExponentialBackoff(cap=0.1, base=0.01),
                URL_CLIENT_RETRIES,
                supported_errors=(redis.exceptions.ConnectionError,),
            ),
            socket_connect_timeout=2,
            socket_timeout=5,
        )
    except ValueError as error:
        raise SessionConfigError(f"SESSION_REDIS_URL {url!r} is not usable: {error}") from error


def refusal(error: redis.exceptions.RedisError) -> tuple[str, int]:
    """(client-safe reason, Retry-After seconds) for a Redis error."""
    code = getattr(error, "status_code", None)
    if code in REFUSALS:
        return REFUSALS[code]
    if isinstance(error, redis.exceptions.BusyLoadingError):
        return REFUSALS["LOADING"]
    if isinstance(error, redis.exceptions.ReadOnlyError):
        return REFUSALS["READONLY"]
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        return REFUSALS["OOM"]
    # Errors without a class of their own keep their code in the text (an error raised
    # inside a script may carry the script's context in front of it).
    found = _ERROR_CODE.search(str(error))
    if found:
        return REFUSALS[found.group(1)]
    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return UNREACHABLE
    return REFUSED


# -- the store ---------------------------------------------------------------------------


class RedisStore(Store):
    name = "redis"

    def __init__(
        self,
        *,
        client: Client,
        allow_eviction: bool = False,
        replica_wait: ReplicaWait | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.redis = client
        self.allow_eviction = allow_eviction
        self._format = self.codec.name.encode()
        self._lock_ms = str(int(self.lock_timeout * 1000))
        #: SESSION_REDIS_MIN_REPLICAS: writes acknowledged only once replicas have them
        self.replica_wait = replica_wait
        retry = client_retries(client)
        # A record of each increment is only needed when the client may repeat a call.
        self._record_ms = (
            str(INCR_RECORD_TTL_MS) if retry is not None and retry.get_retries() > 0 else "0"
        )
        self._load = Script(client, LOAD)
        self._save = Script(client, SAVE)
        self._convert = Script(client, CONVERT)
        self._incr = Script(client, INCR)
        self._delete = Script(client, DELETE)
        self._release = Script(client, RELEASE)
        self._read_legacy = Script(client, READ_LEGACY)
        self._adopt = Script(client, ADOPT)
        self._delete_if_equal = Script(client, DELETE_IF_EQUAL)
        self._counter_incr = Script(client, COUNTER_INCR)
        self._probe = Script(client, PROBE)
        self._outage = outage_log_for(client, logger, "redis session store", replica_wait)
        self._policy_unchecked = False
        self._policy_guard = threading.Lock()
        self._error_guard = ErrorGuard(self._translate_error, self._succeeded)
        self._check_eviction_policy(at_start_up=True)

    # -- sessions --------------------------------------------------------------------

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        keys = self._keys(sid)
        token = secrets.token_hex(16) if lock else ""
        refresh = _ms(refresh_ttl) if refresh_ttl is not None else "0"
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
        with self._errors():
            while True:
                reply = self._load(keys, [token, self._lock_ms, refresh])
                if reply == 0:
                    wait.pause()
                    continue
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
            # A 0.8 session not yet carried over must not come back on the next load.
            self.redis.delete(self._legacy_key(sid))

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        keys = self._keys(sid)
        keys.append(f"{keys[0]}:incr:{secrets.token_hex(8)}")
        args = [key, amount, _ms(ttl), "1" if create else "0", self._format, self._record_ms]
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
        with self._errors():
            while True:
                reply = self._write(self._incr, keys, args)
                status = reply[0]
                if status == LOCKED:
                    wait.pause()
                    continue
                if status == MISSING and not create:
                    adopted = self._adopt_legacy(sid, "", "0")
                    if adopted is False:  # raced with another adopter: look again
                        wait.pause()
                        continue
                    if adopted is not None:
                        continue  # a 0.8 session was carried over: increment it now
                break
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
        return CleanupReport(note="redis expires sessions and locks by itself; nothing to remove")

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

    def _write(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script that changes acknowledged data, waiting for replicas if asked
        (SESSION_REDIS_MIN_REPLICAS)."""
        if self.replica_wait is None:
            return script(keys, args)
        return self.replica_wait.run(self.redis, script.sha, script.source, keys, args)

    # -- counters --------------------------------------------------------------------

    def counter_incr(self, name: str) -> int:
        key = self._counter_key(name)
        record = f"{key}:incr:{secrets.token_hex(8)}"
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

    def _counter_key(self, name: str) -> str:
        # One naming rule for every store (base.py), which also keeps braces out.
        return f"{self.key_prefix}#counter{{{check_counter_name(name)}}}"

    def _not_a_counter(self, key: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"redis key {key!r} holds something that is not a counter",
            reason="the shared counter holds something that is not a number",
        )

    # -- internals -------------------------------------------------------------------

    def _keys(self, sid: str) -> list[str]:
        data = f"{self.key_prefix}{{{sid}}}"
        return [data, data + ":lock"]

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
            if reply == -1 or not isinstance(reply, list):
                raise ValueError("the key holds something other than a hash")
            fields = dict(zip(reply[::2], reply[1::2], strict=True))
            marker = fields.pop(MARKER, None)
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

    # -- the server's eviction policy ------------------------------------------------

    def _check_eviction_policy(self, *, at_start_up: bool) -> None:
        """Refuse (at start-up) or log an ERROR for a policy that evicts live sessions.

        An unreachable server at start-up is checked when it first answers.
        """
        try:
            reply = self.redis.config_get("maxmemory*")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self._policy_unchecked = True
            return
        except redis.exceptions.RedisError as error:  # CONFIG renamed or denied (managed)
            logger.warning(
                "could not read the redis server's maxmemory-policy (%s); make sure it is"
                " %r (CONFIG SET maxmemory-policy noeviction, or your provider's parameter"
                " group): any other policy evicts live sessions and counters when memory"
                " runs out",
                error,
                SAFE_EVICTION_POLICY,
            )
            return
        self._policy_unchecked = False
        config = {_text(k): _text(v) for k, v in _as_mapping(reply).items()}
        policy = config.get("maxmemory-policy", SAFE_EVICTION_POLICY)
        if policy == SAFE_EVICTION_POLICY:
            return
        message = (
            f"the redis server's maxmemory-policy is {policy!r} (maxmemory"
            f" {config.get('maxmemory', '?')} bytes): when memory runs out it evicts live"
            " sessions and counters, logging users out and handing out shared numbers"
            f" twice. Set maxmemory-policy {SAFE_EVICTION_POLICY} (CONFIG SET"
            f" maxmemory-policy {SAFE_EVICTION_POLICY}, and in redis.conf); a full store then"
            " answers 503 and loses nothing"
        )
        if self.allow_eviction:
            logger.warning("%s. SESSION_REDIS_ALLOW_EVICTION is on: sessions may be lost", message)
        elif at_start_up:
            raise SessionConfigError(
                f"{message}; or set SESSION_REDIS_ALLOW_EVICTION = True to accept losing them"
            )
        else:
            logger.error("%s (or set SESSION_REDIS_ALLOW_EVICTION = True)", message)

    def _check_policy_once_reachable(self) -> None:
        with self._policy_guard:
            if not self._policy_unchecked:
                return
            self._policy_unchecked = False
            try:
                self._check_eviction_policy(at_start_up=False)
            except redis.exceptions.RedisError as error:
                logger.warning("could not read the redis server's maxmemory-policy: %s", error)

    def _errors(self) -> ErrorGuard:
        """Turn redis errors into StoreUnavailable with the reason, logged once per outage."""
        return self._error_guard

    def _translate_error(self, error: BaseException) -> BaseException | None:
        if isinstance(error, TOPOLOGY_ERRORS):
            # h5: replicas not confirming a write (SESSION_REDIS_MIN_REPLICAS), and a
            # cluster the client cannot use at all (RedisClusterException is not a
            # RedisError).
            self._outage.failed(error)
            return topology_error(error)
        if isinstance(error, redis.exceptions.RedisError):
            self._outage.failed(error)
            reason, retry_after = refusal(error)
            unreachable = (reason, retry_after) == UNREACHABLE
            return StoreUnavailable(
                f"redis is unavailable: {error}"
                if unreachable
                else f"redis refused a session command: {error}",
                reason=reason,
                retry_after=retry_after,
            )
        return None

    def _succeeded(self) -> None:
        self._outage.succeeded()
        if self._policy_unchecked:
            self._check_policy_once_reachable()


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_mapping(reply: Any) -> Mapping[Any, Any]:
    if isinstance(reply, Mapping):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))
