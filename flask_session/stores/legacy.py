"""Reading Flask-Session 0.8's session files (cachelib ``FileSystemCache``), never unpickling.

Flask-Session 0.8's ``filesystem`` and ``cachelib`` stores keep a session as the file
``<hash>(SESSION_KEY_PREFIX + sid)`` (sha256 hex since cachelib 0.13, md5 hex before):
a 4-byte native-endian expiry time (0 = never), then a pickle of the session dict.

``pickle.loads`` would run whatever the file names, so these files are read by a small
interpreter of pickle opcodes (``pickletools.genops``) that builds only plain data:
dict, list, tuple, str, bytes, int, float, bool and None, plus ``markupsafe.Markup``
(what ``flash(Markup(...))`` leaves behind) built by our own code from its text. Any
other opcode or global refuses the whole file: the client gets a fresh session and the
file is left alone. A pickled ``bytes`` value (a msgspec-encoded session, as some
Flask-Session versions wrote) is decoded as msgpack or JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .plain_pickle import UnsafePickle, load_plain_pickle

logger = logging.getLogger(__name__)

#: cachelib's file header: the expiry as a native unsigned int (struct "I")
_HEADER = struct.Struct("I")
#: file name hashes cachelib has used, newest first
HASH_METHODS: tuple[Callable[[bytes], Any], ...] = (hashlib.sha256, hashlib.md5)
#: a legacy file being carried over is renamed to this, so only one request does it
CLAIM_SUFFIX = ".migrating"
#: the largest legacy file read (sessions are small; this bounds a hostile file's cost)
MAX_FILE_BYTES = 1 << 20


def parse_cachelib_file(
    data: bytes, now: float | None = None
) -> tuple[dict[str, Any], float | None] | None:
    """A legacy file's session and its seconds to live (None: no expiry), or None if expired.

    Raises UnsafePickle if the payload is not plain data or not a session dict.
    """
    if len(data) < _HEADER.size:
        raise UnsafePickle("shorter than cachelib's header")
    (expires,) = _HEADER.unpack_from(data)
    now = time.time() if now is None else now
    if expires and expires < now:
        return None
    value = load_plain_pickle(data[_HEADER.size :])
    if isinstance(value, bytes):  # a msgspec-encoded session inside the pickle
        value = _decode_msgspec(value)
    if not isinstance(value, dict) or not all(type(key) is str for key in value):
        raise UnsafePickle(f"a session is a dict with string keys, not {type(value).__name__}")
    return value, (expires - now if expires else None)


def _decode_msgspec(raw: bytes) -> Any:
    for decoder in (msgspec.msgpack.decode, msgspec.json.decode):
        with contextlib.suppress(msgspec.DecodeError):
            return decoder(raw)
    raise UnsafePickle("bytes that are neither msgpack nor JSON")


@dataclass
class Taken:
    """A claimed 0.8 session: its data, seconds to live (None: none given), claimed file."""

    values: dict[str, Any]
    ttl: float | None
    claimed_path: str


class LegacyCacheLibFiles:
    """Finds and claims Flask-Session 0.8's file for a session id in ``directory``."""

    def __init__(
        self,
        directory: str,
        key_prefix: str,
        hash_methods: tuple[Callable[[bytes], Any], ...] = HASH_METHODS,
    ) -> None:
        self.directory = directory
        self.key_prefix = key_prefix
        self.hash_methods = hash_methods

    def paths(self, sid: str) -> list[str]:
        """Where 0.8 may have kept ``sid``, one path per hash cachelib used."""
        key = (self.key_prefix + sid).encode()
        return [
            os.path.join(self.directory, method(key).hexdigest()) for method in self.hash_methods
        ]

    def take(self, sid: str, *, stale_after: float) -> Taken | None:
        """Claim and read 0.8's file for ``sid``, or None if there is none (or it expired).

        The file is renamed first, so of two requests only one carries it over; the
        caller writes the session in our layout and then calls :meth:`done`. A claim
        older than ``stale_after`` seconds was left by a request that died: it is taken
        over. A file that is not plain data is put back untouched and logged. Raises
        OSError for I/O trouble (the store turns it into StoreUnavailable).
        """
        for path in self.paths(sid):
            claim = path + CLAIM_SUFFIX
            try:
                os.rename(path, claim)
            except FileNotFoundError:
                if not self._stale(claim, stale_after):
                    continue
                mine = f"{claim}.{secrets.token_hex(8)}"
                try:
                    os.rename(claim, mine)  # one of the requests taking over wins
                except FileNotFoundError:
                    continue
                claim = mine
            return self._read_claimed(path, claim)
        return None

    def _read_claimed(self, path: str, claim: str) -> Taken | None:
        fd = os.open(claim, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        try:
            if len(data) > MAX_FILE_BYTES:
                raise UnsafePickle(f"larger than {MAX_FILE_BYTES} bytes")
            parsed = parse_cachelib_file(data)
        except UnsafePickle as error:
            logger.warning(
                "not carrying over Flask-Session 0.8 session file %s: %s;"
                " the client gets a new session",
                path,
                error,
            )
            os.rename(claim, path)
            return None
        if parsed is None:  # expired: nothing to carry over
            os.unlink(claim)
            return None
        return Taken(parsed[0], parsed[1], claim)

    @staticmethod
    def _stale(claim: str, stale_after: float) -> bool:
        try:
            # ctime: the rename that made the claim set it
            return os.stat(claim).st_ctime < time.time() - stale_after
        except FileNotFoundError:
            return False

    def done(self, taken: Taken) -> None:
        """Remove the claimed file once the session is stored in our layout."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(taken.claimed_path)

    def being_taken(self, sid: str) -> bool:
        """True while another request is carrying ``sid`` over."""
        return any(os.path.exists(path + CLAIM_SUFFIX) for path in self.paths(sid))

    def cleanup(self) -> int:
        """Remove 0.8 session files that have expired; return how many.

        Only files that parse as cachelib files (header, then a plain-data pickle) with a
        past expiry are removed: anything else in the directory is left alone.
        """
        removed = 0
        now = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                if len(name) not in _HASH_NAME_LENGTHS or not _is_hex(name):
                    continue
                try:
                    with open(entry.path, "rb") as file:
                        header = file.read(_HEADER.size)
                except FileNotFoundError:
                    continue
                if len(header) < _HEADER.size:
                    continue
                (expires,) = _HEADER.unpack(header)
                if expires and expires < now:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        return removed


_HASH_NAME_LENGTHS = frozenset({32, 64})  # md5 and sha256 hex digests


def _is_hex(name: str) -> bool:
    return all(char in "0123456789abcdef" for char in name)


#: seconds a carried-over session lives when 0.8 gave it no expiry (Flask's default lifetime)
DEFAULT_TTL = 31 * 24 * 3600.0
#: how often a request polls while another one carries the same session over
_POLL_SECONDS = 0.002


def adopt(
    legacy: LegacyCacheLibFiles,
    sid: str,
    encode: Callable[[Any], bytes],
    write: Callable[[dict[str, bytes], float], object],
    exists: Callable[[], bool],
    timeout: float,
) -> bool:
    """Carry 0.8's session ``sid`` into the store (``write(values, ttl)``); True if the
    store has the session afterwards (written by us or by a concurrent request).

    A request that finds another one carrying the session over waits for it (up to
    ``timeout``), so it sees the session instead of starting a fresh one; a claim left
    by a request that died is taken over after ``timeout``.
    """
    taken = legacy.take(sid, stale_after=timeout)
    if taken is None:
        deadline = time.monotonic() + timeout
        while legacy.being_taken(sid) and not exists():
            if time.monotonic() >= deadline:
                taken = legacy.take(sid, stale_after=timeout)
                break
            time.sleep(_POLL_SECONDS)
        if taken is None:
            return exists()
    try:
        encoded = {key: encode(value) for key, value in taken.values.items()}
    except TypeError as error:
        logger.warning("not carrying over Flask-Session 0.8 session: %s", error)
        legacy.done(taken)
        return False
    write(encoded, DEFAULT_TTL if taken.ttl is None else taken.ttl)
    legacy.done(taken)
    return True
