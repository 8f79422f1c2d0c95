"""Issue 17: ``SESSION_08_SERVERS = "auto"`` (the default) tells at start-up, on every store,
whether Flask-Session 0.8 may still serve it (stores/upgrade08.py).

Each test builds apps on one fresh store of each type, as the servers of a fleet start one
after another: an empty store starts with no transition; a store holding a 0.8 session
starts one and sets the marker, which keeps it on for servers started later (even once no
0.8 session is left) until ``flask session upgrade-08 --finish``; an explicit False never
looks. 0.8's sessions are written as 0.8 writes them: a msgpack string at
``<prefix><sid>`` (Redis), cachelib's file (filesystem), and on the stores 0.8 shares its
layout with (SQL, memcached) a session in a store this package never started on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import struct
import time

import msgspec
import pytest
import sqlalchemy as sa

from flask_session.errors import StoreUnavailable
from flask_session.ids import new_session_id
from flask_session.stores.upgrade08 import MARKER_NAME
from tests.support.kits import kit_of

TTL = 300


def write_like_08(store) -> str:
    """A live session as Flask-Session 0.8 writes it into ``store``; returns its id."""
    sid = new_session_id(32)
    key = store.key_prefix + sid
    if store.name == "redis":
        store.redis.set(key, msgspec.msgpack.encode({"n": 1}), ex=TTL)
    elif store.name == "filesystem":
        name = hashlib.sha256(key.encode()).hexdigest()
        data = struct.pack("I", int(time.time()) + TTL) + pickle.dumps({"n": 1})
        with open(os.path.join(store.directory, name), "wb") as file:
            file.write(data)
    else:  # 0.8's document is this package's, keyed by the raw id, in a store we never
        # started on
        forget_marker(store)
        values = {"n": store.codec.encode(1)}
        kit_of(store).write_unhashed(store, sid, values, TTL, prefix=store.key_prefix)
    return sid


def forget_marker(store) -> None:
    """Remove every trace of this package's start-ups (the marker), as in a store only
    0.8 has served."""
    name = store.key_prefix + MARKER_NAME
    if store.name == "sqlalchemy":
        counters = store.tables.counters
        with store.engine.begin() as conn:
            conn.execute(sa.delete(counters).where(counters.c.name == name))
    elif store.name == "memcached":
        store._node(name).delete(name, noreply=False)


def drop_08_sessions(store, sid: str) -> None:
    """The 0.8 session is gone (expired, or carried over), the marker stays."""
    key = store.key_prefix + sid
    if store.name == "redis":
        store.redis.delete(key)
    elif store.name == "filesystem":
        os.unlink(os.path.join(store.directory, hashlib.sha256(key.encode()).hexdigest()))
    else:
        store.delete(sid)


def test_auto_is_off_on_an_empty_store_and_on_while_0_8_data_or_the_marker_is_there(
    make_app, caplog
):
    caplog.set_level(logging.INFO, logger="flask_session.stores.upgrade08")
    fresh = make_app().session_interface.store
    assert fresh.serves_08 is False
    assert "holds no Flask-Session 0.8 session" in caplog.text
    # A fresh install's own sessions are never taken for 0.8's.
    assert fresh.save(new_session_id(32), {"a": b"1"}, [], ttl=TTL, create=True)
    assert make_app().session_interface.store.serves_08 is False

    sid = write_like_08(fresh)
    caplog.clear()
    found = make_app().session_interface.store
    assert found.serves_08 is True
    assert "serving a rolling upgrade from Flask-Session 0.8" in caplog.text
    assert "SESSION_08_SERVERS = False" in caplog.text and "upgrade-08 --finish" in caplog.text

    # The marker keeps every server started later in the transition, 0.8 data or not.
    drop_08_sessions(found, sid)
    assert make_app().session_interface.store.serves_08 is True

    # An explicit False never looks, and ends the transition with the command.
    ended = make_app(SESSION_08_SERVERS=False).session_interface.store
    assert ended.serves_08 is False
    ended.finish_08()
    assert make_app().session_interface.store.serves_08 is False


def test_an_explicit_false_is_off_even_with_0_8_data(make_app):
    store = make_app(SESSION_08_SERVERS=False).session_interface.store
    write_like_08(store)
    assert make_app(SESSION_08_SERVERS=False).session_interface.store.serves_08 is False
    assert make_app(SESSION_08_SERVERS="auto").session_interface.store.serves_08 is True


def test_finish_is_refused_while_auto_found_0_8(make_app):
    write_like_08(make_app(SESSION_08_SERVERS=False).session_interface.store)
    store = make_app().session_interface.store
    assert store.serves_08 is True
    with pytest.raises(RuntimeError, match="SESSION_08_SERVERS = False"):
        store.finish_08()


def copy_08_exists(store, sid: str) -> bool:
    """Whether 0.8's layout still holds ``sid`` (SQL, memcached: the one row or item both
    fleets share)."""
    key = store.key_prefix + sid
    if store.name == "redis":
        return bool(store.redis.exists(key))
    if store.name == "filesystem":
        return os.path.exists(
            os.path.join(store.directory, hashlib.sha256(key.encode()).hexdigest())
        )
    if store.name == "memcached":  # the one item both fleets share, at 0.8's key
        return store._node(key).get(key) is not None
    sessions = store.tables.sessions
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(sessions.c.id).where(sessions.c.session_id == key))
        return found.first() is not None


@pytest.mark.parametrize("keep_current", [False, True], ids=["all", "all-but-current"])
def test_revoking_during_the_transition_deletes_0_8_copies_too(make_app, keep_current):
    """Issue 20 x 17: a revoked session cannot come back from the 0.8 copy kept for 0.8's
    servers (ours read 0.8's writes back while the transition is on)."""
    from flask_session.stores.users import UserIndex, session_handle, user_key

    store = make_app(SESSION_08_SERVERS=True).session_interface.store
    if not isinstance(store, UserIndex):
        pytest.skip(f"the {store.name} store keeps no per-user index")
    user = user_key("alice")
    current, *others = [new_session_id(32) for _ in range(3)]
    for sid in (current, *others):
        assert store.save(sid, {"n": store.codec.encode(1)}, [], ttl=TTL, create=True)
        store.bind_user(user, sid, label="", cap=None)
        assert copy_08_exists(store, sid)
    keep = session_handle(store.key_prefix, current) if keep_current else None
    revoked = store.revoke_user_sessions(user, None, keep=keep)
    gone = others if keep_current else [current, *others]
    assert sorted(revoked) == sorted(session_handle(store.key_prefix, s) for s in gone)
    for sid in gone:
        assert not copy_08_exists(store, sid)
        assert store.load(sid, lock=False, refresh_ttl=None) is None
        assert store.incr(sid, "n", 1, ttl=TTL, create=False) is None
    if keep_current:
        assert copy_08_exists(store, current)
        assert store.load(current, lock=False, refresh_ttl=None) is not None


def test_the_cap_deletes_the_0_8_copy_of_the_session_it_revokes(make_app):
    from flask_session.stores.users import UserIndex, user_key

    store = make_app(SESSION_08_SERVERS=True).session_interface.store
    if not isinstance(store, UserIndex):
        pytest.skip(f"the {store.name} store keeps no per-user index")
    user = user_key("bob")
    oldest, newest = new_session_id(32), new_session_id(32)
    for sid in (oldest, newest):
        assert store.save(sid, {"n": store.codec.encode(1)}, [], ttl=TTL, create=True)
        store.bind_user(user, sid, label="", cap=1)
        time.sleep(0.01)  # distinct bind times
    assert not copy_08_exists(store, oldest) and copy_08_exists(store, newest)
    assert store.load(oldest, lock=False, refresh_ttl=None) is None


def test_a_store_down_at_start_up_is_searched_when_it_answers(app_builder, caplog):
    """The app still starts; the log says the store could not be searched. Until a search
    succeeds, every session verb is a 503 (StoreUnavailable), so no session is served in a
    layout chosen without looking; the first use once the store answers searches it, and
    finds the 0.8 session written meanwhile (on an empty store it finds none: no
    transition)."""
    from tests.flask_session.demo_app import create_app
    from tests.support.memcached_server import MemcachedServer
    from tests.support.ports import free_port

    caplog.set_level(logging.INFO, logger="flask_session.stores.upgrade08")
    ports = free_port(), free_port()
    stores = [
        app_builder(
            create_app,
            {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED_SERVERS": f"127.0.0.1:{port}"},
        ).session_interface.store
        for port in ports  # nothing listens on either yet
    ]
    assert "could not be searched for Flask-Session 0.8's sessions" in caplog.text
    for store in stores:
        with pytest.raises(StoreUnavailable):
            store.load(new_session_id(32), lock=False, refresh_ttl=None)

    with MemcachedServer(port=ports[0]), MemcachedServer(port=ports[1]):
        caplog.clear()
        with_08, empty = stores
        sid = write_like_08(with_08)
        assert with_08.load(sid, lock=False, refresh_ttl=None).values == {
            "n": with_08.codec.encode(1)
        }
        assert with_08.serves_08 is True
        assert "serving a rolling upgrade from Flask-Session 0.8" in caplog.text
        assert empty.serves_08 is False
