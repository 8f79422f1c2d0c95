"""A rolling upgrade from Flask-Session 0.8: an optional capability of a store.

During a rolling upgrade, Flask-Session 0.8 servers and this package's serve one store
at once, and a client's requests may alternate between them. A store that implements
:class:`Upgrade08` can keep every session in both layouts while ``SESSION_08_SERVERS``
is on (0.8's copy current for 0.8's servers, 0.8's writes read back by ours, 0.8's data
never deleted); once it is off, every session moves to this package's layout on first
use, and :meth:`Upgrade08.finish_08` moves all that are left at once.

Stores without it refuse ``SESSION_08_SERVERS = True`` at start-up (see
:func:`flask_session.stores.make_store`); ``flask session upgrade-08`` uses it.

``SESSION_08_SERVERS = "auto"`` (the default) is resolved once, as the store is built
(:func:`serves_08_at_start`), or if the store is unreachable then, when it is first used
once it answers (:class:`Serves08`): the transition is on if :meth:`Upgrade08.holds_08`
finds 0.8's data or the transition's marker in the store, off otherwise. The marker is written
when 0.8 data is found, so servers started later agree even once every 0.8 session has
expired or been carried over; ``finish_08`` removes it. A store that finds nothing pays
nothing per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

import msgspec

from ..codecs import Codec
from ..errors import StoreUnavailable

logger = logging.getLogger(__name__)

#: SESSION_08_SERVERS's default: the store tells at start-up (:func:`serves_08_at_start`)
SERVERS_08_AUTO = "auto"
#: how long the start-up probe for 0.8's data may look (seconds) before it gives up and
#: says none was found (a store full of this package's sessions, or of other keys)
PROBE_SECONDS = 2.0
#: what a store names its transition marker after its key prefix (a name no session id
#: or counter name can take: ids and counter names never hold a colon)
MARKER_NAME = ":upgrade-08"

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
            "SESSION_08_SERVERS is on (True, or 'auto' and the store holds Flask-Session"
            " 0.8's sessions or the transition's marker): 0.8 servers may still be serving;"
            " set SESSION_08_SERVERS = False on every server first"
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
        when no 0.8 server is left (refused while SESSION_08_SERVERS is on). Ends the
        transition's marker too (see :meth:`holds_08`)."""

    def holds_08(self) -> str | None:
        """What shows that Flask-Session 0.8 may still serve this store, in words for
        the start-up log (0.8's data, or the transition's marker), or None: nothing.

        Run once at start-up while SESSION_08_SERVERS is ``"auto"``, never per request,
        and bounded: it stops at the first 0.8 session found, or gives up (None) after
        :data:`PROBE_SECONDS`. When it finds 0.8's data it writes the marker, so that
        every server started later agrees until :meth:`finish_08` ends it."""


def serves_08_at_start(store: Upgrade08, setting: bool | str, name: str) -> bool | None:
    """SESSION_08_SERVERS resolved for ``store`` (the ``name`` store): True or False as
    set; for ``"auto"``, whether :meth:`Upgrade08.holds_08` finds anything, or None if
    the store could not be searched (it is searched again when next used: see
    :class:`Serves08`). Says in the log which mode was chosen and why (once per store
    built)."""
    if setting != SERVERS_08_AUTO:
        return bool(setting)
    try:
        found = store.holds_08()
    except StoreUnavailable as error:
        logger.warning(
            "SESSION_08_SERVERS is 'auto' but the %s store could not be searched for"
            " Flask-Session 0.8's sessions (%s): it is searched when first used once it"
            " answers, and serves no session until then",
            name,
            error,
        )
        return None
    return _resolved(found, name)


def _resolved(found: str | None, name: str) -> bool:
    """Whether the transition is on, given what :meth:`Upgrade08.holds_08` found; said
    in the log."""
    if found is None:
        logger.info(
            "SESSION_08_SERVERS is 'auto' and the %s store holds no Flask-Session 0.8"
            " session: no rolling upgrade's transition. (If Flask-Session 0.8 servers"
            " serve this store but none of their sessions is in it yet, set"
            " SESSION_08_SERVERS = True until they are gone.)",
            name,
        )
        return False
    logger.warning(
        "SESSION_08_SERVERS is 'auto' and the %s store holds %s: serving a rolling"
        " upgrade from Flask-Session 0.8 (sessions kept current in 0.8's layout too)."
        " Once no 0.8 server is left, set SESSION_08_SERVERS = False on every server,"
        " then run `flask session upgrade-08 --finish`",
        name,
        found,
    )
    return True


class Serves08:
    """A store's ``serves_08``: whether it serves a rolling upgrade's transition, as
    :func:`serves_08_at_start` resolved it.

    A store that could not be searched at start-up (``"auto"``, the store unreachable)
    is undecided: the first read of ``serves_08`` after that searches it, and while the
    search fails (the store still unreachable) the read raises StoreUnavailable, so the
    verb that read it fails as it would have anyway and no session is served in a
    layout chosen without looking. Once a search succeeds the answer is kept.
    """

    name: ClassVar[str]
    _serves_08: bool | None = False
    #: the thread searching, whose own reads of ``serves_08`` (inside ``holds_08``)
    #: see False, as at start-up
    _searcher: int | None = None
    #: one search at a time (rare: only while undecided)
    _searching = threading.RLock()

    @property
    def serves_08(self) -> bool:
        decided = self._serves_08
        return decided if decided is not None else self._search_08()

    @serves_08.setter
    def serves_08(self, value: bool | None) -> None:
        self._serves_08 = value

    def _search_08(self) -> bool:
        with self._searching:
            me = threading.get_ident()
            if self._searcher == me:
                return False
            if self._serves_08 is None:
                self._searcher = me
                try:
                    found = cast(Upgrade08, self).holds_08()
                finally:
                    self._searcher = None
                self._serves_08 = _resolved(found, self.name)
            return self._serves_08


#: what :meth:`Upgrade08.holds_08` says when the transition's marker is there
MARKER_FOUND = "the rolling upgrade's marker (set when 0.8's sessions were first found)"

#: the states a shared layout's marker records (SharedLayout08)
MARKER_OFF, MARKER_ON = 0, 1


class SharedLayout08(Serves08):
    """:class:`Upgrade08` for a store whose layout is Flask-Session 0.8's own (one
    document per session, at 0.8's key or row): both fleets already read and write the
    same session, so there is nothing to count or move. While ``SESSION_08_SERVERS`` is on
    such a store writes each document as 0.8 writes it (:func:`document_08`), keyed by the
    raw id as 0.8 keys it; once it is off, each session moves to its hashed key on first
    use (the sqlalchemy store's ``finish_08`` moves them all at once).

    0.8's sessions are told from this package's by their keys only (a raw id, not an
    at-rest name), and during the transition this package keys its own by raw ids too,
    so the marker records both states: the first server of this package to start on the
    store writes MARKER_ON if it finds any live session keyed by a raw id, MARKER_OFF if
    it finds none; ``finish_08`` sets MARKER_OFF. A store implements the three hooks."""

    def count_08(self) -> Count08:
        return Count08(note=SHARED_LAYOUT)

    def finish_08(self) -> Count08:
        refuse_finish_while_serving_08(self.serves_08)
        self._set_marker_08(MARKER_OFF)
        return Count08(note=SHARED_LAYOUT)

    def holds_08(self) -> str | None:
        state = self._marker_08()
        if state is None:
            found = self._first_session_08()
            state = self._add_marker_08(MARKER_ON if found else MARKER_OFF)
            if state == MARKER_ON:
                return (
                    "live sessions and no marker of this package (Flask-Session 0.8's"
                    " sessions; the transition's marker is now set)"
                )
        if state == MARKER_ON:
            return MARKER_FOUND
        return None

    def _marker_08(self) -> int | None:
        """The marker's state, or None if the store has none."""
        raise NotImplementedError

    def _add_marker_08(self, state: int) -> int:
        """Write the marker as ``state`` unless there is one (another server started at
        the same time: first one wins); return the state stored."""
        raise NotImplementedError

    def _set_marker_08(self, state: int) -> None:
        """Write the marker as ``state``."""
        raise NotImplementedError

    def _first_session_08(self) -> bool:
        """Whether the store holds any live session of this key prefix (bounded)."""
        raise NotImplementedError


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
