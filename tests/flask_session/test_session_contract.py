"""The session contract through Flask, proven on every store.

Numbers in the section comments refer to the points of the flask_session issue (#2).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from flask import Flask, session

from flask_session import ServerSideSession, Session, SessionConfigError
from flask_session.ids import new_session_id
from tests.support.kits import kit_of

from .conftest import stored_session_count


def cookie_of(response, name="session"):
    """The Set-Cookie header for ``name``, or None."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


def sid_of(client, name="session"):
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


# -- 1. the extension's surface -----------------------------------------------------------


SEED_DEMO = """
from flask import Flask, session
from flask_session import Session

app = Flask(__name__)
SESSION_TYPE = 'filesystem'
app.config.from_object(__name__)
Session(app)


@app.route('/')
def index():
    session["counter"] = session.get("counter", 0) + 1
    return str(session["counter"])
"""


def test_the_seed_demo_runs_unchanged_and_stops_losing_updates(tmp_path, granian_server):
    """The usual Flask-Session demo, verbatim, under 2 workers x 4 threads: 320 of 320."""
    (tmp_path / "seed_demo.py").write_text(SEED_DEMO)
    server = granian_server("seed_demo:app", cwd=str(tmp_path), ready_path="/")
    first = requests.get(server.url + "/", timeout=10)
    cookie = first.cookies["session"]

    def increments(_):
        with requests.Session() as client:
            client.cookies.set("session", cookie)
            return [client.get(server.url + "/", timeout=30).status_code for _ in range(20)]

    with ThreadPoolExecutor(16) as pool:
        statuses = [status for batch in pool.map(increments, range(16)) for status in batch]
    assert statuses == [200] * 320
    final = requests.get(server.url + "/", cookies={"session": cookie}, timeout=10).text
    assert final == str(1 + 320 + 1)
    assert (tmp_path / "instance" / "flask_session").is_dir()  # Flask's instance folder


def test_init_app_style_and_defaults(tmp_path):
    app = Flask(__name__, instance_path=str(tmp_path))
    extension = Session()
    extension.init_app(app)
    assert app.extensions["session"] is extension
    assert app.config["SESSION_TYPE"] == "filesystem"
    assert app.config["SESSION_SERIALIZATION_FORMAT"] == "json"
    assert app.config["SESSION_LOCKING"] == "auto"  # issue 23: lock only to write


def test_the_session_behaves_like_a_dict(app):
    @app.post("/dict")
    def use_as_dict():
        assert isinstance(session._get_current_object(), ServerSideSession)
        session.update(a=1, b=[1, 2])
        session.setdefault("c", {"x": "y"})
        assert session.pop("a") == 1
        assert "b" in session and "a" not in session
        assert sorted(session) == ["b", "c"] and len(session) == 2
        assert dict(session.items()) == {"b": [1, 2], "c": {"x": "y"}}
        del session["c"]
        return "ok"

    client = app.test_client()
    assert client.post("/dict").text == "ok"
    assert client.get("/get").json == {"b": [1, 2]}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"SESSION_TYPE": "mongodb"}, "SESSION_TYPE"),
        ({"SESSION_TYPE": "redis", "SESSION_REDIS_URL": None}, "SESSION_REDIS_URL"),
        ({"SESSION_TYPE": "redis", "SESSION_REDIS_URL": "http://nope"}, "SESSION_REDIS_URL"),
        ({"SESSION_SERIALIZATION_FORMAT": "pickle"}, "SESSION_SERIALIZATION_FORMAT"),
        ({"SESSION_ID_LENGTH": 4}, "SESSION_ID_LENGTH"),
        ({"SESSION_LOCK_TIMEOUT": 0}, "SESSION_LOCK_TIMEOUT"),
        ({"SESSION_FILE_DIR": ""}, "SESSION_FILE_DIR"),
        ({"SESSION_COOKIE_SAMESITE": "lax-ish"}, "SESSION_COOKIE_SAMESITE"),
        ({"SESSION_COOKIE_NAME": "__Host-session"}, "SESSION_COOKIE_SECURE"),
        (
            {
                "SESSION_COOKIE_NAME": "__Host-s",
                "SESSION_COOKIE_SECURE": True,
                "SESSION_COOKIE_PATH": "/app",
            },
            "SESSION_COOKIE_PATH",
        ),
    ],
)
def test_bad_settings_fail_at_start_up_naming_the_key(tmp_path, config, message):
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(config)
    with pytest.raises(SessionConfigError, match=message):
        Session(app)


def test_a_default_redis_client_that_retries_is_accepted(tmp_path, redis_server):
    import redis

    app = Flask(__name__, instance_path=str(tmp_path))
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)  # retries 10 times by default
    assert client.get_retry().get_retries() > 0
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
    Session(app)  # every verb is safe to repeat (tests/flask_session/test_redis_retries.py)
    assert app.session_interface.store.redis is client
    client.close()


def test_a_ready_redis_client_is_used(tmp_path, redis_server):
    app = Flask(__name__, instance_path=str(tmp_path))
    client = redis_server.client()
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
    Session(app)
    assert app.session_interface.store.redis is client
    client.close()


# -- 3. no lost updates ----------------------------------------------------------------------


def test_changed_keys_are_merged_into_what_others_wrote(make_app):
    """A request that writes key A never reverts a concurrent write to key B."""
    app = make_app(SESSION_LOCKING=False)  # with the lock the requests could not interleave
    store = app.session_interface.store

    @app.post("/interleaved")
    def interleaved():
        assert session["a"] == "1"  # loaded: now another request writes b and deletes gone
        store.save(session.sid, {"b": store.codec.encode("2")}, ["gone"], ttl=60, create=False)
        session["a"] = "changed"
        return "ok"

    client = app.test_client()
    client.post("/set/a?value=1")
    client.post("/set/gone?value=1")
    client.post("/interleaved")
    assert client.get("/get").json == {"a": "changed", "b": "2"}


def test_nested_changes_are_saved_without_setting_modified(app):
    @app.post("/append")
    def append():
        session.setdefault("items", []).append(len(session.get("items", [])))
        return "ok"

    client = app.test_client()
    for _ in range(3):
        client.post("/append")
    assert client.get("/get").json == {"items": [0, 1, 2]}


def test_incr_returns_the_new_value_and_refuses_non_ints(app):
    client = app.test_client()
    assert [client.post("/incr/n").json["value"] for _ in range(3)] == [1, 2, 3]
    assert client.post("/incr/n?by=-5").json == {"value": -2}
    client.post("/set/s?value=text")
    with app.test_request_context(headers={"Cookie": f"session={sid_of(client)}"}):
        with pytest.raises(TypeError, match="not an int"):
            session.incr("s")
        with pytest.raises(TypeError):
            session.incr("n", 1.5)
        session.get("s")
        app.session_interface.save_session(app, session._get_current_object(), app.response_class())


def test_incr_and_reads_agree_within_one_request(app):
    @app.post("/mixed")
    def mixed():
        first = session.incr("n")  # atomic, in the store
        session["n"] += 10  # read-modify-write under the session lock
        second = session.incr("n")  # we hold the lock now: counted in our copy
        return {"first": first, "second": second, "seen": session["n"]}

    client = app.test_client()
    assert client.post("/mixed").json == {"first": 1, "second": 12, "seen": 12}
    assert client.post("/mixed").json == {"first": 13, "second": 24, "seen": 24}
    assert client.get("/get").json == {"n": 24}


def test_a_request_that_touches_the_session_waits_for_its_lock(make_app):
    app = make_app(SESSION_LOCK_TIMEOUT=0.5)
    other_worker = make_app(SESSION_LOCK_TIMEOUT=30).session_interface.store  # a longer lease
    client = app.test_client()
    client.post("/set/a")
    held = other_worker.load(sid_of(client), lock=True, refresh_ttl=None)
    started = time.monotonic()
    response = client.get("/get")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "busy with another request" in response.text
    assert time.monotonic() - started >= 0.45
    # A request that never touches the session takes no lock and does not wait.
    started = time.monotonic()
    assert client.get("/untouched").status_code == 200
    assert time.monotonic() - started < 0.3
    other_worker.release(sid_of(client), held.lock)
    assert client.get("/get").json == {"a": "x"}


def test_locking_can_be_switched_off(make_app):
    app = make_app(SESSION_LOCKING=False, SESSION_LOCK_TIMEOUT=0.3)
    store = app.session_interface.store
    client = app.test_client()
    client.post("/set/a")
    held = store.load(sid_of(client), lock=True, refresh_ttl=None)
    assert client.get("/get").json == {"a": "x"}  # no waiting: reads ignore the lock
    store.release(sid_of(client), held.lock)


def test_a_failing_request_releases_its_lock(make_app):
    app = make_app(SESSION_LOCK_TIMEOUT=0.5)

    @app.post("/boom")
    def boom():
        session["a"] = "changed"
        raise RuntimeError("view failed")

    client = app.test_client()
    client.post("/set/a")
    app.testing = False  # a real 500 instead of the exception reaching the test
    assert client.post("/boom").status_code == 500
    started = time.monotonic()
    assert client.get("/get").status_code == 200
    assert time.monotonic() - started < 0.3


def test_the_lock_serializes_read_modify_write_across_threads(app):
    """Threads of one process share nothing but the store: 8 x 25 += 1 end at 200."""
    first = app.test_client()
    first.post("/set/init")
    cookie = sid_of(first)
    errors = []

    def work():
        client = app.test_client()
        client.set_cookie("session", cookie)
        for _ in range(25):
            if client.post("/rmw/n").status_code != 200:
                errors.append("failed")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert first.get("/get").json["n"] == 200


@pytest.mark.parametrize("peek", ["/peek", "/peek-async"])  # a def view, an async def view
def test_a_read_only_view_reads_without_waiting_for_the_lock(make_app, peek):
    app = make_app(SESSION_LOCK_TIMEOUT=0.5)
    other_worker = make_app(SESSION_LOCK_TIMEOUT=30).session_interface.store
    client = app.test_client()
    client.post("/set/a")
    held = other_worker.load(sid_of(client), lock=True, refresh_ttl=None)
    started = time.monotonic()
    assert client.get(peek).json == {"a": "x"}
    assert time.monotonic() - started < 0.3
    assert client.get("/get").status_code == 503  # a normal view still waits, then gives up
    other_worker.release(sid_of(client), held.lock)


def test_a_read_only_view_cannot_write_and_loses_in_place_changes_loudly(app, caplog):
    client = app.test_client()
    client.post("/set/a")
    with pytest.raises(RuntimeError, match="read_only_session"):
        client.post("/peek-then-write")
    with pytest.raises(RuntimeError, match="read_only_session"):
        client.post("/peek-then-write-async")
    store = app.session_interface.store
    store.save(sid_of(client), {"items": store.codec.encode(["kept"])}, [], ttl=60, create=False)
    with caplog.at_level(logging.WARNING, logger="flask_session"):
        assert client.post("/peek-then-mutate").json["items"] == ["kept", "lost"]
    assert client.get("/get").json == {"a": "x", "items": ["kept"]}
    assert [r.getMessage() for r in caplog.records if "not saved" in r.getMessage()]


@pytest.mark.parametrize("peek", ["/peek", "/peek-async"])
def test_a_read_only_view_stores_nothing_for_a_new_client_and_takes_no_lock(app, peek):
    client = app.test_client()
    response = client.get(peek)
    assert response.json == {} and "Set-Cookie" not in response.headers
    assert stored_session_count(app) == 0
    client.post("/set/a")
    assert client.get(peek).json == {"a": "x"}
    store = app.session_interface.store
    assert kit_of(store).lock_count(store, app.config["SESSION_KEY_PREFIX"]) == 0


# -- 4. strict session ids -------------------------------------------------------------------

HOSTILE_COOKIES = [
    new_session_id(32),  # well-formed but never issued
    new_session_id(32)[:-1],  # one character short
    new_session_id(32) + "A",  # overlong
    "A" * 4000,
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "a/b" + "A" * 40,
    "a\\b" + "A" * 40,
    "A" * 42 + "\x00",
    "é" * 43,
    "",
    "session:" + "A" * 35,
]


@pytest.mark.parametrize("value", HOSTILE_COOKIES, ids=range(len(HOSTILE_COOKIES)))
def test_ids_we_did_not_issue_get_a_fresh_session_and_create_nothing(app, value):
    client = app.test_client()
    client.set_cookie("session", value)
    assert client.get("/get").json == {}
    assert client.post("/delete/a").status_code == 200
    assert stored_session_count(app) == 0
    response = client.post("/incr/n")
    assert response.json == {"value": 1}
    issued = sid_of(client)
    assert issued != value and len(issued) == 43
    assert stored_session_count(app) == 1


def test_session_ids_are_256_bit_url_safe_tokens(app):
    ids = set()
    for _ in range(50):
        client = app.test_client()
        client.post("/incr/n")
        ids.add(sid_of(client))
    assert len(ids) == 50
    assert all(len(sid) == 43 and sid.replace("-", "").replace("_", "").isalnum() for sid in ids)


# -- 5. nothing stored for requests that write nothing ---------------------------------------


@pytest.mark.parametrize("path", ["/untouched", "/get", "/healthz"])
def test_requests_that_write_nothing_store_nothing_and_set_no_cookie(app, path):
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert stored_session_count(app) == 0


def test_vary_cookie_only_when_the_session_was_used(app):
    client = app.test_client()
    assert "Cookie" in client.get("/get").headers.get("Vary", "")
    assert "Cookie" not in client.get("/untouched").headers.get("Vary", "")


# -- 6. expiry -------------------------------------------------------------------------------


#: memcached keeps expiry in whole seconds (an item lives ttl-1 to ttl s): its timing
#: tests run on a longer clock
TIME_SCALE = {"memcached": 4}


def test_sessions_expire_on_the_server(make_app, store_type):
    scale = TIME_SCALE.get(store_type, 1)
    app = make_app(
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=scale), SESSION_REFRESH_EACH_REQUEST=False
    )
    client = app.test_client()
    client.post("/incr/n")
    time.sleep(0.6 * scale)
    assert client.get("/get").json == {"n": 1}  # read, not refreshed
    time.sleep(0.6 * scale)
    assert client.get("/get").json == {}  # the cookie is still sent; the server forgot it
    assert client.post("/incr/n").json == {"value": 1}


def test_refresh_each_request_keeps_an_active_session_alive(make_app, store_type):
    scale = TIME_SCALE.get(store_type, 1)
    app = make_app(PERMANENT_SESSION_LIFETIME=timedelta(seconds=scale))
    client = app.test_client()
    client.post("/incr/n")
    for _ in range(4):  # 2 s of activity, twice the lifetime
        time.sleep(0.5 * scale)
        response = client.get("/get")
        assert response.json == {"n": 1}
        assert cookie_of(response) is not None  # the cookie's expiry moves too


def test_permanent_sessions_get_an_expiring_cookie_others_a_browser_session_one(make_app):
    client = make_app().test_client()
    assert "Expires=" in cookie_of(client.post("/incr/n"))
    client = make_app(SESSION_PERMANENT=False).test_client()
    assert "Expires=" not in cookie_of(client.post("/incr/n"))


# -- 7. data formats, corrupt data -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_both_formats_round_trip(make_app, fmt):
    client = make_app(SESSION_SERIALIZATION_FORMAT=fmt).test_client()
    client.post("/set/s?value=héllo")
    client.post("/incr/n")
    client.post("/incr/n")
    assert client.get("/get").json == {"s": "héllo", "n": 2}


def test_corrupt_session_data_is_a_fresh_session_and_one_warning(app, caplog):
    client = app.test_client()
    client.post("/set/a")
    store = app.session_interface.store
    kit_of(store).corrupt(store, sid_of(client))
    with caplog.at_level(logging.WARNING, logger="flask_session"):
        response = client.get("/get")
    assert response.status_code == 200 and response.json == {}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert client.post("/incr/n").json == {"value": 1}


# -- 8. store outages ------------------------------------------------------------------------


# The filesystem store's outages (full or read-only disk) need a mount: tests/reliability.
@pytest.mark.parametrize("store_type", ["redis"])
def test_a_stopped_redis_is_a_503_with_retry_after_and_recovers(make_app, redis_server):
    app = make_app()
    app.testing = False
    client = app.test_client()
    client.post("/incr/n")
    redis_server.stop()
    try:
        for path in ("/get", "/incr/n", "/rmw/n"):
            response = client.get(path) if path == "/get" else client.post(path)
            assert response.status_code == 503, path
            assert response.headers["Retry-After"] == "1"
            assert "Traceback" not in response.text
        assert client.get("/untouched").status_code == 200  # no store needed, no failure
    finally:
        redis_server.start()
    # Back without a restart of the app. (The test server keeps no data across restarts.)
    assert client.post("/incr/n").status_code == 200


@pytest.mark.parametrize("store_type", ["redis"])
def test_an_outage_while_saving_becomes_the_apps_503_not_a_500(make_app, redis_server):
    app = make_app()
    app.testing = False

    @app.post("/stop-redis-then-write")
    def stop_then_write():
        session["a"] = session.get("a", 0) + 1  # loaded and locked while Redis is up
        redis_server.stop()
        return "written?"

    client = app.test_client()
    client.post("/incr/a")
    try:
        response = client.post("/stop-redis-then-write")
    finally:
        redis_server.start()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert cookie_of(response) is None
    assert "written?" not in response.text


@pytest.mark.parametrize("store_type", ["redis"])
def test_an_apps_own_outage_handler_is_kept(make_app, redis_server):
    from flask_session import StoreUnavailable

    app = make_app()

    @app.errorhandler(StoreUnavailable)
    def custom(error):
        return {"error": "store down"}, 503, {"Retry-After": "7"}

    redis_server.stop()
    try:
        response = app.test_client().post("/incr/n")
    finally:
        redis_server.start()
    assert (response.status_code, response.json, response.headers["Retry-After"]) == (
        503,
        {"error": "store down"},
        "7",
    )


# -- 9. cookies ------------------------------------------------------------------------------


def test_cookie_flags_default_to_httponly_and_lax_and_follow_flask_settings(make_app):
    header = cookie_of(make_app().test_client().post("/incr/n"))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Secure" not in header
    app = make_app(
        SESSION_COOKIE_NAME="__Host-sid",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    header = cookie_of(app.test_client().post("/incr/n"), "__Host-sid")
    assert "Secure" in header and "SameSite=Strict" in header and "Domain" not in header


def test_clearing_a_session_deletes_it_and_its_cookie(app):
    client = app.test_client()
    client.post("/incr/n")
    assert stored_session_count(app) == 1
    response = client.post("/clear")
    assert "Max-Age=0" in cookie_of(response)
    assert stored_session_count(app) == 0


def test_regenerate_moves_the_data_to_a_new_id_and_kills_the_old(make_app):
    app = make_app(SESSION_REGENERATE_GRACE=0)  # the grace window: test_lifetimes.py
    client = app.test_client()
    client.post("/set/user?value=alice")
    old = sid_of(client)
    assert client.post("/regenerate").json == {"user": "alice"}
    new = sid_of(client)
    assert new != old
    assert client.get("/get").json == {"user": "alice"}
    attacker = app.test_client()
    attacker.set_cookie("session", old)
    assert attacker.get("/get").json == {}
    assert stored_session_count(app) == 1


# -- the no-resurrection rule (issue #4, point 5, at the extension's level) -----------------


@pytest.mark.parametrize("locking", [True, False])
def test_a_cleared_session_is_not_brought_back_by_a_slower_request(make_app, locking):
    app = make_app(SESSION_LOCKING=locking)
    client = app.test_client()
    client.post("/set/a?value=old")
    cookie = sid_of(client)

    def slow_write():
        slow = app.test_client()
        slow.set_cookie("session", cookie)
        slow.post("/set/b?value=late&delay=0.5")

    slow = threading.Thread(target=slow_write)
    slow.start()
    time.sleep(0.2)  # the slow request has loaded the session
    client.post("/clear")
    slow.join()
    if locking:
        # The clear waited for the slow request's lock, so it came last.
        assert client.get("/get").json == {}
    else:
        # The clear came first; the slow request's merge must not recreate the session.
        assert client.get("/get").json == {}
    assert stored_session_count(app) == 0


# -- the early release (issue 23) ----------------------------------------------------------


def test_save_and_release_saves_now_and_refuses_later_writes(make_app, caplog):
    from flask_session.errors import SessionReleased

    app = make_app(SESSION_LOCK_TIMEOUT=0.5)
    store = app.session_interface.store
    seen = {}

    @app.post("/early")
    def early():
        session["a"] = "A"
        session.save_and_release()
        session.save_and_release()  # a second call does nothing
        # saved and unlocked: another worker takes the lock at once
        held = store.load(session.sid, lock=True, refresh_ttl=None)
        seen["stored"] = sorted(held.values)
        store.release(session.sid, held.lock)
        for write in (
            lambda: session.__setitem__("b", 1),
            lambda: session.pop("a"),
            lambda: session.incr("n"),
            lambda: app.session_interface.regenerate(session),
        ):
            with pytest.raises(SessionReleased, match=r"save_and_release\(\)"):
                write()
        session.get("items", []).append("lost")  # nothing to append to: a fresh list
        return {"a": session["a"]}

    client = app.test_client()
    response = client.post("/early")  # a new session: saved early, the cookie still set
    assert response.json == {"a": "A"} and cookie_of(response)
    assert seen["stored"] == ["a"]
    assert client.get("/get").json == {"a": "A"}


def test_a_change_in_place_after_the_release_is_logged_not_saved(app, caplog):
    @app.post("/mutate-late")
    def mutate_late():
        items = session.setdefault("items", [])
        session.save_and_release()
        items.append("late")
        return "ok"

    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_session.session"):
        assert client.post("/mutate-late").status_code == 200
    assert "after session.save_and_release()" in caplog.text
    assert client.get("/get").json == {"items": []}
