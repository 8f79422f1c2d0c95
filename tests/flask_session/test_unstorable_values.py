"""Issue 19, item 1: a value a store cannot hold is the app's error, never an outage.

A value nested too deeply to encode, a session over SESSION_MAX_SIZE, and a session over
memcached's own item limit all fail when the response is saved with UnstorableValue (a
TypeError, so Flask answers 500) naming the session key and the limit; nothing is
written, and none of it is reported as StoreUnavailable (503, Retry-After) or logged
as an outage. On every store and both formats, through the library's demo app (Flask's
test client, and granian for memcached's limit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import flask
import pytest

from flask_session import SessionConfigError, UnstorableValue
from flask_session.codecs import CODECS, DecodeError
from flask_session.settings import DEFAULT_MAX_SIZE, read_settings
from flask_session.stores import STORE_TYPES, store_class
from flask_session.stores.memcached import MemcachedStore
from tests.flask_session.demo_app import create_app as create_demo_app
from tests.reliability import httpkit
from tests.support.memcached_server import MemcachedServer

#: deeper than Python's recursion limit (1000), as deep as the issue's report went
TOO_DEEP = 20_000
#: deep, but well within what the session encodes
DEEP_ENOUGH = 100
#: a SESSION_MAX_SIZE small enough to reach with a few requests
SMALL_LIMIT = 10_000
#: words that would mean the failure was reported as an outage
OUTAGE_WORDS = ("unavailable", "Retry-After", "try again")


@pytest.fixture(params=sorted(CODECS))
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def demo(app_builder: Callable[..., flask.Flask], config: dict) -> flask.Flask:
    # A short lock timeout: a refused save that kept its session locked would make the
    # next request on the cookie wait this long and then answer 503.
    return app_builder(create_demo_app, {"SESSION_LOCK_TIMEOUT": 2, **config})


def assert_app_error(reply, caplog: pytest.LogCaptureFixture, expected: str, *, key: str) -> None:
    """A 500 (not a 503), no Retry-After, no cookie, and a log naming the key."""
    assert reply.status_code == 500, reply.get_data(as_text=True)[:200]
    assert "Retry-After" not in reply.headers
    assert "Set-Cookie" not in reply.headers
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = "\n".join(str(r.exc_info[1]) if r.exc_info else r.getMessage() for r in errors)
    assert f"session[{key!r}] cannot be stored: {expected}" in text, text
    assert isinstance(errors[-1].exc_info[1], UnstorableValue)
    # one error for the request: Flask's second save (while answering it) wrote nothing
    assert "Request finalizing failed" not in caplog.text
    for word in OUTAGE_WORDS:
        assert word.lower() not in caplog.text.lower(), caplog.text


@pytest.mark.parametrize("kind", ["list", "dict", "tuple"])
def test_a_deep_value_is_refused_naming_its_key_and_the_session_is_kept(
    app_builder, store_config: dict, fmt: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = demo(app_builder, {**store_config, "SESSION_SERIALIZATION_FORMAT": fmt})
    client = app.test_client()
    assert client.post("/set/a?value=1").status_code == 200
    caplog.clear()

    reply = client.post(f"/deep/d?levels={TOO_DEEP}&kind={kind}")
    assert_app_error(reply, caplog, "it is nested too deeply", key="d")
    assert client.get("/get").json == {"a": "1"}  # stored session unchanged, not locked

    # A new client's deep value creates no session at all.
    fresh = app.test_client()
    assert fresh.post(f"/deep/d?levels={TOO_DEEP}&kind={kind}").status_code == 500
    assert fresh.get("/get").json == {} and not fresh.get_cookie("session")

    # Deep but encodable values still round-trip.
    assert client.post(f"/deep/d?levels={DEEP_ENOUGH}&kind={kind}").status_code == 200
    value = client.get("/get").json["d"]
    for _ in range(DEEP_ENOUGH):
        value = value["d"] if kind == "dict" else value[0]
    assert value == 0


def test_a_session_over_session_max_size_is_refused_before_writing(
    app_builder, store_config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    app = demo(app_builder, {**store_config, "SESSION_MAX_SIZE": SMALL_LIMIT})
    client = app.test_client()
    assert client.post("/set/a?value=1").status_code == 200
    assert client.post("/blob/b?size=9000").status_code == 200  # within the limit
    caplog.clear()

    # The session as this request would leave it: a, b (9000) and c (2000): over.
    reply = client.post("/blob/c?size=2000")
    assert_app_error(reply, caplog, "it makes the session 11,", key="c")
    assert "over SESSION_MAX_SIZE (10,000 bytes)" in caplog.text
    after = client.get("/get").json
    assert sorted(after) == ["a", "b"] and len(after["b"]) == 9000

    # Room made in the same session: the change fits again.
    assert client.post("/delete/b").status_code == 200
    assert client.post("/blob/c?size=2000").status_code == 200
    assert sorted(client.get("/get").json) == ["a", "c"]
    assert client.post("/incr/n").json == {"value": 1}  # increments unaffected

    # A new client's oversize session is never created.
    fresh = app.test_client()
    assert fresh.post(f"/blob/big?size={SMALL_LIMIT + 1}").status_code == 500
    assert fresh.get("/get").json == {} and not fresh.get_cookie("session")


def test_regenerate_refuses_an_oversize_session_and_keeps_the_old_one(
    app_builder, store_config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    app = demo(app_builder, {**store_config, "SESSION_MAX_SIZE": SMALL_LIMIT})

    @app.post("/grow-then-regenerate")
    def grow_then_regenerate():
        flask.session["x"] = "y" * SMALL_LIMIT
        app.session_interface.regenerate(flask.session)
        return "regenerated"

    client = app.test_client()
    assert client.post("/set/a?value=1").status_code == 200
    cookie = client.get_cookie("session").value
    caplog.clear()
    assert_app_error(client.post("/grow-then-regenerate"), caplog, "it makes the session", key="x")
    assert client.get_cookie("session").value == cookie
    assert client.get("/get").json == {"a": "1"}


def test_session_max_size_is_checked_at_start_up() -> None:
    def read(**config: object):
        return read_settings({"SESSION_TYPE": "filesystem", **config}, "/nonexistent")

    assert read().max_size == DEFAULT_MAX_SIZE == 1_000_000
    assert read(SESSION_MAX_SIZE="2048").max_size == 2048  # from the environment
    assert read(SESSION_MAX_SIZE=2 * 10**9).max_size == 2 * 10**9  # files: only the disk
    for bad in (0, -1, 1.5, "lots", None, True):
        with pytest.raises(SessionConfigError, match="SESSION_MAX_SIZE"):
            read(SESSION_MAX_SIZE=bad)
    for store_type in STORE_TYPES:  # the default is valid whichever store is chosen
        limit = store_class(store_type).max_session_size
        assert limit is None or limit >= DEFAULT_MAX_SIZE, store_type
    memcached = {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED_SERVERS": "127.0.0.1:1"}
    limit = MemcachedStore.max_session_size
    assert limit is not None and DEFAULT_MAX_SIZE < limit < 1024 * 1024
    assert read(**memcached).max_size == DEFAULT_MAX_SIZE  # the default fits every store
    assert read(**memcached, SESSION_MAX_SIZE=limit).max_size == limit
    with pytest.raises(SessionConfigError, match=f"SESSION_MAX_SIZE .* at most {limit:,}"):
        read(**memcached, SESSION_MAX_SIZE=limit + 1)
    with pytest.raises(SessionConfigError, match="SESSION_MAX_SIZE"):
        read(SESSION_TYPE="redis", SESSION_MAX_SIZE=2**30)


@pytest.mark.parametrize("fmt_name", sorted(CODECS))
def test_data_nested_too_deeply_to_decode_is_corrupt_not_a_crash(fmt_name: str) -> None:
    codec = CODECS[fmt_name]
    deep = b"[" * TOO_DEEP + b"]" * TOO_DEEP if fmt_name == "json" else b"\x91" * TOO_DEEP + b"\x90"
    with pytest.raises(DecodeError):
        codec.decode(deep)
    document = (b'{"k":' + deep + b"}") if fmt_name == "json" else b"\x81\xa1k" + deep
    with pytest.raises(DecodeError):
        codec.decode_document(document)


# -- memcached's own item limit ------------------------------------------------------------

#: memcached's -I for these tests: below SESSION_MAX_SIZE's default, so the session's own
#: check passes and the server is what refuses
SMALL_ITEMS = "512k"
BETWEEN_LIMITS = 700_000


@pytest.fixture
def small_item_memcached():
    with MemcachedServer(max_item_size=SMALL_ITEMS) as server:
        yield server


def test_memcached_refusing_an_item_as_too_large_is_the_apps_error(
    app_builder, small_item_memcached: MemcachedServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = {
        "SESSION_TYPE": "memcached",
        "SESSION_MEMCACHED_SERVERS": small_item_memcached.servers,
    }
    client = demo(app_builder, config).test_client()
    assert client.post("/set/a?value=1").status_code == 200
    caplog.clear()
    reply = client.post(f"/blob/big?size={BETWEEN_LIMITS}")
    assert_app_error(reply, caplog, "the session document is 700,", key="big")
    assert "larger than its item size limit (memcached -I)" in caplog.text
    assert client.get("/get").json == {"a": "1"}
    assert client.post("/set/b?value=2").status_code == 200  # the server is fine


def test_a_value_over_memcacheds_default_limit_is_refused_by_session_max_size(
    app_builder, memcached_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED_SERVERS": memcached_servers}
    client = demo(app_builder, config).test_client()
    assert client.post("/set/a?value=1").status_code == 200
    caplog.clear()
    reply = client.post("/blob/big?size=1100000")  # over memcached's 1 MiB items
    assert_app_error(reply, caplog, "it makes the session", key="big")
    assert "over SESSION_MAX_SIZE (1,000,000 bytes)" in caplog.text
    assert client.get("/get").json == {"a": "1"}


def test_memcached_oversize_through_granian_is_a_500_not_a_503(
    granian_server, small_item_memcached: MemcachedServer
) -> None:
    env = {
        "FLASK_SESSION_TYPE": "memcached",
        "FLASK_SESSION_MEMCACHED_SERVERS": small_item_memcached.servers,
    }
    server = granian_server("tests.flask_session.demo_app:create_app()", env=env, workers=1)
    first = httpkit.request(server.url, "POST", "/set/a?value=1")
    cookie = f"session={first.cookie('session')}"
    for path in (f"/blob/big?size={BETWEEN_LIMITS}", f"/deep/d?levels={TOO_DEEP}"):
        reply = httpkit.request(server.url, "POST", path, cookie=cookie)
        assert reply.status == 500 and reply.header("Retry-After") is None, reply
        assert reply.cookie("session") is None
    assert httpkit.request(server.url, "GET", "/get", cookie=cookie).json() == {"a": "1"}
    log = server.log_text()
    assert "session['big'] cannot be stored" in log and "session['d'] cannot be stored" in log
    assert "unavailable" not in log
