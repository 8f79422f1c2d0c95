"""Fixtures for Flask's own session tests (vendored in test_flask_sessions.py), with this
extension installed on every app they make.

The ``app``, ``app_ctx``, ``req_ctx`` and ``client`` fixtures are Flask 3.1.3's
(tests/conftest.py, BSD-3-Clause, Copyright 2010 Pallets; license in this folder's LICENSE).
Installing the extension: the autouse ``_extension_on_every_app`` fixture wraps
``flask.Flask.__init__`` (monkeypatch, undone after each test) so that every app made during
a test, the fixture's and those the tests make themselves (including ``CustomFlask``
subclasses), gets ``SESSION_TYPE = "filesystem"`` in the test's ``tmp_path`` and
``Session(app)`` right after Flask's own init. A wrapper rather than a subclass, because the
tests call ``flask.Flask`` and subclass it themselves.

The deliberate differences from Flask's own session are the ``XFAIL`` table below, keyed by
test name, each with its reason (strict: a test that starts passing fails the run, so the
table cannot go stale); they are listed in docs/flask_session.md, "Differences from Flask's
own session". The vendored test bodies are never edited.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest

from flask_session import Session
from flask_session.interface import ServerSideSessionInterface

#: Test name -> why this extension deliberately differs from Flask's signed-cookie session.
XFAIL: dict[str, str] = {
    "test_session_using_samesite_attribute": (
        "SESSION_COOKIE_SAMESITE None (Flask's default) is sent as SameSite=Lax: the id cookie"
        " is the whole session, so it gets the browsers' CSRF default by default"
    ),
    "test_missing_session": (
        "no SECRET_KEY needed: the cookie holds a random 256-bit id checked against the store,"
        " not signed data, so the session works without a key"
    ),
    "test_session_secret_key_fallbacks": (
        "changing SECRET_KEY logs nobody out: the key signs nothing (unsigned ids; it only"
        " checks 0.8's signed cookies with SESSION_USE_SIGNER); end sessions in the store"
    ),
    "test_session_refresh_vary": (
        "a request that never touches the session does no store I/O and sets no cookie, so a"
        " permanent session's expiry is not refreshed (nor Vary added) by it"
    ),
    "test_session_dynamic_cookie_name": (
        "Session(app) installs this extension's interface, replacing the app's own"
        " session_interface (here a SecureCookieSessionInterface subclass)"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the deliberate differences (``XFAIL``) as strict expected failures."""
    for item in items:
        reason = XFAIL.get(item.name)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(autouse=True)
def _extension_on_every_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every ``flask.Flask`` made in the test gets this extension on the filesystem store."""
    original_init = flask.Flask.__init__
    apps: list[flask.Flask] = []

    def init_with_session(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.config.update(SESSION_TYPE="filesystem", SESSION_FILE_DIR=str(tmp_path / "sessions"))
        Session(self)
        apps.append(self)

    monkeypatch.setattr(flask.Flask, "__init__", init_with_session)
    yield
    for made in apps:  # close what the stores opened (warnings are errors here)
        if isinstance(made.session_interface, ServerSideSessionInterface):
            made.session_interface.store.close()


# --- Flask 3.1.3's tests/conftest.py fixtures (verbatim) ---


@pytest.fixture
def app():
    app = flask.Flask("flask_test", root_path=os.path.dirname(__file__))
    app.config.update(
        TESTING=True,
        SECRET_KEY="test key",
    )
    return app


@pytest.fixture
def app_ctx(app):
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def req_ctx(app):
    with app.test_request_context() as ctx:
        yield ctx


@pytest.fixture
def client(app):
    return app.test_client()
