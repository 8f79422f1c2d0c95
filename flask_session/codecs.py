"""Session value encodings: JSON or msgpack, never pickle.

Stores keep a session as a map of key -> encoded value (a Redis hash field per key; one
document per file). Encoding each value on its own lets a store merge changed keys
without decoding the others, and lets the session see which keys a request changed by
comparing encodings.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Codec:
    """Encodes one session value, and a whole session of already-encoded values."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self._encoder = module.Encoder()
        self._value_decoder = module.Decoder()
        self._document_decoder = module.Decoder(dict[str, msgspec.Raw])

    def encode(self, value: Any) -> bytes:
        """Encode one value. Raises TypeError for a value the format cannot hold."""
        try:
            return self._encoder.encode(value)
        except (TypeError, msgspec.EncodeError) as error:
            raise TypeError(
                f"cannot store {type(value).__name__} in the session as {self.name}: {error}"
            ) from None

    def decode(self, data: bytes) -> Any:
        """Decode one value. Raises msgspec.DecodeError on bytes that are not this format."""
        return self._value_decoder.decode(data)

    def encode_document(self, values: dict[str, bytes]) -> bytes:
        """One document holding every key's encoded value as-is."""
        return self._encoder.encode({key: msgspec.Raw(raw) for key, raw in values.items()})

    def decode_document(self, data: bytes) -> dict[str, bytes]:
        """Split a document back into key -> encoded value, without decoding the values."""
        return {key: bytes(raw) for key, raw in self._document_decoder.decode(data).items()}


CODECS = {
    "json": Codec("json", msgspec.json),
    "msgpack": Codec("msgpack", msgspec.msgpack),
}

#: the error a codec raises for corrupt or foreign bytes
DecodeError = msgspec.DecodeError
