"""Issue 8, item 3 (Redis side): sessions written by Flask-Session 0.8 are kept.

0.8 (src/flask_session/redis/redis.py) stores ``SESSION_KEY_PREFIX + sid`` as one string:
the session dict encoded by msgspec (msgpack by default, JSON if configured), with
``SET ... EX <lifetime>``. These tests write exactly that, then use the session through
this store: it is read on first use, carried into our layout with its expiry, and the
old key removed. Ids nobody issued create nothing.
"""

from __future__ import annotations

import msgspec
import pytest

from flask_session.ids import new_session_id
from tests.flask_session.redis_stores import FORMATS, TTL

LIFETIME_S = 3000  # what the 0.8 app had as PERMANENT_SESSION_LIFETIME
DOCUMENT = {"_permanent": True, "user": "ada", "n": 41, "cart": [1, 2]}
ENCODERS = {"msgpack": msgspec.msgpack.encode, "json": msgspec.json.encode}


def write_like_flask_session_08(client, sid, document=DOCUMENT, fmt="msgpack", prefix="session:"):
    client.set(name=prefix + sid, value=ENCODERS[fmt](document), ex=LIFETIME_S)


@pytest.mark.parametrize("old_format", ["msgpack", "json"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_08_session_is_read_and_carried_over_with_its_expiry(
    redis_url, redis_server, redis_store, fmt, old_format
):
    store = redis_store(redis_server, fmt)
    sid = new_session_id(32)
    write_like_flask_session_08(store.redis, sid, fmt=old_format)

    loaded = store.load(sid, lock=True, refresh_ttl=None)
    assert loaded is not None and loaded.lock is not None
    assert {k: store.codec.decode(v) for k, v in loaded.values.items()} == DOCUMENT
    store.release(sid, loaded.lock)
    assert store.redis.exists("session:" + sid) == 0  # the 0.8 key is gone
    ttl_ms = store.redis.pttl(store._keys(sid)[0])
    assert (LIFETIME_S - 60) * 1000 < ttl_ms <= LIFETIME_S * 1000  # its expiry was kept
    again = store.load(sid, lock=False, refresh_ttl=None)
    assert again is not None and again.values == loaded.values


def test_the_first_use_of_a_08_session_may_be_an_increment(redis_url, redis_server, redis_store):
    store = redis_store(redis_server)
    sid = new_session_id(32)
    write_like_flask_session_08(store.redis, sid)
    result = store.incr(sid, "n", 1, ttl=TTL, create=False)
    assert result is not None and result.value == 42
    assert store.codec.decode(result.permanent) is True
    loaded = store.load(sid, lock=False, refresh_ttl=None)
    assert store.codec.decode(loaded.values["user"]) == "ada"


def test_a_deleted_session_does_not_come_back_from_a_08_key(redis_url, redis_server, redis_store):
    store = redis_store(redis_server)
    sid = new_session_id(32)
    write_like_flask_session_08(store.redis, sid)
    store.delete(sid)
    assert store.load(sid, lock=False, refresh_ttl=None) is None


def test_unknown_ids_and_unreadable_08_values_create_nothing(
    redis_url, redis_server, redis_store, caplog
):
    store = redis_store(redis_server)
    unknown, garbage, pickled = (new_session_id(32) for _ in range(3))
    store.redis.set("session:" + garbage, b"\xc1 not msgpack nor json", ex=LIFETIME_S)
    store.redis.set("session:" + pickled, b"\x80\x04\x95 pickle is never read", ex=LIFETIME_S)
    for sid in (unknown, garbage, pickled):
        assert store.load(sid, lock=True, refresh_ttl=None) is None
        assert store.incr(sid, "n", 1, ttl=TTL, create=False) is None
    assert sorted(store.redis.keys("session:{*")) == []
    assert store.redis.exists("session:" + garbage, "session:" + pickled) == 2  # left alone
