"""The filesystem store's side of a rolling upgrade from Flask-Session 0.8.

While ``SESSION_08_SERVERS`` is on, a session lives in two files of one directory:
this package's ``<h>.session`` (the authority among this package's servers: locks,
merges, increments) and 0.8's cachelib file ``<h>`` (h = sha256 of ``SESSION_KEY_PREFIX
+ sid`` for both), which 0.8's servers read and write whole. This package's document
keeps, under :data:`COPY_KEY`, the SHA-256 of the 0.8 file it last wrote or read, so:

* a 0.8 file holding other bytes is a write of a 0.8 server: it replaces the session's
  values (read by the plain-data pickle reader, never ``pickle.loads``);
* a 0.8 file gone while the document names one is a session a 0.8 server cleared: the
  session is deleted here too;
* after each write here, the whole session is written to 0.8's file as cachelib writes it
  (expiry header, then a pickle of the dict), before this package's file, so a reader
  here that sees the new 0.8 file and the old document reads the same values again.

Once the setting is off, a session still naming a 0.8 copy reads it one last time, then
the 0.8 file and the key go (:meth:`Files08.finish`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import struct
import tempfile
import time
from dataclasses import dataclass

from ..codecs import Codec
from .legacy import DEFAULT_TTL, MAX_FILE_BYTES, parse_cachelib_file
from .plain_pickle import UnsafePickle

logger = logging.getLogger(__name__)

#: The document key holding the SHA-256 (hex) of the 0.8 file last written or read. A
#: NUL-led name no app's session key is; never returned as a session value.
COPY_KEY = "\x00flask_session:0.8-copy"
#: cachelib's header: the expiry as a native unsigned int; its temp files' suffix, which
#: its pruning skips
_HEADER = struct.Struct("I")
_CACHELIB_TEMP_SUFFIX = ".__wz_cache"


def read_08(path: str) -> bytes | None:
    """The bytes of 0.8's file at ``path`` (at most MAX_FILE_BYTES + 1), or None."""
    try:
        with open(path, "rb") as file:
            return file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Parsed08:
    """A 0.8 file read: its values encoded by the store's codec, and seconds to live."""

    values: dict[str, bytes]
    ttl: float


def parse_08(data: bytes, codec: Codec, path: str) -> Parsed08 | None:
    """The session in 0.8's file ``data``; None (logged) if it expired or cannot be read."""
    try:
        if len(data) > MAX_FILE_BYTES:
            raise UnsafePickle(f"larger than {MAX_FILE_BYTES} bytes")
        parsed = parse_cachelib_file(data)
        if parsed is None:
            return None
        values = {key: codec.encode(value) for key, value in parsed[0].items()}
    except (UnsafePickle, TypeError) as error:
        logger.warning("not reading Flask-Session 0.8's session file %s: %s", path, error)
        return None
    return Parsed08(values, DEFAULT_TTL if parsed[1] is None else parsed[1])


def write_08(path: str, values: dict[str, bytes], codec: Codec, ttl: float) -> str:
    """Replace 0.8's file at ``path`` with the session, as cachelib writes it; return the
    SHA-256 of what was written. Raises TypeError for a value pickle cannot hold."""
    session = {key: codec.decode(raw) for key, raw in values.items() if key != COPY_KEY}
    try:
        payload = pickle.dumps(session, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError) as error:
        raise TypeError(f"cannot be written for Flask-Session 0.8: {error}") from None
    data = _HEADER.pack(min(int(time.time() + ttl), 0xFFFFFFFF)) + payload
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(suffix=_CACHELIB_TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return digest(data)


def unlink_08(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def copy_digest(values: dict[str, bytes], codec: Codec) -> str | None:
    """The 0.8 copy's digest a document names (popped from ``values``), or None."""
    raw = values.pop(COPY_KEY, None)
    if raw is None:
        return None
    with contextlib.suppress(Exception):
        found = codec.decode(raw)
        if isinstance(found, str):
            return found
    return None


def with_copy(values: dict[str, bytes], codec: Codec, copy: str) -> dict[str, bytes]:
    return {**values, COPY_KEY: codec.encode(copy)}


def is_08_name(name: str) -> bool:
    """A cachelib session file's name (a sha256 or md5 hex digest, not its count file)."""
    return (
        len(name) in (64, 32)
        and all(char in "0123456789abcdef" for char in name)
        and name not in COUNT_FILE_NAMES
    )


#: cachelib's own count file in the directory (its name is a hash too)
COUNT_FILE_NAMES = frozenset(
    method(b"__wz_cache_count").hexdigest() for method in (hashlib.sha256, hashlib.md5)
)
