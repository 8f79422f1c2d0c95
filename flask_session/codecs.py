"""Session value encodings: JSON or msgpack, never pickle.

Stores keep a session as a map of key -> encoded value (a Redis hash field per key; one
document per file). Encoding each value on its own lets a store merge changed keys
without decoding the others, and lets the session see which keys a request changed by
comparing encodings.

Both formats keep every value Flask's own cookie session keeps (its tagged JSON):
``Markup``, ``tuple``, ``bytes``, ``datetime``, ``UUID`` and dicts of them, and dicts
whose only key looks like a tag. Such values are written as one-key tag objects
(``{" t": [1, 2]}`` for a tuple), as Flask does; plain ``int``, ``str``, ``float``,
``bool`` and ``None`` are written as themselves, so a stored integer is a bare JSON or
msgpack integer that a store can increment in place (Redis ``HINCRBY``, Lua
``cmsgpack``), and the common values skip the tagging walk entirely.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from markupsafe import Markup

#: Values encoded as themselves, with no walk (the hot path: counters, short strings).
_PLAIN = frozenset({int, str, float, bool, type(None)})

# Tag names, as in Flask's flask.json.tag (a leading space: unlikely in a real key).
TUPLE, BYTES, MARKUP, UUID_TAG, DATETIME, DICT = " t", " b", " m", " u", " d", " di"
_TAGS = frozenset({TUPLE, BYTES, MARKUP, UUID_TAG, DATETIME, DICT})


class Codec:
    """Encodes one session value, and a whole session of already-encoded values."""

    def __init__(self, name: str, module: Any, *, native_bytes: bool) -> None:
        self.name = name
        self._encode: Callable[[Any], bytes] = module.Encoder().encode
        self._decode: Callable[[bytes], Any] = module.Decoder().decode
        self._document_encoder = module.Encoder()
        self._document_decoder = module.Decoder(dict[str, msgspec.Raw])
        #: msgpack has a binary type and infinities; JSON tags bytes as base64 and
        #: refuses inf/nan (msgspec would write null: a silent change of value)
        self._native_bytes = native_bytes
        self._plain = _PLAIN if native_bytes else _PLAIN - {float}

    def encode(self, value: Any) -> bytes:
        """Encode one value. Raises TypeError for a value the format cannot hold."""
        try:
            if type(value) in self._plain or self._is_plain(value):
                return self._encode(value)
            return self._encode(self._tag(value))
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as error:
            raise TypeError(f"{error} (the session stores values as {self.name})") from None
        except RecursionError:
            # Both the tagging walk and msgspec nest one call per level, within Python's
            # recursion limit (the stack a request has left is what bounds it).
            raise TypeError(
                "it is nested too deeply to encode (lists or dicts inside each other more"
                f" levels deep than Python's recursion limit, {sys.getrecursionlimit()},"
                " allows)"
            ) from None

    def decode(self, data: bytes) -> Any:
        """Decode one value. Raises DecodeError on bytes that are not this format, or
        that nest deeper than Python's recursion limit (no session writes such data)."""
        try:
            value = self._decode(data)
            if type(value) in _PLAIN or not _has_tags(value):
                return value
            return self._untag(value)
        except msgspec.DecodeError:
            raise
        except (TypeError, ValueError, KeyError) as error:
            raise msgspec.DecodeError(f"malformed tagged value: {error}") from None
        except RecursionError:
            raise msgspec.DecodeError("a value nested too deeply to decode") from None

    def encode_document(self, values: dict[str, bytes]) -> bytes:
        """One document holding every key's encoded value as-is."""
        document: bytes = self._document_encoder.encode(
            {key: msgspec.Raw(raw) for key, raw in values.items()}
        )
        return document

    def decode_document(self, data: bytes) -> dict[str, bytes]:
        """Split a document back into key -> encoded value, without decoding the values.

        Raises DecodeError on bytes that are not this format or nest too deeply."""
        try:
            raws = self._document_decoder.decode(data)
        except RecursionError:
            raise msgspec.DecodeError("a document nested too deeply to decode") from None
        return {key: bytes(raw) for key, raw in raws.items()}

    # -- tagging -----------------------------------------------------------------------

    def _is_plain(self, value: Any) -> bool:
        """True if ``value`` encodes as itself (no tags needed): the cheap check that lets
        ordinary dicts and lists skip building a tagged copy."""
        kind = type(value)
        if kind in self._plain:
            return True
        if kind is list:
            for item in value:  # noqa: SIM110 (a loop: all() with a generator is slower here)
                if not (type(item) in self._plain or self._is_plain(item)):
                    return False
            return True
        if kind is dict:
            if len(value) == 1 and next(iter(value)) in _TAGS:
                return False
            for key, item in value.items():
                if type(key) is not str or not (type(item) in self._plain or self._is_plain(item)):
                    return False
            return True
        return False

    def _tag(self, value: Any) -> Any:
        """``value`` as plain dicts, lists and scalars the format holds exactly."""
        kind = type(value)
        if kind in self._plain:
            return value
        if kind is float:  # JSON only: msgpack floats are plain
            if not math.isfinite(value):
                raise TypeError(f"{value!r} has no JSON form")
            return value
        if kind is dict:
            for key in value:
                if type(key) is not str:
                    raise TypeError(
                        f"dict keys must be strings, not {type(key).__name__} ({key!r})"
                    )
            tagged = {key: self._tag(item) for key, item in value.items()}
            if len(tagged) == 1 and next(iter(tagged)) in _TAGS:
                return {DICT: tagged}  # a user's {" t": ...} must not read back as a tuple
            return tagged
        if kind is list:
            return [self._tag(item) for item in value]
        if kind is tuple:
            return {TUPLE: [self._tag(item) for item in value]}
        if isinstance(value, Markup):
            return {MARKUP: str(value)}
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if self._native_bytes:
                return raw
            return {BYTES: msgspec.json.encode(raw).decode("ascii")[1:-1]}  # base64
        if isinstance(value, datetime):
            return {DATETIME: value.isoformat()}
        if isinstance(value, UUID):
            return {UUID_TAG: value.hex}
        if isinstance(value, str):  # a str subclass other than Markup: keep the text
            return str(value)
        if isinstance(value, int):
            return int(value)  # IntEnum and friends: stored as their number
        if isinstance(value, float):
            return self._tag(float(value))
        raise TypeError(f"{kind.__name__} is not a type a session can hold")

    def _untag(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            if len(value) == 1:
                ((key, item),) = value.items()
                if key in _TAGS:
                    return self._untag_one(key, item)
            return {key: self._untag(item) for key, item in value.items()}
        if kind is list:
            return [self._untag(item) for item in value]
        return value

    def _untag_one(self, tag: str, item: Any) -> Any:
        if tag == TUPLE:
            return tuple(self._untag(element) for element in item)
        if tag == DICT:
            return {key: self._untag(element) for key, element in item.items()}
        if tag == MARKUP:
            return Markup(item)
        if tag == BYTES:
            return msgspec.json.decode(f'"{item}"'.encode(), type=bytes)
        if tag == DATETIME:
            return datetime.fromisoformat(item)
        return UUID(hex=item)  # UUID_TAG


def _has_tags(value: Any) -> bool:
    """True if a decoded value holds a tag object anywhere (so it needs untagging)."""
    kind = type(value)
    if kind is dict:
        if len(value) == 1 and next(iter(value)) in _TAGS:
            return True
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for item in items:  # noqa: SIM110 (a loop: any() with a generator is slower here)
        if type(item) in _CONTAINERS and _has_tags(item):
            return True
    return False


_CONTAINERS = frozenset({dict, list})


CODECS = {
    "json": Codec("json", msgspec.json, native_bytes=False),
    "msgpack": Codec("msgpack", msgspec.msgpack, native_bytes=True),
}

#: the error a codec raises for corrupt or foreign bytes
DecodeError = msgspec.DecodeError
