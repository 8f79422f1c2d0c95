"""What Flask's own session tests (test_flask_sessions.py) cannot say about this extension,
because they replace the session interface or never use the extension's own decorators:
a failing ``open_session`` of this extension's interface is Flask's 500, and
``@read_only_session`` marks the session accessed (``Vary: Cookie``) only when the view
reads it. The extension is installed on every app by conftest.py."""

from __future__ import annotations

import flask
import pytest

from flask_session import read_only_session

HTTP_INTERNAL_SERVER_ERROR = 500


class OpenFailed(Exception):
    """Raised by the failing ``open_session`` below."""


def test_failing_open_session_is_flasks_500(
    app: flask.Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Flask's test_session_error_pops_context, with this extension's interface failing:
    the lock-release teardown must not turn the error into another (it used Flask's
    ``session`` proxy, which raises AssertionError when no session was opened)."""
    app.testing = False  # Flask's own test runs an untested app: the error becomes a 500
    reached: list[bool] = []

    def failing_open_session(*_args: object) -> None:
        raise OpenFailed

    monkeypatch.setattr(app.session_interface, "open_session", failing_open_session)

    @app.route("/")
    def index() -> str:
        reached.append(True)
        return ""

    response = app.test_client().get("/")
    assert response.status_code == HTTP_INTERNAL_SERVER_ERROR
    assert reached == []
    assert not flask.request
    assert not flask.current_app


def test_read_only_view_varies_on_cookie_only_when_it_reads(
    app: flask.Flask, client: flask.testing.FlaskClient
) -> None:
    @app.post("/")
    def write() -> str:
        flask.session["value"] = "42"
        return ""

    @app.get("/read")
    @read_only_session
    def read() -> str:
        return str(flask.session.get("value"))

    @app.get("/nothing")
    @read_only_session
    def nothing() -> str:
        return ""

    assert "cookie" in client.post("/").vary
    with client:
        response = client.get("/nothing")
        assert "cookie" not in response.vary
        assert not flask.globals.request_ctx._session.accessed
    with client:
        response = client.get("/read")
        assert response.text == "42"
        assert "cookie" in response.vary
        assert flask.globals.request_ctx._session.accessed
