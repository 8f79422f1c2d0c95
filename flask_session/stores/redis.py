"""The Redis store: one hash per session, for many processes and many machines.

Layout: ``<prefix>{<sid>}`` is a hash of session key -> encoded value, plus a marker
field ``"\\xff"`` (never a UTF-8 key) naming the encoding, so data written in another
format is refused instead of misread (msgpack reads the JSON text ``5`` as 53).
``<prefix>{<sid>}:lock`` holds a lock token with a lease of ``SESSION_LOCK_TIMEOUT``.
The braces are a hash tag: a session's keys share one cluster slot.

Each verb is one round trip: Lua scripts do load+lock(+refresh), save+unlock(+expire),
and increment-unless-locked. Expiry is Redis's own TTL. The client never retries: a
retried increment whose reply was lost would count twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import OutageLog, SessionConfigError, StoreUnavailable
from .base import CleanupReport, IncrResult, Loaded, LockWait, Store

logger = logging.getLogger(__name__)

MARKER = b"\xff"

#: Seconds a waiter waits beyond a lock's lease. Requests queued behind a crashed
#: worker's lock all become free when its lease ends; without the grace, those that
#: queued first would time out at that very moment instead of taking their turn.
LEASE_GRACE = 1.0

# KEYS: data, lock. ARGV: lock token ('' = no lock), lock lease ms, refresh ttl ms ('0' = no).
# Returns nil (no such session), 0 (locked by another request), -1 (not a hash: someone
# else's data) or the hash's fields.
LOAD = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return false end
if kind ~= 'hash' then return -1 end
if ARGV[1] ~= '' and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: data, lock. ARGV: lock token (''), ttl ms, create ('1'/'0'), format, n changed,
# then n field/value pairs, then the deleted fields.
# Returns {exists afterwards (1/0), lock lost (1/0)}.
SAVE = """
local lock_lost = 0
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) else lock_lost = 1 end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] ~= '1' then return {0, lock_lost} end
  redis.call('HSET', KEYS[1], '\\255', ARGV[4])
end
local last_changed = 5 + 2 * tonumber(ARGV[5])
if last_changed > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6, last_changed)) end
if #ARGV > last_changed then redis.call('HDEL', KEYS[1], unpack(ARGV, last_changed + 1, #ARGV)) end
if redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '\\255') == 0 then
  redis.call('DEL', KEYS[1])
  return {0, lock_lost}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, lock_lost}
"""

# KEYS: data, lock. ARGV: field, amount, ttl ms, create ('1'/'0'), format.
# Returns {1, new value, raw _permanent}, {0} no session, {2} locked, {3} not an integer,
# {4} foreign format.
INCR = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[4] ~= '1' then return {0} end
  redis.call('HSET', KEYS[1], '\\255', ARGV[5])
elseif redis.call('HGET', KEYS[1], '\\255') ~= ARGV[5] then
  return {4}
end
local value
if ARGV[5] == 'json' then
  value = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  if type(value) == 'table' then return {3} end
else
  local raw = redis.call('HGET', KEYS[1], ARGV[1])
  local current = 0
  if raw then
    local ok, decoded = pcall(cmsgpack.unpack, raw)
    if not ok or type(decoded) ~= 'number' or decoded ~= math.floor(decoded) then return {3} end
    current = decoded
  end
  value = current + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(value))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, value, redis.call('HGET', KEYS[1], '_permanent')}
"""

# KEYS: data, lock. ARGV: lock token ('').
DELETE = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return redis.call('DEL', KEYS[1])
"""

# KEYS: lock. ARGV: lock token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def client_from_settings(client: Any, url: str | None) -> redis.Redis:
    """The Redis client for the store: ``SESSION_REDIS`` as given, or one made from
    ``SESSION_REDIS_URL``. The one place a client is built; fails loudly, never falls
    back to localhost."""
    if client is not None and url:
        raise SessionConfigError("set SESSION_REDIS or SESSION_REDIS_URL, not both")
    if client is not None:
        _check_client(client)
        return client
    if not url:
        raise SessionConfigError(
            "SESSION_TYPE is 'redis' but neither SESSION_REDIS (a redis.Redis client) nor"
            " SESSION_REDIS_URL (for example redis://127.0.0.1:6379/0) is set"
        )
    try:
        # Options in the URL's query string (?socket_timeout=...) override these.
        return redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_timeout=5
        )
    except ValueError as error:
        raise SessionConfigError(f"SESSION_REDIS_URL {url!r} is not usable: {error}") from error


def _check_client(client: Any) -> None:
    if not isinstance(client, redis.Redis):
        raise SessionConfigError(
            f"SESSION_REDIS must be a redis.Redis client, not {type(client).__name__}"
        )
    if client.get_connection_kwargs().get("decode_responses"):
        raise SessionConfigError(
            "SESSION_REDIS was created with decode_responses=True; session values are"
            " bytes, so create it without that option"
        )
    retry = client.get_retry()
    if retry is not None and retry.get_retries() > 0:
        raise SessionConfigError(
            f"SESSION_REDIS retries failed commands ({retry.get_retries()} times; redis-py"
            " does so by default), and a retried increment whose reply was lost counts"
            " twice. Create it with retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),"
            " or set SESSION_REDIS_URL instead"
        )


class RedisStore(Store):
    name = "redis"

    def __init__(self, *, client: redis.Redis, **common) -> None:
        super().__init__(**common)
        self.redis = client
        self._format = self.codec.name.encode()
        self._lock_ms = str(int(self.lock_timeout * 1000))
        self._load = _Script(client, LOAD)
        self._save = _Script(client, SAVE)
        self._incr = _Script(client, INCR)
        self._delete = _Script(client, DELETE)
        self._release = _Script(client, RELEASE)
        self._outage = OutageLog(logger, "redis session store")

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        keys = self._keys(sid)
        token = secrets.token_hex(16) if lock else ""
        refresh = _ms(refresh_ttl) if refresh_ttl is not None else "0"
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE) if lock else None
        with self._errors():
            while (reply := self._load(keys, [token, self._lock_ms, refresh])) == 0:
                wait.pause()
            if reply is None:
                return None
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
        with self._errors():
            exists, lock_lost = self._save(self._keys(sid), args)
        if lock_lost:
            logger.warning(
                "a request kept its session locked longer than SESSION_LOCK_TIMEOUT (%g s),"
                " so the lock had expired; its changes were merged anyway",
                self.lock_timeout,
            )
        return bool(exists)

    def delete(self, sid: str, *, lock: str | None = None) -> None:
        with self._errors():
            self._delete(self._keys(sid), [lock or ""])

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        args = [key, amount, _ms(ttl), "1" if create else "0", self._format]
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
        with self._errors():
            while (reply := self._incr(self._keys(sid), args))[0] == 2:
                wait.pause()
        status = reply[0]
        if status == 1:
            return IncrResult(int(reply[1]), reply[2] if len(reply) > 2 else None)
        if status == 3:
            raise TypeError(f"session[{key!r}] holds something that is not an int")
        if status == 4:
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
        with self._errors():
            self.redis.ping()

    def _keys(self, sid: str) -> list[str]:
        data = f"{self.key_prefix}{{{sid}}}"
        return [data, data + ":lock"]

    def _decode_fields(self, reply: list[bytes] | int, sid: str) -> dict[str, bytes] | None:
        """The session's values from a LOAD reply, or None (with a warning) if foreign."""
        try:
            if reply == -1:
                raise ValueError("the key holds something other than a hash")
            fields = dict(zip(reply[::2], reply[1::2], strict=True))
            marker = fields.pop(MARKER, None)
            if marker != self._format:
                raise ValueError(f"format marker is {marker!r}")
            return {name.decode(): raw for name, raw in fields.items()}
        except ValueError as error:  # UnicodeDecodeError is a ValueError
            logger.warning(
                "ignoring session %s… in redis: not %s data (%s); the client gets a new session",
                sid[:6],
                self.codec.name,
                error,
            )
            return None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn redis errors into StoreUnavailable, logged once per outage."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            self._outage.failed(error)
            raise StoreUnavailable(
                f"redis is unavailable: {error}", reason="the session store cannot be reached"
            ) from error
        except redis.exceptions.RedisError as error:  # OOM, MISCONF, READONLY replica, ...
            self._outage.failed(error)
            raise StoreUnavailable(
                f"redis refused a session command: {error}",
                reason="the session store refused the request",
            ) from error
        else:
            self._outage.succeeded()


class _Script:
    """A Lua script run with EVALSHA, loaded on first NOSCRIPT.

    Like redis-py's ``register_script``, minus its per-call wrapping (a measurable share
    of a request's CPU). Calling again after NOSCRIPT is safe even for an increment:
    NOSCRIPT means the script did not run.
    """

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return self.client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.client.script_load(self.source)
            return self.client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))
