"""Server-side sessions for Flask that never lose an update.

The public surface of Flask-Session (``Session(app)``, the ``SESSION_*`` config keys,
``app.session_interface.regenerate(session)``), with a filesystem store (the default)
and a Redis store, plus: merged writes, ``session.incr``, per-session locking, strict
session ids, server-side expiry, JSON/msgpack only, and :class:`StoreUnavailable` for
outages.
"""

from .errors import SessionConfigError, SessionLockTimeout, StoreUnavailable
from .extension import Session
from .interface import ServerSideSessionInterface
from .session import ServerSideSession, read_only_session

__version__ = "0.1.0"

__all__ = [
    "ServerSideSession",
    "ServerSideSessionInterface",
    "Session",
    "SessionConfigError",
    "SessionLockTimeout",
    "StoreUnavailable",
    "read_only_session",
]
