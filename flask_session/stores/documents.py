"""Reading a whole-session document in either format (the file, SQL and memcached stores).

A session written as JSON by one configuration and read by another configured for msgpack
(or the reverse: Flask-Session 0.8 wrote msgpack by default, this package defaults to
JSON) is still the user's session: it is read in the format that wrote it and its values
re-encoded in the configured one, and the next write stores the configured format.
"""

from __future__ import annotations

from ..codecs import CODECS, Codec


def recode(values: dict[str, bytes], source: Codec, target: Codec) -> dict[str, bytes]:
    """A session's values written by ``source``, encoded as ``target`` encodes them.

    How a store keeps every session when SESSION_SERIALIZATION_FORMAT changes: it reads
    the other format, and the next write stores the configured one. Raises
    ``DecodeError`` if a value is not ``source`` data, TypeError if ``target`` cannot
    hold it (a msgpack map with integer keys has no JSON form).
    """
    if source is target:
        return values
    return {key: target.encode(source.decode(raw)) for key, raw in values.items()}


def codec_of(document: bytes, configured: Codec) -> Codec:
    """The codec that wrote a session document, told by its first byte.

    A JSON object starts with ``{`` (after any whitespace); a msgpack map starts with a
    byte from 0x80-0x8f, 0xde or 0xdf, never ``{`` (0x7b is the msgpack integer 123).
    Anything else is left to the configured codec to refuse.
    """
    first = document[:1]
    if first.isspace():
        first = document.lstrip()[:1]
    if first == b"{":
        return CODECS["json"]
    if first and (0x80 <= first[0] <= 0x8F or first[0] in (0xDE, 0xDF)):
        return CODECS["msgpack"]
    return configured


def decode_document(document: bytes, configured: Codec) -> dict[str, bytes]:
    """The session's values, encoded as ``configured`` encodes them.

    Raises ``DecodeError`` for bytes that are no session document, TypeError for a value
    the configured format cannot hold (a msgpack map with integer keys has no JSON form).
    """
    written_by = codec_of(document, configured)
    return recode(written_by.decode_document(document), written_by, configured)
