"""Every value Flask's own session keeps round-trips, on both stores and both formats."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import flask
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from flask_session import Session
from flask_session.codecs import CODECS

FLASK_VALUES: dict[str, Any] = {
    "tuple": (1, 2),
    "bytes": b"\x00\xffbin",
    "markup": Markup("<b>hi</b>"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "naive_datetime": datetime(2026, 1, 2, 3, 4, 5, 678901),
    "aware_datetime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    "nested": {"a": [(1, b"x"), {"m": Markup("<i>")}], "b": {"c": None}},
    "tag_like_key": {" t": [1, 2]},
    "tag_like_key_deep": {" di": {" t": "x"}},
    "empty": {},
    "int": 7,
    "text": "plain",
    "float": 1.25,
    "bool": True,
    "none": None,
}


@pytest.mark.parametrize("fmt", sorted(CODECS))
@pytest.mark.parametrize("name", sorted(FLASK_VALUES))
def test_codec_round_trips_exactly(fmt: str, name: str) -> None:
    value = FLASK_VALUES[name]
    decoded = CODECS[fmt].decode(CODECS[fmt].encode(value))
    assert decoded == value
    assert type(decoded) is type(value)
    assert repr(decoded) == repr(value)  # nested types too (tuple stays tuple, Markup stays Markup)


@pytest.mark.parametrize("fmt", sorted(CODECS))
def test_plain_ints_stay_plain_for_the_stores_increments(fmt: str) -> None:
    # The Redis store increments JSON ints with HINCRBY and msgpack ints in Lua.
    assert CODECS[fmt].encode(5) == {"json": b"5", "msgpack": b"\x05"}[fmt]
    assert CODECS[fmt].encode(-300) == {"json": b"-300", "msgpack": b"\xd1\xfe\xd4"}[fmt]


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.binary()
    | st.floats(allow_nan=False, allow_infinity=False) | st.uuids()
    | st.datetimes().map(lambda d: d.replace(fold=0)),
    lambda children: st.lists(children) | st.tuples(children, children)
    | st.dictionaries(st.text(), children),
    max_leaves=12,
)  # fmt: skip


@given(json_like)
def test_any_flask_value_round_trips(value: Any) -> None:
    for codec in CODECS.values():
        decoded = codec.decode(codec.encode(value))
        assert repr(decoded) == repr(value)


@pytest.fixture(params=["json", "msgpack"])
def value_app(
    request: pytest.FixtureRequest, store_config: dict[str, Any], app_builder: Any
) -> flask.Flask:
    def factory(config: dict[str, Any]) -> flask.Flask:
        app = flask.Flask(__name__)
        app.config.update(SECRET_KEY="values", SESSION_SERIALIZATION_FORMAT=request.param, **config)
        Session(app)

        @app.post("/flash")
        def flash() -> str:
            flask.flash(Markup("<b>saved</b>"), "success")
            flask.flash("plain")
            flask.session["t"] = (1, 2)
            flask.session["all"] = FLASK_VALUES
            return "ok"

        @app.get("/read")
        def read() -> Any:
            messages = flask.get_flashed_messages(with_categories=True)
            return repr((messages, flask.session["t"], flask.session["all"]))

        @app.post("/bad")
        def bad() -> str:
            flask.session["ok"] = 1
            flask.session["things"] = {1, 2}
            return "ok"

        return app

    return app_builder(factory, store_config)


def test_flash_markup_and_tuples_round_trip_on_every_store(value_app: flask.Flask) -> None:
    client = value_app.test_client()
    assert client.post("/flash").status_code == 200
    body = client.get("/read").get_data(as_text=True)
    expected = (
        [("success", Markup("<b>saved</b>")), ("message", "plain")],
        (1, 2),
        FLASK_VALUES,
    )
    assert body == repr(expected)


def test_an_unstorable_value_names_its_session_key(
    value_app: flask.Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = value_app.test_client()
    assert client.post("/bad").status_code == 500
    assert "session['things'] cannot be stored: set is not a type a session can hold" in caplog.text
    assert client.get("/read").status_code != 200  # nothing was written: no session


def test_json_refuses_infinities_instead_of_writing_null() -> None:
    with pytest.raises(TypeError, match="inf"):
        CODECS["json"].encode(float("inf"))
    with pytest.raises(TypeError, match="nan"):
        CODECS["json"].encode([float("nan")])
    assert CODECS["msgpack"].decode(CODECS["msgpack"].encode(float("inf"))) == float("inf")
