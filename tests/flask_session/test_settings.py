"""``Session(app)`` checks and normalises the session settings of any Flask app, and the
readers stores use for their own settings (flask_session/readers.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from flask_session import Session, SessionConfigError
from flask_session.readers import config_bool, config_choice, config_number, config_text


def plain_app(tmp_path, **config) -> Flask:
    app = Flask(__name__)
    app.config.update(SESSION_FILE_DIR=str(tmp_path / "s"), **config)
    return app


def test_any_app_gets_its_settings_written_back_in_their_proper_types(tmp_path):
    app = plain_app(
        tmp_path,
        SESSION_COOKIE_SECURE="False",
        SESSION_COOKIE_HTTPONLY="on",
        SESSION_PERMANENT="no",
        SESSION_LOCKING="OFF",
        SESSION_REFRESH_EACH_REQUEST="0",
        PERMANENT_SESSION_LIFETIME="2",
        SESSION_LOCK_TIMEOUT="2.5",
        SESSION_ID_LENGTH="24",
        SESSION_SERIALIZATION_FORMAT="MsgPack",
        SESSION_COOKIE_SAMESITE="strict",
    )
    Session(app)
    expected = {
        "SESSION_COOKIE_SECURE": False,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_PERMANENT": False,
        "SESSION_LOCKING": False,
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=2),
        "SESSION_LOCK_TIMEOUT": 2.5,
        "SESSION_ID_LENGTH": 24,
        "SESSION_SERIALIZATION_FORMAT": "msgpack",
        "SESSION_COOKIE_SAMESITE": "Strict",
    }
    held = {key: app.config[key] for key in expected}
    assert held == expected
    assert [type(value) for value in held.values()] == [type(value) for value in expected.values()]
    assert app.session_interface.settings.locking is False
    assert app.session_interface.store.codec.name == "msgpack"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SESSION_COOKIE_SECURE", "False-ish"),
        ("PERMANENT_SESSION_LIFETIME", "abc"),
        ("PERMANENT_SESSION_LIFETIME", 0),
        ("PERMANENT_SESSION_LIFETIME", 1e12),
        ("SESSION_LOCK_TIMEOUT", -5),
        ("SESSION_COOKIE_NAME", "two words"),
        ("SESSION_COOKIE_SAMESITE", "sometimes"),
        ("SESSION_TYPE", "bogus"),
    ],
)
def test_any_app_with_a_bad_setting_fails_at_session_app(tmp_path, key, value):
    app = plain_app(tmp_path, **{key: value})
    with pytest.raises(SessionConfigError, match=key):
        Session(app)


def test_samesite_none_still_needs_secure_after_normalising(tmp_path):
    app = plain_app(tmp_path, SESSION_COOKIE_SAMESITE="none", SESSION_COOKIE_SECURE="false")
    with pytest.raises(SessionConfigError, match="SESSION_COOKIE_SAMESITE = 'None' needs"):
        Session(app)


# -- the readers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, False), ("Yes", True), (" off ", False), ("TRUE", True), ("0", False)],
)
def test_config_bool_accepts(value, expected):
    assert config_bool({"K": value}, "K") is expected


@pytest.mark.parametrize("value", ["", "y", "2", 2, None, 1.0, "truthy"])
def test_config_bool_refuses(value):
    with pytest.raises(SessionConfigError, match="^K is .*use true or false"):
        config_bool({"K": value}, "K")


def test_config_number_parses_text_and_keeps_whole_numbers_whole():
    assert config_number({"K": "2.5"}, "K") == 2.5
    assert type(config_number({"K": 3}, "K")) is int
    assert config_number({"K": "7"}, "K", integer=True) == 7
    with pytest.raises(SessionConfigError, match=r"K is 'x'; it must be a number of s at least 1"):
        config_number({"K": "x"}, "K", minimum=1, what="s")
    with pytest.raises(SessionConfigError, match=r"at most 1,000 \(say why\)"):
        config_number({"K": 1001}, "K", maximum=1000, hint="say why")
    with pytest.raises(SessionConfigError, match="whole number"):
        config_number({"K": 2.5}, "K", integer=True)


def test_config_choice_ignores_case_and_lists_the_choices():
    assert config_choice({"K": " Redis "}, "K", ["filesystem", "redis"]) == "redis"
    with pytest.raises(SessionConfigError, match="K is 'x'; choose one of 'a', 'b'"):
        config_choice({"K": "x"}, "K", ["a", "b"])


def test_config_text_explains_json_parsed_environment_values():
    assert config_text({"K": "abc"}, "K") == "abc"
    assert config_text({"K": None}, "K", none=True) is None
    assert config_text({"K": ""}, "K", empty=True) == ""
    with pytest.raises(SessionConfigError, match="K is 123 \\(int\\).*FLASK_K="):
        config_text({"K": 123}, "K")


def test_a_bare_mapping_without_flasks_keys_is_checked_for_what_it_has():
    """An interface built without an app has only SESSION_* keys: Flask's are skipped."""
    from flask_session.settings import FLASK_SETTINGS, read_settings

    settings = read_settings({"SESSION_LOCKING": "off", "SESSION_ID_LENGTH": "20"}, "instance")
    assert (settings.locking, settings.id_bytes) == (False, 20)
    assert not set(settings.checked) & {row.key for row in FLASK_SETTINGS}
