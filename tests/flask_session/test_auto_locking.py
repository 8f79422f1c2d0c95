"""SESSION_LOCKING='auto' (the default, issue 23): requests that only read the session
never wait for one another; requests that write stay exact.

In-process on every store for the rules (what locks, the check at a reader's first write,
the conflict); on real granian workers for the behaviour a user sees.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import request, session

from .test_concurrency import DEMO_APP, new_client
from .test_early_release import finished, wait_for_mark
from .test_session_contract import sid_of

#: the lock timeout of the in-process apps: a request that waits for a held lock fails
#: after this long with 503
SHORT_LOCK = 0.5


@pytest.fixture
def app(make_app):
    app = make_app(SESSION_LOCK_TIMEOUT=SHORT_LOCK)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # errors answered as a server would

    @app.post("/maybe-write")
    def maybe_write():
        # A reader endpoint that now and then writes what it computed from what it read.
        x = session.get("x", 0)
        hook = app.config.get("BETWEEN_READ_AND_WRITE")
        if hook:
            hook()
        if "write" in request.args:
            session["y"] = int(x) + 1
        return {"x": x}

    return app


def other_request_saves(app, sid, **values):
    """What another request of the same session would do: save ``values`` under the lock."""
    store = app.session_interface.store
    codec = store.codec
    held = store.load(sid, lock=True, refresh_ttl=None)
    encoded = {key: codec.encode(value) for key, value in values.items()}
    store.save(sid, encoded, [], ttl=3600, create=False, lock=held.lock)


def test_the_default_is_auto_and_true_and_false_keep_their_meaning(make_app):
    assert make_app().session_interface.settings.locking == "auto"
    assert make_app(SESSION_LOCKING="AUTO ").session_interface.settings.locking == "auto"
    assert make_app(SESSION_LOCKING="on").session_interface.settings.locking is True
    assert make_app(SESSION_LOCKING=False).session_interface.settings.locking is False


def test_a_bad_locking_value_is_refused_naming_the_key(make_app):
    from flask_session import SessionConfigError

    with pytest.raises(SessionConfigError, match=r"SESSION_LOCKING is 'sometimes'.*'auto'"):
        make_app(SESSION_LOCKING="sometimes")


def test_an_endpoint_seen_only_reading_stops_taking_the_lock(app, make_app):
    # another worker's store: its locks' lease (on a network store) outlives the test
    store = make_app(SESSION_LOCK_TIMEOUT=30).session_interface.store
    client = app.test_client()
    client.post("/set/a")
    sid = sid_of(client)
    held = store.load(sid, lock=True, refresh_ttl=None)  # another request holds the lock
    try:
        # never seen: pessimistic, it waits for the lock and gives up after the timeout
        assert client.get("/get").status_code == 503
        store.release(sid, held.lock)
        assert client.get("/get").json == {"a": "x"}  # seen to finish without writing
        held = store.load(sid, lock=True, refresh_ttl=None)
        started = time.monotonic()
        assert client.get("/get").json == {"a": "x"}  # a reader now: no waiting
        assert time.monotonic() - started < SHORT_LOCK
        # an endpoint that wrote keeps locking
        response = client.post("/set/a?value=y")
        assert response.status_code == 503
    finally:
        store.release(sid, held.lock)
    endpoints = app.session_interface.endpoint_locking
    assert (endpoints.locks("get"), endpoints.locks("set_key"), endpoints.locks("nope")) == (
        False,
        True,
        True,
    )


def test_a_readers_write_keeps_what_other_requests_saved_meanwhile(app):
    client = app.test_client()
    client.post("/set/x?value=1")
    client.post("/maybe-write")  # learned: a reader
    sid = sid_of(client)
    # Another request changes a key this one did not read: no conflict, and its change
    # is kept (this request's copy is re-based on the stored session under the lock).
    app.config["BETWEEN_READ_AND_WRITE"] = lambda: other_request_saves(app, sid, other=7)
    assert client.post("/maybe-write?write").status_code == 200
    app.config["BETWEEN_READ_AND_WRITE"] = None
    assert client.get("/get").json == {"x": "1", "y": 2, "other": 7}
    assert app.session_interface.endpoint_locking.conflicts == 0
    assert app.session_interface.endpoint_locking.locks("maybe_write")  # it wrote: locks now


def test_a_reader_whose_read_changed_before_its_write_fails_retryably(app, caplog):
    client = app.test_client()
    client.post("/set/x?value=1")
    client.post("/maybe-write")  # learned: a reader
    sid = sid_of(client)
    app.config["BETWEEN_READ_AND_WRITE"] = lambda: other_request_saves(app, sid, x=5)
    with caplog.at_level(logging.WARNING, logger="flask_session.session"):
        response = client.post("/maybe-write?write")
    app.config["BETWEEN_READ_AND_WRITE"] = None
    # Writing y from the x it read would lose the other request's x=5: refused instead.
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "changed by another request" in response.text
    assert "session conflict on endpoint 'maybe_write'" in caplog.text and "['x']" in caplog.text
    endpoints = app.session_interface.endpoint_locking
    assert endpoints.conflicts == 1 and endpoints.locks("maybe_write")
    assert client.get("/get").json == {"x": 5}  # nothing written, the lock released
    # the retry succeeds: the endpoint now locks at first access
    assert client.post("/maybe-write?write").json == {"x": 5}
    assert client.get("/get").json == {"x": 5, "y": 6}


def test_a_readers_change_in_place_is_checked_and_saved(app):
    @app.post("/append")
    def append():
        session.get("items", []).append("more")
        return "ok"

    client = app.test_client()
    client.post("/set/x")
    sid = sid_of(client)
    other_request_saves(app, sid, items=[])
    app.session_interface.endpoint_locking.finished("append", wrote=False)  # as if learned
    client.post("/append")
    assert client.get("/get").json == {"x": "x", "items": ["more"]}


# -- on real servers ---------------------------------------------------------------------

#: how long the slow read takes
SLOW = 2.0


def get(server, cookie, path):
    with requests.Session() as client:
        client.cookies.set("session", cookie)
        return client.get(server.url + path, timeout=30)


@pytest.mark.parametrize("locking", ["auto", "true"])
def test_a_slow_read_does_not_hold_up_the_users_other_reads(
    app_server, store_env, locking, tmp_path
):
    # one worker: the endpoints it learns are the ones the measured requests meet
    env = {**store_env, "FLASK_SESSION_LOCKING": locking}
    server = app_server(DEMO_APP, env=env, workers=1, threads=4)
    cookie = new_client(server).cookies["session"]
    for path in ("/slow-read", "/get"):  # each endpoint seen once: both only read
        assert get(server, cookie, path).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        mark = tmp_path / "started"
        slow = pool.submit(get, server, cookie, f"/slow-read?delay={SLOW}&mark={mark}")
        wait_for_mark(mark)
        fast = get(server, cookie, "/get")
        overlapped = not finished(mark)
        assert slow.result().status_code == 200
    assert fast.json() == {"init": "x"}
    # the default reads without the lock; SESSION_LOCKING=true is the convoy of 0.8
    assert overlapped is (locking == "auto")


def test_reads_beside_read_modify_writes_on_one_cookie_stay_exact(app_server, store_env):
    server = app_server(DEMO_APP, env=store_env, workers=2, threads=4)
    cookie = new_client(server).cookies["session"]

    def writer(_):
        with requests.Session() as client:
            client.cookies.set("session", cookie)
            return [
                client.post(server.url + "/rmw/n", timeout=30).json()["value"] for _ in range(10)
            ]

    def reader(_):
        return [get(server, cookie, "/get").status_code for _ in range(10)]

    with ThreadPoolExecutor(12) as pool:
        writes = [pool.submit(writer, i) for i in range(8)]
        reads = [pool.submit(reader, i) for i in range(4)]
        answers = sorted(value for future in writes for value in future.result())
        statuses = [status for future in reads for status in future.result()]
    assert answers == list(range(1, 81))
    assert statuses == [200] * 40
    assert get(server, cookie, "/get").json()["n"] == 80


def test_a_readers_change_in_place_over_a_changed_value_fails_at_save(app):
    @app.post("/append-racing")
    def append_racing():
        session.get("items", []).append("mine")
        hook = app.config.get("BETWEEN_READ_AND_WRITE")
        if hook:
            hook()
        return "ok"

    client = app.test_client()
    client.post("/set/x")
    sid = sid_of(client)
    app.session_interface.endpoint_locking.finished("append_racing", wrote=False)
    other_request_saves(app, sid, items=[])
    app.config["BETWEEN_READ_AND_WRITE"] = lambda: other_request_saves(app, sid, items=["theirs"])
    # Found when the response is saved (no write call to catch it earlier): the same 503.
    response = client.post("/append-racing")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "changed by another request" in response.text
    assert client.get("/get").json == {"x": "x", "items": ["theirs"]}
