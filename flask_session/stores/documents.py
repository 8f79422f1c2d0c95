"""Reading a whole-session document in either format (the sqlalchemy and memcached stores).

A session written as JSON by one configuration and read by another configured for msgpack
(or the reverse: Flask-Session 0.8 wrote msgpack by default, this package defaults to
JSON) is still the user's session: it is read in the format that wrote it and its values
re-encoded in the configured one, and the next write stores the configured format.
"""

from __future__ import annotations

from ..codecs import CODECS, Codec

_MSGPACK_MAP_FIRST_BYTES = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


def codec_of(document: bytes, configured: Codec) -> Codec:
    """The codec that wrote ``document``, told by its first byte: a JSON object starts
    with ``{`` (after whitespace), a msgpack map with 0x80-0x8f, 0xde or 0xdf (never
    ``{``, which msgpack reads as the integer 123). Anything else: ``configured``, which
    then refuses it."""
    stripped = document.lstrip()
    if stripped[:1] == b"{":
        return CODECS["json"]
    if document[:1] and document[0] in _MSGPACK_MAP_FIRST_BYTES:
        return CODECS["msgpack"]
    return configured


def decode_document(document: bytes, configured: Codec) -> dict[str, bytes]:
    """The session's values, encoded as ``configured`` encodes them.

    Raises ``DecodeError`` for bytes that are no session document, TypeError for a value
    the configured format cannot hold (a msgpack map with integer keys has no JSON form).
    """
    written_by = codec_of(document, configured)
    values = written_by.decode_document(document)
    if written_by is configured:
        return values
    return {key: configured.encode(written_by.decode(raw)) for key, raw in values.items()}
