"""Server-side sessions for Flask that never lose an update.

A drop-in successor to Flask-Session 0.8: ``Session(app)``, the ``SESSION_*`` config
keys, ``app.session_interface.regenerate(session)`` and 0.8's interface classes
(``flask_session.redis.RedisSessionInterface``...), with filesystem (the default),
Redis, SQL and memcached stores, plus: merged writes, ``session.incr``, per-session
locking, strict session ids, server-side expiry, JSON/msgpack only (never pickle), and
:class:`StoreUnavailable` for outages.

The core is :mod:`flask_session.settings` (read, check, freeze), :mod:`flask_session.stores`,
:mod:`flask_session.session`, :mod:`flask_session.interface` and the path through them,
:mod:`flask_session.wiring`. Flask-Session 0.8's API (``Session``, :mod:`flask_session.base`
and the backend modules, the key translation in :mod:`flask_session.config08`) sits on
top and calls the core, never the reverse.

``current_session`` is ``flask.session`` typed as :class:`ServerSideSession`, so
``current_session.incr("n")`` type-checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

# First: refuse to run mixed with PyPI's Flask-Session (see flask_session_guard). The guard
# that flask_session_guard.pth puts on sys.meta_path has run this already; this call is for
# interpreters that never read the .pth (this package on PYTHONPATH, python -S).
from flask_session_guard import CoInstallationError, refuse_mixed_installation

refuse_mixed_installation()

from flask import session as _flask_session  # noqa: E402

from ._version import __version__  # noqa: E402
from .errors import (  # noqa: E402
    SessionConfigError,
    SessionConflict,
    SessionLockTimeout,
    SessionReleased,
    StoreUnavailable,
    UnstorableValue,
)
from .extension import Session  # noqa: E402
from .interface import ServerSideSessionInterface  # noqa: E402
from .session import ServerSideSession, read_only_session  # noqa: E402

if TYPE_CHECKING:
    current_session: ServerSideSession
else:
    #: ``flask.session`` itself (a proxy), typed as this package's session
    current_session = cast("ServerSideSession", _flask_session)

__all__ = [
    "CoInstallationError",
    "ServerSideSession",
    "ServerSideSessionInterface",
    "Session",
    "SessionConfigError",
    "SessionConflict",
    "SessionLockTimeout",
    "SessionReleased",
    "StoreUnavailable",
    "UnstorableValue",
    "__version__",
    "current_session",
    "read_only_session",
]
