"""``Session(app)``: installs server-side sessions on a Flask app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Response, session

from .cli import session_cli
from .errors import SessionConfigError, StoreUnavailable
from .interface import ServerSideSessionInterface
from .session import ServerSideSession
from .settings import SessionSettings, apply_defaults
from .stores import STORE_FACTORIES, make_store

if TYPE_CHECKING:
    from flask import Flask


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
        apply_defaults(app.config, app.instance_path)
        settings = SessionSettings.from_config(app.config, tuple(STORE_FACTORIES))
        check_cookie_settings(app.config)
        store = make_store(settings, app.config)
        app.session_interface = ServerSideSessionInterface(settings, store)
        app.extensions["session"] = self
        app.cli.add_command(session_cli)
        if StoreUnavailable not in app.error_handler_spec[None][None]:
            app.register_error_handler(StoreUnavailable, store_unavailable_response)
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
    current = session._get_current_object()
    if isinstance(current, ServerSideSession):
        current.release_lock()


def check_cookie_settings(config) -> None:
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
