"""``Session(app)``: installs server-side sessions on a Flask app."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Response, session

from .cli import session_cleanup_alias, session_cli
from .errors import SessionConfigError, StoreUnavailable
from .session import ServerSideSession
from .settings import apply_defaults

if TYPE_CHECKING:
    from flask import Flask

    from .base import ServerSideSessionInterface

#: SESSION_TYPE -> the Flask-Session 0.8 interface class (module, class name) that
#: ``Session(app)`` installs, so ``flask.session`` is e.g. a ``RedisSession`` as in 0.8.
#: Imported only when used. A store without a 0.8 class gets the base interface.
INTERFACE_CLASSES: dict[str, tuple[str, str]] = {
    "filesystem": ("flask_session.filesystem", "FileSystemSessionInterface"),
    "redis": ("flask_session.redis", "RedisSessionInterface"),
    "cachelib": ("flask_session.cachelib", "CacheLibSessionInterface"),
    "sqlalchemy": ("flask_session.sqlalchemy", "SqlAlchemySessionInterface"),
    "memcached": ("flask_session.memcached", "MemcachedSessionInterface"),
}


class Session:
    """Server-side sessions for Flask, configured by ``SESSION_*`` keys.

    ``Session(app)`` or ``Session().init_app(app)``, as with Flask-Session. On top of
    replacing ``app.session_interface`` it registers the ``flask session`` commands, a
    503 handler for :class:`StoreUnavailable` (unless the app has its own), and a
    teardown hook that frees a session lock a failed request still holds.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        from .base import ServerSideSessionInterface, configured

        requested = app.config.get("SESSION_TYPE", "filesystem")
        settings, store = configured(app)  # reads a copy: sees which keys the app set
        apply_defaults(app.config, app.instance_path)  # for code that reads app.config
        module_name, class_name = INTERFACE_CLASSES.get(
            str(requested).lower(), ("flask_session.base", "ServerSideSessionInterface")
        )
        cls = getattr(importlib.import_module(module_name), class_name)
        # Built from settings already read, not through the 0.8 constructor's arguments.
        interface = cls.__new__(cls)
        ServerSideSessionInterface.__init__(
            interface, settings, store, use_signer=bool(app.config.get("SESSION_USE_SIGNER"))
        )
        interface._wire(app)
        app.session_interface = interface
        app.extensions["session"] = self


def install(
    app: Flask, interface: ServerSideSessionInterface, *, replace_interface: bool = True
) -> None:
    """Wire ``interface`` into ``app``: the session interface (unless the caller assigns
    it, as 0.8's ``app.session_interface = RedisSessionInterface(app, ...)`` does), the
    ``flask session`` commands (and 0.8's ``flask session_cleanup``), the 503 handler
    and the lock-releasing teardown."""
    if replace_interface:
        app.session_interface = interface
    app.cli.add_command(session_cli)
    app.cli.add_command(session_cleanup_alias)
    if StoreUnavailable not in app.error_handler_spec[None][None]:
        app.register_error_handler(StoreUnavailable, store_unavailable_response)
    if release_session_lock not in app.teardown_request_funcs.get(None, []):
        app.teardown_request(release_session_lock)


def store_unavailable_response(error: StoreUnavailable) -> Response:
    """The default answer to a store outage: 503 with Retry-After and the reason in plain
    words; no traceback, no path or address (those are in the log)."""
    return Response(
        f"503 Service Unavailable: {error.reason}. Try again shortly.\n",
        status=503,
        headers={"Retry-After": str(error.retry_after), "Cache-Control": "no-store"},
        mimetype="text/plain",
    )


def release_session_lock(_error: BaseException | None) -> None:
    """Teardown: free the lock of a request that failed before its session was saved."""
    current = session._get_current_object()  # type: ignore[attr-defined]
    if isinstance(current, ServerSideSession):
        current.release_lock()


def check_cookie_settings(config: Mapping[str, Any]) -> None:
    """Refuse cookie settings browsers would reject or that would weaken the cookie."""
    name = config["SESSION_COOKIE_NAME"]
    secure = config["SESSION_COOKIE_SECURE"]
    samesite = config["SESSION_COOKIE_SAMESITE"]
    if samesite not in (None, "Lax", "Strict", "None"):
        raise SessionConfigError(
            f"SESSION_COOKIE_SAMESITE is {samesite!r}; use 'Lax' (the default here),"
            " 'Strict', or 'None' (which needs SESSION_COOKIE_SECURE = True)"
        )
    if samesite == "None" and not secure:
        raise SessionConfigError(
            "SESSION_COOKIE_SAMESITE = 'None' needs SESSION_COOKIE_SECURE = True;"
            " browsers drop such cookies otherwise"
        )
    if name.startswith(("__Host-", "__Secure-")) and not secure:
        raise SessionConfigError(f"SESSION_COOKIE_NAME {name!r} needs SESSION_COOKIE_SECURE = True")
    if name.startswith("__Host-") and (
        config["SESSION_COOKIE_DOMAIN"] or config["SESSION_COOKIE_PATH"] not in (None, "/")
    ):
        raise SessionConfigError(
            f"SESSION_COOKIE_NAME {name!r} needs SESSION_COOKIE_DOMAIN unset and"
            " SESSION_COOKIE_PATH '/' (browsers reject __Host- cookies otherwise)"
        )
