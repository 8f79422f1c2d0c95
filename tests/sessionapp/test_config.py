"""Settings: config.py defaults, FLASK_* overrides, and start-up failures that name the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Config

from flask_session import SessionConfigError
from sessionapp import DEFAULT_CONFIG_FILE, create_app

from .conftest import REPO_ROOT


@pytest.fixture
def defaults() -> Config:
    """config.py as loaded on its own, without building an app (which would create dirs)."""
    config = Config(str(REPO_ROOT))
    config.from_pyfile(DEFAULT_CONFIG_FILE)
    return config


def test_the_defaults_file_is_the_top_level_config_py():
    assert str(REPO_ROOT / "config.py") == DEFAULT_CONFIG_FILE


def test_defaults_use_the_filesystem_store_with_a_real_directory(defaults):
    assert defaults["SESSION_TYPE"] == "filesystem"
    assert defaults["SESSION_FILE_DIR"] == str(REPO_ROOT / "instance" / "flask_session")
    assert defaults["SESSION_REDIS_URL"] is None  # no silent localhost fallback
    assert defaults["SESSION_REDIS"] is None


def test_default_cookie_and_session_settings(defaults):
    assert defaults["SESSION_COOKIE_HTTPONLY"] is True
    assert defaults["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert defaults["SESSION_COOKIE_SECURE"] is False
    assert defaults["SESSION_COOKIE_NAME"] == "session"
    assert defaults["SESSION_PERMANENT"] is True
    assert defaults["SESSION_REFRESH_EACH_REQUEST"] is True
    assert defaults["PERMANENT_SESSION_LIFETIME"] == 31 * 24 * 3600
    assert defaults["SESSION_LOCKING"] is True
    assert defaults["SESSION_LOCK_TIMEOUT"] == 10
    assert defaults["SESSION_SERIALIZATION_FORMAT"] == "json"
    assert defaults["SESSION_ID_LENGTH"] == 32
    assert defaults["SESSION_KEY_PREFIX"] == "session:"
    assert defaults["SHARED_COUNTER_NAME"] == "shared"


def test_every_session_setting_flask_session_reads_has_a_default_here(defaults, tmp_path):
    """config.py is the one place to look: nothing falls through to a hidden default."""
    app = create_app({"TESTING": True, "SESSION_FILE_DIR": str(tmp_path)})
    read_by_the_app = {
        key
        for key in app.config
        if key.startswith(("SESSION_", "SHARED_COUNTER_", "SECURITY_"))
        or key == "PERMANENT_SESSION_LIFETIME"
    }
    assert read_by_the_app <= set(defaults), read_by_the_app - set(defaults)


def test_the_app_uses_the_defaults(tmp_path):
    app = create_app({"TESTING": True, "SESSION_FILE_DIR": str(tmp_path / "s")})
    assert app.session_interface.store.name == "filesystem"
    assert app.session_interface.store.directory == str(tmp_path / "s")
    assert app.permanent_session_lifetime == timedelta(days=31)


def test_environment_switches_to_redis(monkeypatch, redis_url, build_app):
    monkeypatch.setenv("FLASK_SESSION_TYPE", "redis")
    monkeypatch.setenv("FLASK_SESSION_REDIS_URL", redis_url)
    app = build_app({"TESTING": True})
    assert app.session_interface.store.name == "redis"
    assert app.test_client().get("/healthz").get_json() == {"status": "ok", "store": "redis"}


def test_environment_overrides_are_parsed_like_flask_does(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASK_SESSION_FILE_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("FLASK_SESSION_LOCK_TIMEOUT", "2.5")
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("FLASK_SECRET_KEY", "s3cret-from-env")
    monkeypatch.setenv("FLASK_SHARED_COUNTER_NAME", "tickets")
    app = create_app({"TESTING": True})
    store = app.session_interface.store
    assert store.directory == str(tmp_path / "from-env")
    assert app.config["SESSION_LOCK_TIMEOUT"] == 2.5
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SECRET_KEY"] == "s3cret-from-env"
    client = app.test_client()
    assert "Secure" in client.post("/inc").headers["Set-Cookie"]
    client.post("/shared/inc")
    assert store.counter_value("tickets") == 1
    assert os.path.exists(store.counter_path("tickets"))


# -- what the issue found: text from the environment read as the wrong type -----------------


@pytest.mark.parametrize("spelling", ["False", "0", "off", "NO", "false"])
def test_cookie_secure_false_from_the_environment_sends_no_secure_attribute(
    monkeypatch, tmp_path, spelling
):
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SECURE", spelling)
    app = create_app({"TESTING": True, "SESSION_FILE_DIR": str(tmp_path)})
    cookie = app.test_client().post("/inc").headers["Set-Cookie"]
    assert "Secure" not in cookie, cookie


@pytest.mark.parametrize("spelling", ["False", "off", "0"])
def test_locking_and_permanent_false_from_the_environment_are_off(monkeypatch, tmp_path, spelling):
    monkeypatch.setenv("FLASK_SESSION_LOCKING", spelling)
    monkeypatch.setenv("FLASK_SESSION_PERMANENT", spelling)
    app = create_app({"TESTING": True, "SESSION_FILE_DIR": str(tmp_path)})
    assert app.session_interface.settings.locking is False
    cookie = app.test_client().post("/inc").headers["Set-Cookie"]
    assert "Expires" not in cookie, cookie  # a browser-session cookie


def test_a_lifetime_of_2_from_the_environment_is_2_seconds(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASK_PERMANENT_SESSION_LIFETIME", '"2"')  # text, not a JSON number
    app = create_app({"TESTING": True, "SESSION_FILE_DIR": str(tmp_path)})
    assert app.permanent_session_lifetime == timedelta(seconds=2)
    client = app.test_client()
    before = time.time()
    response = client.post("/inc")
    assert response.status_code == 200
    expires = parsedate_to_datetime(
        re.search(r"Expires=([^;]+)", response.headers["Set-Cookie"]).group(1)
    ).timestamp()
    assert before - 1 <= expires <= time.time() + 3
    (session_file,) = [p for p in os.listdir(tmp_path) if p.endswith(".session")]
    assert os.stat(tmp_path / session_file).st_mtime <= time.time() + 3  # mtime = expiry
    assert client.post("/inc").get_json() == {"counter": 2}


def test_test_config_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASK_SESSION_FILE_DIR", str(tmp_path / "env"))
    app = create_app({"SESSION_FILE_DIR": str(tmp_path / "explicit")})
    assert app.session_interface.store.directory == str(tmp_path / "explicit")


def test_a_module_named_config_elsewhere_on_the_path_is_not_used(monkeypatch, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "config.py").write_text('SESSION_TYPE = "bogus"\n')
    monkeypatch.syspath_prepend(str(shadow))
    monkeypatch.delitem(sys.modules, "config", raising=False)
    app = create_app({"SESSION_FILE_DIR": str(tmp_path / "s")})
    assert app.session_interface.store.name == "filesystem"


# -- settings that must stop the service at start-up -----------------------------------------


def test_redis_without_a_url_refuses_to_start(monkeypatch):
    monkeypatch.setenv("FLASK_SESSION_TYPE", "redis")
    with pytest.raises(SessionConfigError, match="SESSION_REDIS_URL"):
        create_app()


def test_an_unknown_store_refuses_to_start(tmp_path):
    """A store this project does not have (0.8 had MongoDB) is refused at start-up, and
    the refusal names the setting, the value and every store there is to choose from."""
    with pytest.raises(SessionConfigError) as refused:
        create_app({"SESSION_TYPE": "mongodb", "SESSION_FILE_DIR": str(tmp_path)})
    message = str(refused.value)
    assert message.startswith("SESSION_TYPE is 'mongodb'"), message
    assert "choose one of" in message
    for choice in ("filesystem", "redis", "sqlalchemy", "memcached"):
        assert repr(choice) in message


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a/b", "../up", "x.session", "x.tmp", "sp ace", 42, None]
)
def test_an_unsafe_shared_counter_name_refuses_to_start(tmp_path, name):
    with pytest.raises(SessionConfigError, match="SHARED_COUNTER_NAME"):
        create_app({"SESSION_FILE_DIR": str(tmp_path), "SHARED_COUNTER_NAME": name})


@pytest.mark.parametrize("key", ["SHARED_COUNTER_KEY", "SHARED_COUNTER_FILE"])
def test_the_retired_shared_counter_settings_are_refused_with_the_replacement(tmp_path, key):
    with pytest.raises(SessionConfigError, match=f"{key} is no longer read.*SHARED_COUNTER_NAME"):
        create_app({"SESSION_FILE_DIR": str(tmp_path), key: "shared-counter"})


# -- the entry point ---------------------------------------------------------------------------


def test_app_py_builds_the_service_from_the_environment(tmp_path):
    env = {**os.environ, "FLASK_SESSION_FILE_DIR": str(tmp_path / "s")}
    result = subprocess.run(
        [sys.executable, "-c", "import app; print(app.app.session_interface.store.name)"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "filesystem"


@pytest.mark.parametrize(
    ("key", "value"),
    [("PERMANENT_SESSION_LIFETIME", "abc"), ("SESSION_COOKIE_SECURE", "maybe")],
)
def test_servers_refuse_to_start_on_a_bad_environment_value(
    app_server, tmp_path, key, value
):
    """As operators run it: the server exits before serving (gunicorn: the workers fail to
    boot; granian: the launcher builds the app first), and the log names the setting."""
    env = {"FLASK_SESSION_FILE_DIR": str(tmp_path / "s"), f"FLASK_{key}": value}
    with pytest.raises(RuntimeError) as failure:
        app_server("app:app", env=env, workers=1, threads=1, ready_timeout=15)
    assert f"{key} is {value!r}" in str(failure.value)
