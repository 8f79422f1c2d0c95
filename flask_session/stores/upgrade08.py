"""A rolling upgrade from Flask-Session 0.8: an optional capability of a store.

During a rolling upgrade, Flask-Session 0.8 servers and this package's serve one store
at once, and a client's requests may alternate between them. A store that implements
:class:`Upgrade08` can keep every session in both layouts while ``SESSION_08_SERVERS``
is on (0.8's copy current for 0.8's servers, 0.8's writes read back by ours, 0.8's data
never deleted); once it is off, every session moves to this package's layout on first
use, and :meth:`Upgrade08.finish_08` moves all that are left at once.

Stores without it refuse ``SESSION_08_SERVERS = True`` at start-up (see
:func:`flask_session.stores.make_store`); ``flask session upgrade-08`` uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from ..codecs import Codec

#: What a store with one layout for both says when asked to count or move 0.8 sessions.
SHARED_LAYOUT = (
    "Flask-Session 0.8 and this package keep a session in the same layout in this store"
    " (while SESSION_08_SERVERS is on, under 0.8's key; once it is off, each moves to its"
    " hashed key on first use): there is nothing to carry over"
)


@dataclass
class Count08:
    """Sessions of Flask-Session 0.8's layout in a store."""

    #: 0.8 copies of sessions that this package also holds (kept current for 0.8's
    #: servers while SESSION_08_SERVERS is on)
    mirrored: int = 0
    #: 0.8 sessions no server of this package has used yet
    not_carried_over: int = 0
    #: said instead of counts by a store that shares 0.8's layout (SHARED_LAYOUT)
    note: str = ""

    @property
    def total(self) -> int:
        return self.mirrored + self.not_carried_over

    @classmethod
    def of(cls, mirrored: Iterable[bool]) -> Count08:
        """The count of 0.8 sessions given, for each, whether this package holds it too."""
        count = cls()
        for ours in mirrored:
            if ours:
                count.mirrored += 1
            else:
                count.not_carried_over += 1
        return count


def refuse_finish_while_serving_08(serves_08: bool) -> None:
    """``finish_08``'s precondition: RuntimeError while SESSION_08_SERVERS is on."""
    if serves_08:
        raise RuntimeError(
            "SESSION_08_SERVERS is True: Flask-Session 0.8 servers may still be serving;"
            " set it False on every server first"
        )


@runtime_checkable
class Upgrade08(Protocol):
    """What a store supporting a rolling upgrade from Flask-Session 0.8 implements. Every
    verb may raise StoreUnavailable."""

    def count_08(self) -> Count08:
        """Count the sessions in 0.8's layout. Changes nothing."""

    def finish_08(self) -> Count08:
        """Move every session left in 0.8's layout to this package's, reading any write
        of a 0.8 server first, and delete 0.8's copies; returns what was moved. Only
        when no 0.8 server is left (refused while SESSION_08_SERVERS is on)."""


class SharedLayout08:
    """:class:`Upgrade08` for a store whose layout is Flask-Session 0.8's own (one
    document per session, at 0.8's key or row): both fleets already read and write the
    same session, so there is nothing to count or move. While ``SESSION_08_SERVERS`` is on
    such a store writes each document as 0.8 writes it (:func:`document_08`), keyed by the
    raw id as 0.8 keys it; once it is off, each session moves to its hashed key on first
    use (the sqlalchemy store's ``finish_08`` moves them all at once)."""

    def count_08(self) -> Count08:
        return Count08(note=SHARED_LAYOUT)

    def finish_08(self) -> Count08:
        return Count08(note=SHARED_LAYOUT)


def document_08(values: dict[str, bytes], codec: Codec) -> bytes:
    """A session (values encoded by ``codec``) as Flask-Session 0.8 writes it: one msgspec
    document in ``codec``'s format, holding what 0.8 can hold. Tuples become lists, as
    0.8's msgspec makes them; ``Markup`` its text (0.8 could not store it at all); values
    no 0.8 server could read back (bytes in JSON, datetime, UUID) are written as msgspec
    writes them. Raises TypeError if a value cannot be written so."""
    session = {name: codec.decode(raw) for name, raw in values.items()}
    encoder = _ENCODERS[codec.name]
    try:
        return bytes(encoder.encode(session))
    except (msgspec.EncodeError, ValueError) as error:
        raise TypeError(f"cannot be written for Flask-Session 0.8: {error}") from None


def _plain_text(value: Any) -> Any:
    """msgspec's hook: ``Markup`` (any str subclass) as its text."""
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written for Flask-Session 0.8")


_ENCODERS: dict[str, msgspec.json.Encoder | msgspec.msgpack.Encoder] = {
    "json": msgspec.json.Encoder(enc_hook=_plain_text),
    "msgpack": msgspec.msgpack.Encoder(enc_hook=_plain_text),
}
