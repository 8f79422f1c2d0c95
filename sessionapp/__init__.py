"""The counter service: a counter per user, and one shared counter, exact under any load.

Each browser or cookie-carrying client has its own counter in a server-side session
(``flask_session``); everybody shares one counter that hands out unique numbers. Both
live in the configured store (files with locks, or Redis), never in process memory, so
they stay exact with any number of threads, worker processes and app servers.

``create_app()`` builds the app; ``sessionapp.wsgi`` exposes one for
``python -m sessionapp.serve`` (granian, ``make run``, the ``sessionapp`` command), and
``app.py`` at the top of the repository the same for ``gunicorn app:app`` and
``flask --app app run``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

# If PyPI's Flask-Session shares the environment, this import fails naming the fix (the
# library's flask_session_guard), even when Flask-Session replaced the library's files.
from flask_session import Session, SessionConfigError

from . import security, shared_counter, views
from .errors import register_error_handlers

#: The defaults: ``config.py`` at the top of the repository, next to ``app.py``. Loaded
#: by path rather than ``from_object("config")``, so another module named ``config``
#: on sys.path (a common name) can never be picked up instead, whatever the working
#: directory. ``sessionapp/default_config.py`` is a symlink to it in the repository, and
#: the wheel ships a copy under that name: so an installed package has the same defaults.
_SHIPPED_CONFIG_FILE = os.path.join(os.path.dirname(__file__), "default_config.py")
DEFAULT_CONFIG_FILE = os.path.realpath(_SHIPPED_CONFIG_FILE)
#: installed from a wheel (not run from the repository): paths under the package are
#: not a place for data, so the session directory moves to Flask's instance folder
INSTALLED = not os.path.islink(_SHIPPED_CONFIG_FILE)
#: an environment variable naming a settings file (like config.py) loaded after it
SETTINGS_ENVVAR = "SESSIONAPP_SETTINGS"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service.

    Settings, later ones winning: ``config.py``; the file named by ``$SESSIONAPP_SETTINGS``
    (if set); ``FLASK_*`` environment variables
    (``FLASK_SESSION_TYPE=redis``, ``FLASK_SESSION_REDIS_URL=...``); ``test_config``.
    Every setting is checked here, and a bad one raises SessionConfigError naming it
    (nothing that starts fails later on a setting); values typed as text in the
    environment are written back in their proper type (``"false"`` -> False).
    """
    app = Flask(__name__)
    app.config.from_pyfile(DEFAULT_CONFIG_FILE)
    if INSTALLED:
        app.config["SESSION_FILE_DIR"] = os.path.join(app.instance_path, "flask_session")
    app.config.from_envvar(SETTINGS_ENVVAR, silent=True)
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.from_mapping(test_config)

    check_secret_key(app.config)
    check_not_in_memory(app.config)
    register_error_handlers(app)  # first, so Session(app) leaves our 503 handler in place
    Session(app)  # checks every session setting and writes it back in its proper type
    shared_counter.init_app(app)
    app.register_blueprint(views.bp)
    security.init_app(app)
    return app


def check_not_in_memory(config: Any) -> None:
    """The service runs several worker processes, and an in-memory SQLite database would
    be one per process (each user's counter and the shared counter split between them),
    so it is refused here. flask_session itself accepts one (for an app's test suite)."""
    url = config.get("SESSION_SQLALCHEMY_URL")
    if config.get("SESSION_TYPE") != "sqlalchemy" or not isinstance(url, str):
        return
    from sqlalchemy.engine import make_url

    from flask_session.stores.sqlalchemy_setup import is_memory_sqlite

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001  # not a URL: Session(app) refuses it, naming the key
        return
    if parsed.get_backend_name() == "sqlite" and is_memory_sqlite(parsed):
        raise SessionConfigError(
            f"SESSION_SQLALCHEMY_URL {url!r} is an in-memory SQLite database, which each"
            " worker process of the service would have on its own; use a file, e.g."
            " sqlite:////var/lib/sessionapp/sessions.db"
        )


def check_secret_key(config: Any) -> None:
    """SECRET_KEY is unset (None) or a non-empty str or bytes: Flask signs with it as is,
    and a number from the environment (FLASK_SECRET_KEY=12345 reads as JSON) would fail
    the first request that signs something."""
    value = config.get("SECRET_KEY")
    if value is None or (isinstance(value, (str, bytes)) and value):
        return
    raise SessionConfigError(
        f"SECRET_KEY is {type(value).__name__} {value!r}; it must be unset or non-empty"
        " text. In an environment variable, write digits as a JSON string:"
        " FLASK_SECRET_KEY='\"12345\"'"
    )
