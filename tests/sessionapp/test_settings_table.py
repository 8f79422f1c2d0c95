"""Every setting the service reads, checked at start-up: one table, two routes in.

Each row is a setting, the bad values it must refuse (as typed into ``FLASK_<KEY>``;
from_prefixed_env parses them as JSON where it can, and ``test_config`` is given the
same parsed value) and good spellings with the value ``app.config`` must hold
afterwards (in its proper type: ``"False"`` becomes False). Every bad value must stop
``create_app`` with SessionConfigError naming the key, both from ``test_config`` and
from the environment; every good one must start a service that answers requests.

Store-specific settings (a store class's own ``settings`` rows) get rows with ``store=``
naming the store they need, in that store's kit (``setting_rows`` in tests/support/kits;
"sqlite" and "postgresql" are the sqlalchemy store on each database), set up by the kit;
the core's are in SETTINGS here.
``test_every_setting_in_config_py_has_a_row`` keeps the table complete.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Config

from flask_session import SessionConfigError
from sessionapp import DEFAULT_CONFIG_FILE, create_app
from tests.conftest import store_settings
from tests.support.kits import KITS
from tests.support.setting_rows import BOOL_BAD, BOOL_GOOD, Setting


def as_from_the_environment(text: str) -> Any:
    """What Flask's from_prefixed_env makes of ``text``: JSON if it parses, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


SETTINGS = [
    Setting(
        "SESSION_TYPE",
        ("bogus", "", "null", "1"),
        (("filesystem", "filesystem"), (" FileSystem", "filesystem")),
    ),
    Setting(
        "SESSION_SERIALIZATION_FORMAT",
        ("pickle", "", "null", "true", "yaml"),
        (("json", "json"), ("msgpack", "msgpack"), ("MsgPack", "msgpack")),
    ),
    Setting("SESSION_PERMANENT", BOOL_BAD, BOOL_GOOD, bad_python=(None, 2, "y")),
    Setting(
        "SESSION_LOCKING",
        BOOL_BAD,
        (*BOOL_GOOD, ("auto", "auto"), (" Auto", "auto")),
        bad_python=(None, 2),
    ),
    Setting("SESSION_USE_SIGNER", BOOL_BAD, BOOL_GOOD, bad_python=(None, 2)),
    Setting(
        "SESSION_08_SERVERS",
        BOOL_BAD,
        (*BOOL_GOOD, ("auto", "auto"), (" AUTO", "auto")),
        bad_python=(None, 2),
    ),
    Setting("SESSION_REFRESH_EACH_REQUEST", BOOL_BAD, BOOL_GOOD, bad_python=(None,)),
    Setting("SESSION_COOKIE_SECURE", BOOL_BAD, BOOL_GOOD, bad_python=(None,)),
    Setting("SESSION_COOKIE_HTTPONLY", BOOL_BAD, BOOL_GOOD, bad_python=(None,)),
    Setting(
        "SESSION_COOKIE_PARTITIONED",
        BOOL_BAD,
        BOOL_GOOD,
        bad_python=(None,),
        extra={"SESSION_COOKIE_SECURE": True},
    ),
    Setting(
        "SESSION_LOCK_TIMEOUT",
        ("abc", "0", "-5", "1e12", "NaN", "Infinity", "3601", "0.001", "true", "", "null"),
        (("2.5", 2.5), ("10", 10), ("0.01", 0.01), ("3600", 3600)),
        bad_python=(None, True, [1]),
    ),
    Setting(
        "SESSION_MAX_SIZE",
        ("abc", "0", "-1", "1.5", "1e400", "true", "", "null"),
        (("2048", 2048), ("1000000", 1000000), ("1e9", 1_000_000_000)),
        bad_python=(None, True, 2.5),
    ),
    Setting(
        "SESSION_ID_LENGTH",
        ("abc", "15", "257", "32.5", "0", "-32", "true", "", "null"),
        (("16", 16), ("256", 256), ("32", 32)),
        bad_python=(None, 32.5, True),
    ),
    Setting(
        "PERMANENT_SESSION_LIFETIME",
        ("abc", "0", "-5", "1e12", "0.5", "315360001", "true", "", "null", "NaN"),
        (
            ("2", timedelta(seconds=2)),
            ("315360000", timedelta(days=3650)),
            ("86400", timedelta(days=1)),
            ("2.5", timedelta(seconds=2.5)),
        ),
        bad_python=(timedelta(0), timedelta(days=3651), timedelta(seconds=-1), None),
    ),
    Setting(
        "SESSION_METRICS",
        ("statsd", "1", "true", "[1]", "prometheus2"),
        (("prometheus", "prometheus"), (" Prometheus", " Prometheus"), ("null", None)),
        bad_python=(5, object()),
    ),
    Setting("SESSION_KEY_PREFIX", ("123", "true", "null", "[1]"), (("app1:", "app1:"), ("", ""))),
    Setting("SESSION_FILE_DIR", ("", "null", "123", " "), bad_python=(None,)),
    Setting(
        "SESSION_COOKIE_NAME",
        ("a b", "a;b", "", "null", "123", "sess=ion", "séance"),
        (("sid", "sid"), ("my.session", "my.session")),
    ),
    Setting(
        "SESSION_COOKIE_DOMAIN",
        ("exa mple.org", "a;b", "123", "http://example.org", "example.org/path"),
        (("example.org", "example.org"), ("null", None), ("", None)),
        cookie_returns=False,
    ),
    Setting(
        "SESSION_COOKIE_PATH",
        ("app", "/a b", "/a;b", "123", "true"),
        (("/app", "/app"), ("/", "/"), ("null", None)),
        cookie_returns=False,
    ),
    Setting(
        "SESSION_COOKIE_SAMESITE",
        ("sometimes", "1", "true", "", "Laxx"),
        (("lax", "Lax"), ("STRICT", "Strict"), ("Lax", "Lax"), ("null", None)),
    ),
    Setting(
        "SECURITY_HSTS_SECONDS",
        ("abc", "-1", "63072001", "1.5", "true", "", "null"),
        (("0", 0), ("31536000", 31536000), ("63072000", 63072000)),
    ),
    Setting(
        "SHARED_COUNTER_NAME",
        ("", "a/b", ".hidden", "a.b", "x" * 65, "123", "sp ace", "null", "x.session"),
        (("tickets", "tickets"), ("Shared_2", "Shared_2"), ("a-b", "a-b")),
    ),
    Setting(
        "SESSION_ABSOLUTE_LIFETIME",
        ("0", "0.5", "soon", "true", "[1]", "315360001"),
        (("28800", 28800), ("1.5", 1.5), ("null", None), ("", None)),
    ),
    Setting(
        "SESSION_REGENERATE_GRACE",
        ("-1", "61", "soon", "true", "null", ""),
        (("0", 0), ("2.5", 2.5), ("5", 5)),
    ),
    # Flask's, not in config.py: the cookie's Path when SESSION_COOKIE_PATH is unset.
    Setting("APPLICATION_ROOT", ("app", "123", "/a b", "null"), (("/", "/"), ("/app", "/app"))),
    Setting("SECRET_KEY", ("12345", "true", ""), (("s3cret", "s3cret"), ("null", None))),
    # Retired settings: refused whatever their value, so nobody believes they still apply.
    Setting("SHARED_COUNTER_KEY", ("sessionapp:shared-counter", "x")),
    Setting("SHARED_COUNTER_FILE", ("shared-counter", "x")),
]
# each store's own settings: its kit's rows (tests/support/kits), in the kits' order
SETTINGS += [row for kit in KITS.values() for row in kit.setting_rows]

#: keys of config.py that no row covers, and why
NOT_IN_THE_TABLE = {
    key: why for kit in KITS.values() for key, why in kit.python_only_settings.items()
}


def rows(kind: str) -> list[Any]:
    params = []
    for setting in SETTINGS:
        values = {"bad": setting.bad, "good": setting.good, "bad_python": setting.bad_python}
        for value in values[kind]:
            shown = value[0] if kind == "good" else value
            params.append(pytest.param(setting, value, id=f"{setting.key}={shown!r}"))
    return params


@pytest.fixture
def base_config(tmp_path: Path, request: pytest.FixtureRequest):
    """The settings a row's test starts from: a private store of the row's type."""

    def make(setting: Setting) -> dict[str, Any]:
        config: dict[str, Any] = {"TESTING": True, "SESSION_FILE_DIR": str(tmp_path / "s")}
        if setting.store is not None:  # a kit's store_type, set up by the kit
            config.update(store_settings(setting.store, tmp_path / "store", request))
        config.update(setting.extra)
        config.pop(setting.key, None)  # the row's value comes from the test
        return config

    return make


def refused(setting: Setting, start) -> None:
    with pytest.raises(SessionConfigError, match=re.escape(setting.key)) as raised:
        app = start()
        # Only reached on a defect: close what was opened before failing the test.
        client = getattr(app.session_interface.store, "redis", None)
        if client is not None:
            client.connection_pool.disconnect()
    assert "Traceback" not in str(raised.value)


@pytest.mark.parametrize(("setting", "text"), rows("bad"))
def test_a_bad_value_in_test_config_is_refused_at_start_up(setting, text, base_config):
    value = as_from_the_environment(text)
    refused(setting, lambda: create_app({**base_config(setting), setting.key: value}))


@pytest.mark.parametrize(("setting", "text"), rows("bad"))
def test_a_bad_value_in_the_environment_is_refused_at_start_up(
    setting, text, base_config, monkeypatch
):
    monkeypatch.setenv(f"FLASK_{setting.key}", text)
    refused(setting, lambda: create_app(base_config(setting)))


@pytest.mark.parametrize(("setting", "value"), rows("bad_python"))
def test_a_bad_python_value_is_refused_at_start_up(setting, value, base_config):
    refused(setting, lambda: create_app({**base_config(setting), setting.key: value}))


@pytest.mark.parametrize(("setting", "spelling"), rows("good"))
@pytest.mark.parametrize("source", ["environment", "test_config"])
def test_a_good_spelling_is_accepted_in_its_proper_type_and_the_service_works(
    setting, spelling, source, base_config, monkeypatch, app_builder
):
    text, expected = spelling
    config = base_config(setting)
    if source == "environment":
        monkeypatch.setenv(f"FLASK_{setting.key}", text)
    else:
        config[setting.key] = as_from_the_environment(text)
    app = app_builder(create_app, config)
    held = app.config[setting.key]
    assert held == expected and type(held) is type(expected), (held, expected)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    for _ in range(2):
        response = client.post("/inc")
        assert response.status_code == 200, response.text
    if setting.cookie_returns:
        assert response.get_json() == {"counter": 2}
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200


def test_every_setting_in_config_py_has_a_row():
    config = Config(str(Path(DEFAULT_CONFIG_FILE).parent))
    config.from_pyfile(DEFAULT_CONFIG_FILE)
    covered = {setting.key for setting in SETTINGS} | set(NOT_IN_THE_TABLE)
    assert set(config) <= covered, set(config) - covered
