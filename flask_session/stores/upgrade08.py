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

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class Count08:
    """Sessions of Flask-Session 0.8's layout in a store."""

    #: 0.8 copies of sessions that this package also holds (kept current for 0.8's
    #: servers while SESSION_08_SERVERS is on)
    mirrored: int = 0
    #: 0.8 sessions no server of this package has used yet
    not_carried_over: int = 0

    @property
    def total(self) -> int:
        return self.mirrored + self.not_carried_over


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
