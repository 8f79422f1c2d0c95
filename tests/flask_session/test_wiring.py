"""The one path from configuration to sessions: read once, one way, the same every time."""

from __future__ import annotations

import pytest
from flask import Flask, session

from flask_session import ServerSideSessionInterface, Session, StoreUnavailable
from flask_session.filesystem import FileSystemSessionInterface
from flask_session.wiring import configure, install


def comparable(settings) -> dict:
    """The checked settings, objects (clients) by type: what two set-ups must share."""
    return {
        key: value if isinstance(value, (str, int, float, bool, type(None))) else type(value)
        for key, value in settings.checked.items()
    }


def test_session_twice_on_one_app_gives_the_same_result():
    # 0.8's localhost fallback must not turn into a refusal the second time round.
    app = Flask(__name__)
    app.config.update(SESSION_TYPE="redis", SESSION_LOCK_TIMEOUT="2")
    Session(app)
    first = app.session_interface
    Session(app)
    second = app.session_interface
    try:
        assert comparable(first.settings) == comparable(second.settings)
        assert second.settings.store["SESSION_REDIS_URL"] == "redis://localhost:6379/0"
        assert "SESSION_REDIS_URL" not in app.config  # a fallback, not the app's choice
        assert app.config["SESSION_LOCK_TIMEOUT"] == 2  # checked, published as a number
    finally:
        first.store.close()
        second.store.close()


def test_init_app_on_a_second_app_gives_the_same_result(tmp_path):
    extension = Session()
    apps = []
    for _ in range(2):
        app = Flask(__name__, instance_path=str(tmp_path))
        app.config.update(SESSION_COOKIE_SECURE="true", SESSION_ID_LENGTH="24")
        extension.init_app(app)
        apps.append(app)
    first, second = (app.session_interface.settings for app in apps)
    assert comparable(first) == comparable(second)
    assert [app.config["SESSION_COOKIE_SECURE"] for app in apps] == [True, True]


def test_the_core_alone_serves_sessions(tmp_path):
    app = Flask(__name__)
    app.config["SESSION_FILE_DIR"] = str(tmp_path)

    @app.post("/n")
    def bump() -> dict:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    settings, store = configure(app)
    install(app, ServerSideSessionInterface(settings, store))
    client = app.test_client()
    assert [client.post("/n").get_json()["n"] for _ in range(3)] == [1, 2, 3]
    assert app.config["SESSION_TYPE"] == "filesystem"  # defaults published


def test_an_interface_built_without_an_app_is_installed_at_the_first_request(tmp_path):
    app = Flask(__name__)
    interface = FileSystemSessionInterface(cache_dir=str(tmp_path))
    app.session_interface = interface

    @app.get("/down")
    def down() -> str:
        raise StoreUnavailable("test outage", reason="the session store is down for a test")

    assert "open_session" in vars(interface)  # the first request's one-off hook
    response = app.test_client().get("/down")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "open_session" not in vars(interface)  # later requests: the class's own method
    assert app.test_client().get("/down").status_code == 503


@pytest.mark.parametrize("value", ["filesystem", "FileSystem", " filesystem "])
def test_the_store_type_is_published_in_its_checked_spelling(tmp_path, value):
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["SESSION_TYPE"] = value
    Session(app)
    assert app.config["SESSION_TYPE"] == "filesystem"
