"""The one path from an app's configuration to its sessions: settings, store, interface, app.

:func:`configure` reads the settings once (:func:`~flask_session.settings.read_settings`),
builds the store from them (:func:`~flask_session.stores.make_store`) and publishes the
checked values back into ``app.config``; the interface is then built from those two
(``ServerSideSessionInterface(settings, store)``) and :func:`install` wires it into the
app. ``Session(app)`` and every Flask-Session 0.8 interface class go through here; this
module knows nothing of them::

    settings, store = configure(app)
    install(app, ServerSideSessionInterface(settings, store))
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from flask import Response

from .cli import session_cleanup_alias, session_cli
from .errors import StoreUnavailable
from .session import opened_session
from .settings import SessionSettings, publish, read_settings
from .stores import make_store

if TYPE_CHECKING:
    from flask import Flask

    from .interface import ServerSideSessionInterface
    from .stores.base import Store

#: where sessions are kept for an interface built without an app (a relative instance
#: folder, as Flask's default is)
DEFAULT_INSTANCE_PATH = "instance"


def configure(
    app: Flask | None,
    config: Mapping[str, Any] | None = None,
    *,
    leave: Collection[str] = (),
) -> tuple[SessionSettings, Store]:
    """The checked settings and the store for ``app``.

    ``config`` is what to read (default ``app.config``; a caller that adds values of its
    own passes them merged in, and names them in ``leave`` so that they are not written
    into ``app.config``). Raises SessionConfigError naming the key.
    """
    source: Mapping[str, Any] = config if config is not None else app.config if app else {}
    instance_path = app.instance_path if app is not None else DEFAULT_INSTANCE_PATH
    settings = read_settings(source, instance_path)
    if app is None:
        store = make_store(settings)
    else:
        # Inside the app's context: a store on the app's own client may need it (a
        # Flask-SQLAlchemy db's engines are the app's, reachable only there).
        with app.app_context():
            store = make_store(settings)
    if app is not None:
        publish(settings, app.config, leave=leave)
    return settings, store


def install(app: Flask, interface: ServerSideSessionInterface, *, assign: bool = True) -> None:
    """Wire ``interface`` into ``app``: the session interface (unless the caller assigns
    it, as 0.8's ``app.session_interface = RedisSessionInterface(app, ...)`` does), the
    ``flask session`` commands (and 0.8's ``flask session_cleanup``), the 503 handler
    (unless the app has its own) and the teardown that frees a failed request's lock.
    Safe to call again for the same app."""
    if assign:
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
    current = opened_session()  # not the proxy: that would mark the session accessed
    if current is not None:
        current.release_lock()
