"""Issue 20: the absolute lifetime (item 2) and regeneration's grace window (item 3), on
every store.

Timing: sessions live 2 s and grace windows 2 s here; each check keeps at least 0.2 s
(most 0.6 s or more) from the edge it tests. The interface judges both by the clock
against stored times, so memcached's whole-second expiry needs no longer clock, except
where a test asks the store itself whether it still holds a session.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask, session

from flask_session import Session, SessionConfigError
from flask_session.ids import forward_id
from flask_session.stores.base import CREATED_KEY, FORWARD_KEY
from tests.reliability import httpkit
from tests.reliability.conftest import DEMO_APP

from .conftest import stored_session_count
from .test_session_contract import cookie_of, sid_of

#: SESSION_ABSOLUTE_LIFETIME of the timing tests, in seconds
ABSOLUTE = 2.0
#: SESSION_REGENERATE_GRACE of the timing tests, in seconds
GRACE = 2.0
#: how much longer than its expiry memcached may keep an item: the expiry is rounded up
#: to whole seconds, and memcached's own clock moves once a second
MEMCACHED_SLACK = 2.0
#: and may drop it up to a second early: where a test needs a session to last until
#: close to its end, memcached's clock runs this much longer
MEMCACHED_SCALE = 2


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def stored_values(app: Flask, sid: str) -> dict[str, bytes] | None:
    """The session's encoded values as the store holds them (None: not live there)."""
    loaded = app.session_interface.store.load(sid, lock=False, refresh_ttl=None)
    return None if loaded is None else loaded.values


# -- the absolute lifetime ------------------------------------------------------------------


@pytest.mark.parametrize(
    "idle",
    [None, 1.5],
    ids=["idle-longer", "idle-shorter"],
)
def test_a_busy_session_ends_at_its_absolute_lifetime(make_app, store_type, idle):
    """Used every 0.3 s (each use refreshing the idle timeout), it still ends at 2 s: in
    the interface and in the store itself, whose expiry never outlives the absolute end."""
    if idle is not None and store_type == "memcached":
        pytest.skip("an idle timeout under 4 s is too short for memcached's whole seconds")
    # memcached may drop an item up to a second before its whole-second expiry
    scale = MEMCACHED_SCALE if store_type == "memcached" else 1
    absolute = ABSOLUTE * scale
    config = {"SESSION_ABSOLUTE_LIFETIME": absolute}
    if idle is not None:
        config["PERMANENT_SESSION_LIFETIME"] = idle
    app = make_app(**config)
    client = app.test_client()
    created = time.time()
    client.post("/set/user?value=alice")
    sid = sid_of(client)
    assert CREATED_KEY in stored_values(app, sid)  # stored, and (below) never shown
    for step in (0.3 * scale, 0.6 * scale, 0.9 * scale, 1.2 * scale):
        sleep_until(created + step)
        response = client.get("/get")
        assert response.json == {"user": "alice"}  # the reserved key never shows
        # A permanent cookie expires with the session, not a full idle lifetime later.
        expires = cookie_of(response).split("Expires=")[1].split(";")[0]
        assert parsedate_to_datetime(expires).timestamp() <= created + absolute + 1
    slack = MEMCACHED_SLACK if store_type == "memcached" else 0
    sleep_until(created + absolute + 0.1 + slack)
    assert stored_values(app, sid) is None  # the store's own expiry: nothing outlives it
    assert client.get("/get").json == {}
    assert client.post("/incr/n").json == {"value": 1}
    assert sid_of(client) != sid


def test_increments_and_regeneration_do_not_extend_it(make_app, store_type):
    # memcached may drop an item up to a second before its whole-second expiry (a CI run
    # lost the session at 0.8 s of 2 s this way)
    scale = MEMCACHED_SCALE if store_type == "memcached" else 1
    absolute = ABSOLUTE * scale
    app = make_app(SESSION_ABSOLUTE_LIFETIME=absolute, SESSION_LOCKING=False)
    client = app.test_client()
    created = time.time()
    assert client.post("/incr/n").json == {"value": 1}
    sleep_until(created + 0.8 * scale)
    assert client.post("/incr/n").json == {"value": 2}
    client.post("/regenerate")  # the data moves, with its creation time
    sleep_until(created + 1.4 * scale)
    assert client.post("/incr/n").json == {"value": 3}
    sleep_until(created + absolute + 0.2)
    assert client.post("/incr/n").json == {"value": 1}  # a fresh session


def test_a_shorter_setting_ends_older_sessions_and_deletes_them(make_app, store_type):
    """Stored under a longer limit, a session past the new one is gone on its next
    request, and deleted from the store then (not left to its own expiry)."""
    before = make_app(SESSION_ABSOLUTE_LIFETIME=60)
    client = before.test_client()
    client.post("/set/a?value=1")
    sid = sid_of(client)
    after = make_app(SESSION_ABSOLUTE_LIFETIME=1)
    client = after.test_client()
    client.set_cookie("session", sid)
    time.sleep(1.1)
    assert client.get("/get").json == {}
    assert stored_values(after, sid) is None
    if store_type != "memcached":  # memcached keeps no list of its items to count
        assert stored_session_count(after) == 0


def test_sessions_stored_without_a_creation_time_get_one_on_first_use(make_app, store_type):
    """Sessions from before the setting was turned on: their clock starts at their
    first use, even by a request that only reads."""
    before = make_app()
    client = before.test_client()
    client.post("/set/a?value=1")
    sid = sid_of(client)
    assert CREATED_KEY not in stored_values(before, sid)
    after = make_app(SESSION_ABSOLUTE_LIFETIME=ABSOLUTE)
    client = after.test_client()
    client.set_cookie("session", sid)
    first_use = time.time()
    assert client.get("/get").json == {"a": "1"}
    stamp = after.session_interface.codec.decode(stored_values(after, sid)[CREATED_KEY])
    assert first_use - 1 <= stamp <= time.time()
    sleep_until(first_use + ABSOLUTE + 0.2)
    assert client.get("/get").json == {}


def test_clearing_removes_the_creation_time_too(make_app, store_type):
    app = make_app(SESSION_ABSOLUTE_LIFETIME=60)
    client = app.test_client()
    client.post("/set/a?value=1")
    sid = sid_of(client)
    assert "Max-Age=0" in cookie_of(client.post("/clear"))
    assert stored_values(app, sid) is None


def test_the_reserved_keys_cannot_be_set_by_the_app(tmp_path):
    app = Flask(__name__, instance_path=str(tmp_path))
    Session(app)
    with app.test_request_context():
        for key in (CREATED_KEY, FORWARD_KEY):
            with pytest.raises(ValueError, match=key):
                session[key] = 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"SESSION_ABSOLUTE_LIFETIME": 0.5}, "SESSION_ABSOLUTE_LIFETIME is 0.5; it must be"),
        ({"SESSION_ABSOLUTE_LIFETIME": "soon"}, "SESSION_ABSOLUTE_LIFETIME is 'soon'"),
        ({"SESSION_ABSOLUTE_LIFETIME": timedelta(days=4000)}, "SESSION_ABSOLUTE_LIFETIME is"),
        ({"SESSION_REGENERATE_GRACE": -1}, "SESSION_REGENERATE_GRACE is -1; it must be"),
        ({"SESSION_REGENERATE_GRACE": 61}, "SESSION_REGENERATE_GRACE is 61; it must be"),
    ],
)
def test_bad_lifetimes_are_refused_at_start_up(tmp_path, config, message):
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(config)
    with pytest.raises(SessionConfigError, match=message):
        Session(app)


def test_lifetimes_are_read_as_seconds(tmp_path):
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(SESSION_ABSOLUTE_LIFETIME=timedelta(hours=8), SESSION_REGENERATE_GRACE="2")
    Session(app)
    assert app.config["SESSION_ABSOLUTE_LIFETIME"] == 8 * 3600
    assert app.config["SESSION_REGENERATE_GRACE"] == 2
    default = Flask(__name__, instance_path=str(tmp_path))
    Session(default)
    assert default.config["SESSION_ABSOLUTE_LIFETIME"] is None
    assert default.config["SESSION_REGENERATE_GRACE"] == 5


# -- regeneration's grace window ------------------------------------------------------------


def test_the_old_id_reaches_the_session_within_the_grace_and_not_after(make_app, store_type):
    app = make_app(SESSION_REGENERATE_GRACE=GRACE)
    user = app.test_client()
    user.post("/set/user?value=alice")
    old = sid_of(user)
    user.post("/regenerate")
    regenerated_at = time.time()  # the deadline was set before this
    new = sid_of(user)
    assert new != old

    in_flight = app.test_client()  # a second tab, a slow XHR: still holding the old id
    in_flight.set_cookie("session", old)
    response = in_flight.get("/get")
    assert response.json == {"user": "alice"}
    assert cookie_of(response) is None  # neither id is handed to a holder of the old one
    assert cookie_of(in_flight.post("/set/tab?value=2")) is None
    in_flight.post("/incr/n")  # an increment lands in the new session, not in the record
    assert user.get("/get").json == {"user": "alice", "tab": "2", "n": 1}

    sleep_until(regenerated_at + GRACE + 0.2)
    assert in_flight.get("/get").json == {}
    assert in_flight.post("/incr/n").json == {"value": 1}  # a fresh session of its own
    assert sid_of(in_flight) not in (old, new)
    assert user.get("/get").json == {"user": "alice", "tab": "2", "n": 1}


def test_a_forwarding_record_is_not_a_session(make_app, store_type):
    """Its own id (computable by whoever holds the old id) opens nothing."""
    app = make_app(SESSION_REGENERATE_GRACE=GRACE)
    user = app.test_client()
    user.post("/set/user?value=alice")
    old = sid_of(user)
    user.post("/regenerate")
    record = forward_id(old, app.config["SESSION_ID_LENGTH"])
    assert FORWARD_KEY in stored_values(app, record)
    prober = app.test_client()
    prober.set_cookie("session", record)
    assert prober.get("/get").json == {}


def test_regenerating_twice_within_the_grace_forwards_the_first_id_too(make_app):
    app = make_app(SESSION_REGENERATE_GRACE=GRACE)
    user = app.test_client()
    user.post("/set/user?value=alice")
    first = sid_of(user)
    user.post("/regenerate")
    user.post("/regenerate")
    in_flight = app.test_client()
    in_flight.set_cookie("session", first)
    assert in_flight.get("/get").json == {"user": "alice"}


def test_no_grace_ends_the_old_id_at_once_and_leaves_no_record(make_app):
    app = make_app(SESSION_REGENERATE_GRACE=0)
    user = app.test_client()
    user.post("/set/user?value=alice")
    old = sid_of(user)
    user.post("/regenerate")
    assert stored_values(app, forward_id(old, app.config["SESSION_ID_LENGTH"])) is None
    in_flight = app.test_client()
    in_flight.set_cookie("session", old)
    assert in_flight.get("/get").json == {}


@pytest.mark.parametrize("store_type", ["redis"])
def test_a_request_in_flight_across_a_login_keeps_the_session_under_granian(
    granian_server, store_env, store_type
):
    """Two workers: a request with the old cookie arrives while the login request holds
    the session's lock; it waits, then reaches the regenerated session. After the grace,
    the old cookie opens nothing."""
    env = {**store_env, "FLASK_SESSION_REGENERATE_GRACE": str(GRACE)}
    server = granian_server(DEMO_APP, env=env, workers=2, threads=2)
    old = httpkit.request(server.url, "POST", "/set/user?value=alice").cookie("session")
    login: dict[str, httpkit.Reply] = {}

    def log_in() -> None:
        login["reply"] = httpkit.request(
            server.url, "POST", "/regenerate?delay=0.5", cookie=f"session={old}"
        )

    thread = threading.Thread(target=log_in)
    thread.start()
    time.sleep(0.2)  # the login holds the lock now
    in_flight = httpkit.request(server.url, "GET", "/get", cookie=f"session={old}")
    thread.join()
    regenerated_at = time.time()
    new = login["reply"].cookie("session")
    assert new and new != old
    assert in_flight.elapsed >= 0.2  # it came in while the login held the lock
    assert in_flight.json() == {"user": "alice"}
    assert in_flight.cookie("session") is None
    sleep_until(regenerated_at + GRACE + 0.2)
    after = httpkit.request(server.url, "GET", "/get", cookie=f"session={old}")
    assert after.json() == {}
    mine = httpkit.request(server.url, "GET", "/get", cookie=f"session={new}")
    assert mine.json() == {"user": "alice"}
