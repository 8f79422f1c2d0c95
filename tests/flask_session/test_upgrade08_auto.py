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

from flask_session.ids import new_session_id
from flask_session.stores.upgrade08 import MARKER_NAME

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
    else:  # 0.8's layout is this package's: a session in a store we never started on
        forget_marker(store)
        assert store.save(sid, {"n": store.codec.encode(1)}, [], ttl=TTL, create=True)
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
