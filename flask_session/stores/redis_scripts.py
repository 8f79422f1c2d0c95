"""The Redis store's Lua scripts, and how they are run.

Each verb of :class:`~flask_session.stores.redis.RedisStore` is one of these scripts, so
that load+lock, save+unlock and increment-unless-locked are one round trip each, and
atomic. Every script touches only keys that share one hash tag (the session's at-rest
name, a raw id being carried over, or the counter's), so each runs on one cluster node.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from .redis_client import Client

#: The hash field naming the codec that wrote a session's values (never a UTF-8 key).
MARKER = b"\xff"
#: The hash field holding the SHA-1 (hex) of the Flask-Session 0.8 document last written
#: for 0.8's servers or read from them (``SESSION_08_SERVERS``): 0.8's key holding other
#: bytes means a 0.8 server wrote the session since. Never a UTF-8 key either.
MIRROR = b"\xfe"
#: The hash field naming the session's Flask-Session 0.8 key (which holds the raw id),
#: kept beside MIRROR, so that a session deleted by its at-rest name alone (revoked
#: through the per-user index) loses 0.8's copy too. Dropped with MIRROR when the
#: transition ends: the only place an id is at rest in this package's own keys.
LEGACY = b"\xfd"


class Status(IntEnum):
    """What a script's reply starts with. Every script defines the same names as Lua
    locals (:func:`_lua`), so Python and Lua spell each status alike."""

    DONE = 0
    MISSING = 1
    LOCKED = 2
    NOT_AN_INTEGER = 3
    FOREIGN = 4
    OVERFLOW = 5
    OTHER_FORMAT = 6
    #: 0.8's copy of the session holds what a 0.8 server wrote since (SYNC_08)
    STALE = 7
    #: 0.8's copy was deleted (a 0.8 server cleared the session) or expired (SYNC_08)
    GONE = 8


DONE, MISSING, LOCKED, NOT_AN_INTEGER, FOREIGN, OVERFLOW, OTHER_FORMAT, STALE, GONE = Status

#: Lua definitions put in front of every script: the statuses and the marker fields.
_PRELUDE = "".join(f"local {status.name} = {status.value}\n" for status in Status) + (
    f"local MARKER = '\\{MARKER[0]}'\nlocal MIRROR = '\\{MIRROR[0]}'\n"
    f"local LEGACY = '\\{LEGACY[0]}'\n"
)


def _lua(body: str) -> str:
    """A script's source: the shared definitions, then ``body``."""
    return _PRELUDE + body


# KEYS: data, lock. ARGV: lock token ('' = no lock), lock lease ms, refresh ttl ms ('0' = no).
# Returns nil (no such session), LOCKED (by another request), FOREIGN (not a hash: someone
# else's data) or the hash's fields.
LOAD = _lua("""
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return false end
if kind ~= 'hash' then return FOREIGN end
if ARGV[1] ~= '' and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  -- A repeat of a call whose reply was lost finds its own token: it holds the lock.
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return LOCKED end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
-- Best effort: a server refusing writes (read-only, failing to persist) still serves reads.
if ARGV[3] ~= '0' then redis.pcall('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
""")

# KEYS: data, lock. ARGV: lock token (''), ttl ms, create ('1'/'0'), format, n changed,
# then n field/value pairs, then the deleted fields.
# Returns {exists afterwards (1/0), lock lost (1/0)}, or {OTHER_FORMAT, fields} (nothing
# done, lock kept) when the hash holds the other format and must be converted first.
SAVE = _lua("""
local marker = redis.call('HGET', KEYS[1], MARKER)
if marker and marker ~= ARGV[4] then return {OTHER_FORMAT, redis.call('HGETALL', KEYS[1])} end
local lock_lost = 0
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) else lock_lost = 1 end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] ~= '1' then return {0, lock_lost} end
  redis.call('HSET', KEYS[1], MARKER, ARGV[4])
end
local last_changed = 5 + 2 * tonumber(ARGV[5])
if last_changed > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6, last_changed)) end
if #ARGV > last_changed then redis.call('HDEL', KEYS[1], unpack(ARGV, last_changed + 1, #ARGV)) end
local bookkeeping = redis.call('HEXISTS', KEYS[1], MARKER) + redis.call('HEXISTS', KEYS[1], MIRROR)
  + redis.call('HEXISTS', KEYS[1], LEGACY)
if redis.call('HLEN', KEYS[1]) - bookkeeping == 0 then
  redis.call('DEL', KEYS[1])
  return {0, lock_lost}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, lock_lost}
""")

# KEYS: data. ARGV: from format, to format, n, then n triples field/old value/new value
# (new '' = drop the field: it could not be transcoded). Rewrites the whole hash in the
# new format if it still holds exactly the old values; keeps its TTL.
# Returns 1 (converted) or 0 (the hash changed meanwhile, or is gone).
CONVERT = _lua("""
if redis.call('HGET', KEYS[1], MARKER) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local extra = redis.call('HEXISTS', KEYS[1], MIRROR) + redis.call('HEXISTS', KEYS[1], LEGACY)
if redis.call('HLEN', KEYS[1]) ~= n + 1 + extra then return 0 end
for i = 0, n - 1 do
  if redis.call('HGET', KEYS[1], ARGV[4 + 3 * i]) ~= ARGV[5 + 3 * i] then return 0 end
end
for i = 0, n - 1 do
  if ARGV[6 + 3 * i] == '' then
    redis.call('HDEL', KEYS[1], ARGV[4 + 3 * i])
  else
    redis.call('HSET', KEYS[1], ARGV[4 + 3 * i], ARGV[6 + 3 * i])
  end
end
redis.call('HSET', KEYS[1], MARKER, ARGV[2])
return 1
""")

# KEYS: data, lock, record. ARGV: field, amount, ttl ms, create ('1'/'0'), format,
# record ttl ms ('0' = keep no record).
# Returns {DONE, new value, raw _permanent, format of the hash}, {MISSING}, {LOCKED},
# {NOT_AN_INTEGER}, {FOREIGN} or {OVERFLOW}. Any other error is propagated as it is.
# The increment works in the hash's own format, whichever of the two it is.
INCR = _lua("""
if ARGV[6] ~= '0' then
  local done = redis.call('GET', KEYS[3])
  if done then
    local permanent = redis.call('HGET', KEYS[1], '_permanent')
    return {DONE, done, permanent, redis.call('HGET', KEYS[1], MARKER)}
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {LOCKED} end
local marker = redis.call('HGET', KEYS[1], MARKER)
if not marker then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {FOREIGN} end
  if ARGV[4] ~= '1' then return {MISSING} end
  marker = ARGV[5]
  redis.call('HSET', KEYS[1], MARKER, marker)
elseif marker ~= 'json' and marker ~= 'msgpack' then
  return {FOREIGN}
end
local value
if marker == 'json' then
  value = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  if type(value) == 'table' then
    if string.find(value.err, 'not an integer', 1, true) then return {NOT_AN_INTEGER} end
    if string.find(value.err, 'overflow', 1, true) then return {OVERFLOW} end
    return redis.error_reply(value.err)
  end
else
  local raw = redis.call('HGET', KEYS[1], ARGV[1])
  local current = 0
  if raw then
    local ok, decoded = pcall(cmsgpack.unpack, raw)
    if not ok or type(decoded) ~= 'number' or decoded ~= math.floor(decoded) then
      return {NOT_AN_INTEGER}
    end
    current = decoded
  end
  value = current + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(value))
end
value = string.format('%d', value)
if ARGV[6] ~= '0' then redis.call('SET', KEYS[3], value, 'PX', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {DONE, value, redis.call('HGET', KEYS[1], '_permanent'), marker}
""")

# KEYS: data, lock. ARGV: lock token ('').
DELETE = _lua("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return redis.call('DEL', KEYS[1])
""")

# KEYS: lock. ARGV: lock token.
RELEASE = _lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# KEYS: a probe key. A write that leaves nothing behind: refused exactly when a
# session's write would be (full, read-only, failing to persist, ...).
PROBE = _lua("""
redis.call('SET', KEYS[1], '1', 'PX', '10000')
return redis.call('DEL', KEYS[1])
""")

# KEYS: a Flask-Session 0.8 key. Returns {value, pttl} or nil (none, or not a string).
READ_LEGACY = _lua("""
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return false end
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
""")

# KEYS: data, lock. ARGV: format, pttl ms (<= 0: none), lock token (''), lease ms, then
# field/value pairs. Creates the session from a 0.8 session unless one exists already.
# Returns 1 (adopted) or 0 (a session or a lock is there: load again).
ADOPT = _lua("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] ~= '' and not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], MARKER, ARGV[1], unpack(ARGV, 5, #ARGV))
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")

# KEYS: a key. ARGV: value. Deletes the key if it still holds exactly that value.
DELETE_IF_EQUAL = _lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# -- carrying a session over from the raw-id layout ({sid} in the key) ------------------
# Run only when a session's hashed key is missing. Cluster-safe: the raw key and the
# hashed one are in different slots, so the move is three steps, each on one slot:
# CLAIM_RAW (raw slot) renames the raw hash to a "moving" key under a short lease and
# returns it serialized; RESTORE_RAW (hashed slot) restores it unless the key exists;
# MOVED_RAW (raw slot) drops the moving key. Nothing of this package writes to a raw key,
# so no update can land there and be lost; a request meeting a move in progress waits.
# A mover that dies leaves the moving key: the next one takes it over once the lease ends.

# KEYS: raw data, moving, lease. ARGV: token, lease ms.
# Returns nil (nothing to carry over), LOCKED (another request is moving it), or
# {DUMP of the session, its pttl}.
CLAIM_RAW = _lua("""
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  return false
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return LOCKED end
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('RENAME', KEYS[1], KEYS[2]) end
return {redis.call('DUMP', KEYS[2]), redis.call('PTTL', KEYS[2])}
""")

# KEYS: the hashed data key. ARGV: pttl (0 = none), the DUMP from CLAIM_RAW. A script
# (not a bare RESTORE) so that SESSION_REDIS_MIN_REPLICAS waits for it like any write.
# Returns 1, or 0 if the key exists (restored by a mover that died before MOVED_RAW).
RESTORE_RAW = _lua("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('RESTORE', KEYS[1], ARGV[1], ARGV[2])
return 1
""")

# KEYS: moving, lease. ARGV: token. The session is at its hashed key now.
MOVED_RAW = _lua("""
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
""")

# KEYS: a user's index (a hash: session's at-rest name -> "<bind time>|<label>").
# ARGV: the session's at-rest name, bind time, label. Binds the session (keeping an
# earlier bind time); returns the index.
USER_BIND = _lua("""
local bound = ARGV[2]
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then bound = string.match(old, '^[^|]*') end
redis.call('HSET', KEYS[1], ARGV[1], bound .. '|' .. ARGV[3])
return redis.call('HGETALL', KEYS[1])
""")

# KEYS: a user's index. ARGV: at-rest names of the sessions to forget.
USER_FORGET = _lua("""
return redis.call('HDEL', KEYS[1], unpack(ARGV))
""")

# KEYS: counter, record. ARGV: record ttl ms ('0' = keep no record).
# Returns {DONE, value} or {NOT_AN_INTEGER}; other errors are propagated.
COUNTER_INCR = _lua("""
if ARGV[1] ~= '0' then
  local done = redis.call('GET', KEYS[2])
  if done then return {DONE, done} end
end
local value = redis.pcall('INCR', KEYS[1])
if type(value) == 'table' then
  local err = value.err
  if string.find(err, 'not an integer', 1, true) or string.find(err, 'WRONGTYPE', 1, true) then
    return {NOT_AN_INTEGER}
  end
  return redis.error_reply(value.err)
end
if ARGV[1] ~= '0' then redis.call('SET', KEYS[2], value, 'PX', ARGV[1]) end
return {DONE, value}
""")


# -- a rolling upgrade from Flask-Session 0.8 (SESSION_08_SERVERS) -------------------------
# While 0.8 servers may still serve the store, a session lives in both layouts: our hash
# (the authority among our servers: locks, merges, increments) and 0.8's key, a whole
# document 0.8's servers read and write. MIRROR in the hash is the SHA-1 of the document
# we last wrote to, or read from, 0.8's key.

# KEYS: data, 0.8 key. ARGV: refresh ms of 0.8's key ('0' = none).
# Returns {DONE} (in step, or nothing to do), {STALE, document, pttl, mirror} (0.8's key
# holds what a 0.8 server wrote since, or a 0.8 session we have no hash for: mirror ''),
# or {GONE, mirror} (0.8's key is gone while the hash says it was written).
SYNC_08 = _lua("""
local legacy = false
if redis.call('TYPE', KEYS[2]).ok == 'string' then legacy = redis.call('GET', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if legacy then return {STALE, legacy, redis.call('PTTL', KEYS[2]), ''} end
  return {DONE}
end
local mirror = redis.call('HGET', KEYS[1], MIRROR)
if not mirror then return {DONE} end
if not legacy then return {GONE, mirror} end
if redis.sha1hex(legacy) ~= mirror then
  return {STALE, legacy, redis.call('PTTL', KEYS[2]), mirror}
end
if ARGV[1] ~= '0' then redis.pcall('PEXPIRE', KEYS[2], ARGV[1]) end
return {DONE}
""")

# KEYS: data, 0.8 key. ARGV: SHA-1 of the 0.8 document read, the hash's MIRROR when it
# was read ('' = there was no hash), format, then field/value pairs (the document's keys,
# encoded by us). Replaces the hash's values with the document's, if neither changed
# since; keeps the hash's TTL in step with 0.8's key. Returns 1, or 0 (look again).
ABSORB_08 = _lua("""
local legacy = redis.call('GET', KEYS[2])
if not legacy or redis.sha1hex(legacy) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif redis.call('HGET', KEYS[1], MIRROR) ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], MARKER, ARGV[3], MIRROR, ARGV[1], LEGACY, KEYS[2])
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, #ARGV)) end
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then redis.call('PEXPIRE', KEYS[1], pttl) end
return 1
""")

# KEYS: data, 0.8 key. ARGV: the hash's MIRROR as read. A 0.8 server deleted the
# session: delete the hash too, if nothing changed since. Returns 1 or 0.
DROP_08 = _lua("""
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], MIRROR) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
""")

# Lua: a digest of a hash's fields (MIRROR left out), to tell whether it changed.
_FIELDS_DIGEST = """
local function fields_digest(key)
  local all = redis.call('HGETALL', key)
  local parts = {}
  for i = 1, #all, 2 do
    if all[i] ~= MIRROR and all[i] ~= LEGACY then
      parts[#parts + 1] = #all[i] .. ':' .. all[i] .. #all[i + 1] .. ':' .. all[i + 1]
    end
  end
  return redis.sha1hex(table.concat(parts)), all
end
"""

# KEYS: data. Returns {digest, fields...} (nil when there is no hash).
SNAPSHOT_08 = _lua(
    _FIELDS_DIGEST
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local digest, all = fields_digest(KEYS[1])
return {digest, unpack(all)}
"""
)

# KEYS: data, 0.8 key. ARGV: digest from SNAPSHOT_08, the 0.8 document built from it.
# Writes 0.8's key (with the hash's TTL) and MIRROR, if the hash is still what the
# snapshot saw and 0.8's key holds no write of a 0.8 server we have not read.
# Returns 1 (written) or 0 (a later write of ours will mirror, or 0.8 wrote: next
# request reads it).
MIRROR_08 = _lua(
    _FIELDS_DIGEST
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if fields_digest(KEYS[1]) ~= ARGV[1] then return 0 end
local mirror = redis.call('HGET', KEYS[1], MIRROR)
if mirror then
  local legacy = redis.call('GET', KEYS[2])
  if legacy and redis.sha1hex(legacy) ~= mirror then return 0 end
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', pttl)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('HSET', KEYS[1], MIRROR, redis.sha1hex(ARGV[2]), LEGACY, KEYS[2])
return 1
"""
)

# KEYS: data, 0.8 key. The transition is over: drop 0.8's copy and the MIRROR field, if
# the copy holds nothing a 0.8 server wrote since. Returns 1, or 0 (read it first).
FINISH_08 = _lua("""
local mirror = redis.call('HGET', KEYS[1], MIRROR)
if mirror then
  local legacy = redis.call('GET', KEYS[2])
  if legacy and redis.sha1hex(legacy) ~= mirror then return 0 end
  redis.call('HDEL', KEYS[1], MIRROR)
end
redis.call('HDEL', KEYS[1], LEGACY)
redis.call('DEL', KEYS[2])
return 1
""")


class Script:
    """A Lua script run with EVALSHA, loaded on first NOSCRIPT.

    Like redis-py's ``register_script``, minus its per-call wrapping (a measurable share
    of a request's CPU). Calling again after NOSCRIPT is safe even for an increment:
    NOSCRIPT means the script did not run.
    """

    def __init__(self, client: Client, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._sha_bytes = self.sha.encode()  # as sent: redis-py passes bytes through as they are

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        return self.run_on(self.client, keys, args)

    def run_on(self, client: Client, keys: list[str], args: list[Any]) -> Any:
        """Run on ``client`` (the store's, or one cluster node's)."""
        try:
            return client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha_bytes, len(keys), *keys, *args
            )
        except redis.exceptions.NoScriptError:
            # EVAL, not SCRIPT LOAD: it goes to the node that owns the keys (a cluster's
            # SCRIPT LOAD goes to every primary, and fails while one is down) and caches
            # the script there.
            return client.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", self.source, len(keys), *keys, *args
            )
