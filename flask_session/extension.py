"""``Session(app)``: installs server-side sessions on a Flask app, as Flask-Session 0.8 does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import BackendInterface
from .cachelib import CacheLibSessionInterface
from .config08 import requested_store_type
from .filesystem import FileSystemSessionInterface
from .memcached import MemcachedSessionInterface
from .redis import RedisSessionInterface
from .sqlalchemy import SqlAlchemySessionInterface

if TYPE_CHECKING:
    from flask import Flask

#: SESSION_TYPE -> the Flask-Session 0.8 interface class ``Session(app)`` installs, so
#: that ``flask.session`` is a ``RedisSession`` (say) as in 0.8. Any other type gets the
#: base class, whose settings then refuse it, naming the choices.
INTERFACE_CLASSES: dict[str, type[BackendInterface]] = {
    "filesystem": FileSystemSessionInterface,
    "redis": RedisSessionInterface,
    "cachelib": CacheLibSessionInterface,
    "sqlalchemy": SqlAlchemySessionInterface,
    "memcached": MemcachedSessionInterface,
}


class Session:
    """Server-side sessions for Flask, configured by ``SESSION_*`` keys.

    ``Session(app)`` or ``Session().init_app(app)``, as with Flask-Session. It sets
    ``app.session_interface`` to the interface class of ``SESSION_TYPE``, built from the
    app (which also registers the ``flask session`` commands, a 503 handler for
    :class:`~flask_session.StoreUnavailable` unless the app has its own, and a teardown
    hook that frees a session lock a failed request still holds). Calling it again, on
    the same app or another one, gives the same result for the same config.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        interface_class = INTERFACE_CLASSES.get(requested_store_type(app.config), BackendInterface)
        app.session_interface = interface_class(app)
        app.extensions["session"] = self
