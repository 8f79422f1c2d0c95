"""Issue 17 (Redis side): a rolling upgrade from Flask-Session 0.8 (SESSION_08_SERVERS).

0.8's servers read and write ``SESSION_KEY_PREFIX + sid`` as one msgspec document with
``SET ... EX``; these tests write and read exactly that, as a 0.8 server does between
this store's verbs (real 0.8 servers run in tests/dropin/test_rolling_upgrade.py).
"""

from __future__ import annotations

import msgspec
import pytest

from flask_session.ids import new_session_id
from flask_session.stores.redis_scripts import LEGACY, MIRROR
from flask_session.stores.users import user_key
from tests.flask_session.redis_stores import FORMATS, TTL
from tests.support.kits import kit_of

LIFETIME_S = 3000
DECODERS = {"msgpack": msgspec.msgpack.decode, "json": msgspec.json.decode}


def read_like_08(client, sid):
    """What a 0.8 server loads for ``sid`` (its decoder order: msgpack, then JSON)."""
    raw = client.get("session:" + sid)
    if raw is None:
        return None
    try:
        return msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return msgspec.json.decode(raw)


def write_like_08(client, sid, document, fmt="msgpack"):
    encode = msgspec.msgpack.encode if fmt == "msgpack" else msgspec.json.encode
    client.set(name="session:" + sid, value=encode(document), ex=LIFETIME_S)


def values(store, loaded):
    return {key: store.codec.decode(raw) for key, raw in loaded.values.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_fleets_see_each_others_writes_and_0_8_data_is_kept(
    redis_url, redis_server, redis_store, fmt
):
    store = redis_store(redis_server, fmt, serves_08=True)
    sid = new_session_id(32)
    write_like_08(store.redis, sid, {"_permanent": True, "n": 1, "pair": [1, "x"]})
    for expected in range(2, 12, 2):
        # ours: an increment on the 0.8 session, then what 0.8 sees
        result = store.incr(sid, "n", 1, ttl=TTL, create=False)
        assert result is not None and result.value == expected
        seen = read_like_08(store.redis, sid)
        assert seen == {"_permanent": True, "n": expected, "pair": [1, "x"]}
        # 0.8: a read-modify-write of the whole document, then what we load
        write_like_08(store.redis, sid, {**seen, "n": seen["n"] + 1}, fmt="msgpack")
        loaded = store.load(sid, lock=True, refresh_ttl=None)
        assert values(store, loaded)["n"] == expected + 1
        store.release(sid, loaded.lock)
    assert store.redis.exists("session:" + sid) == 1  # 0.8's copy is never deleted


def test_a_save_merges_onto_what_a_0_8_server_wrote(redis_url, redis_server, redis_store):
    store = redis_store(redis_server, serves_08=True)
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, (), ttl=TTL, create=True)
    assert read_like_08(store.redis, sid) == {"a": 1}  # a session of ours, served to 0.8
    write_like_08(store.redis, sid, {"a": 1, "from_08": "yes"})
    store.save(sid, {"b": store.codec.encode(2)}, (), ttl=TTL, create=False)
    assert read_like_08(store.redis, sid) == {"a": 1, "from_08": "yes", "b": 2}
    loaded = store.load(sid, lock=False, refresh_ttl=None)
    assert values(store, loaded) == {"a": 1, "from_08": "yes", "b": 2}


def test_a_session_a_0_8_server_cleared_is_gone_here_too(redis_url, redis_server, redis_store):
    store = redis_store(redis_server, serves_08=True)
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, (), ttl=TTL, create=True)
    store.redis.delete("session:" + sid)  # 0.8's save_session of an emptied session
    assert store.load(sid, lock=False, refresh_ttl=None) is None
    assert store.incr(sid, "a", 1, ttl=TTL, create=False) is None


def test_tuples_and_markup_reach_0_8_as_0_8_itself_would_store_them(
    redis_url, redis_server, redis_store
):
    from markupsafe import Markup

    store = redis_store(redis_server, serves_08=True)
    sid = new_session_id(32)
    changed = {
        "_flashes": store.codec.encode([("info", Markup("<b>hi</b>"))]),
        "t": store.codec.encode((1, 2)),
    }
    store.save(sid, changed, (), ttl=TTL, create=True)
    assert read_like_08(store.redis, sid) == {"_flashes": [["info", "<b>hi</b>"]], "t": [1, 2]}


def test_after_the_transition_a_last_0_8_write_is_read_then_0_8_copies_go(
    redis_url, redis_server, redis_store
):
    during = redis_store(redis_server, serves_08=True)
    sid, untouched = new_session_id(32), new_session_id(32)
    during.save(sid, {"n": during.codec.encode(1)}, (), ttl=TTL, create=True)
    write_like_08(during.redis, sid, {"n": 5})  # the last request was on a 0.8 server
    write_like_08(during.redis, untouched, {"n": 7})  # a 0.8 session we never saw
    assert during.count_08().mirrored == 1 and during.count_08().not_carried_over == 1
    with pytest.raises(RuntimeError, match="SESSION_08_SERVERS"):
        during.finish_08()

    after = redis_store(redis_server)  # SESSION_08_SERVERS off
    loaded = after.load(sid, lock=False, refresh_ttl=None)
    assert values(after, loaded) == {"n": 5}
    assert after.redis.exists("session:" + sid) == 0
    assert not after.redis.hexists(after._keys(sid)[0], MIRROR)
    assert not after.redis.hexists(after._keys(sid)[0], LEGACY)
    moved = after.finish_08()
    assert (moved.mirrored, moved.not_carried_over) == (0, 1)
    assert after.count_08().total == 0
    assert values(after, after.load(untouched, lock=False, refresh_ttl=None)) == {"n": 7}
    dump = kit_of(after).dump(after)  # the transition over: no id at rest any more
    assert sid.encode() not in dump and untouched.encode() not in dump


def test_revoking_a_session_during_the_transition_removes_0_8s_copy_too(
    redis_url, redis_server, redis_store
):
    """The index names the session by its at-rest name only; the hash names 0.8's key
    (LEGACY), so a revoked session is gone for 0.8's servers and is not read back."""
    store = redis_store(redis_server, serves_08=True)
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, (), ttl=TTL, create=True)
    assert read_like_08(store.redis, sid) == {"a": 1}
    user = user_key("ann")
    store.bind_user(user, sid, label="", cap=None)
    assert len(store.revoke_user_sessions(user, None, keep=None)) == 1
    assert read_like_08(store.redis, sid) is None
    assert store.load(sid, lock=False, refresh_ttl=None) is None


def test_the_upgrade_command_counts_0_8_sessions_and_exits_1_until_none_is_left(redis_url):
    from tests.flask_session.demo_app import create_app

    config = {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": redis_url}
    during = create_app({**config, "SESSION_08_SERVERS": True})
    store = during.session_interface.store
    mirrored, untouched = new_session_id(32), new_session_id(32)
    store.save(mirrored, {"n": store.codec.encode(1)}, (), ttl=TTL, create=True)
    write_like_08(store.redis, untouched, {"n": 7})
    counted = during.test_cli_runner().invoke(args=["session", "upgrade-08"])
    assert counted.exit_code == 1
    assert "in the store: 2 (1 not yet carried over, 1 kept current" in counted.output
    refused = during.test_cli_runner().invoke(args=["session", "upgrade-08", "--finish"])
    assert refused.exit_code == 1 and "SESSION_08_SERVERS" in refused.output
    store.close()

    # The default ('auto') finds 0.8's data: the operator ends the transition with False.
    after = create_app({**config, "SESSION_08_SERVERS": False})
    finished = after.test_cli_runner().invoke(args=["session", "upgrade-08", "--finish"])
    assert finished.exit_code == 0, finished.output
    assert "in the store: 0 " in finished.output
    after.session_interface.store.close()
    settled = create_app(config)  # 'auto' again: nothing of 0.8's, no marker
    assert settled.session_interface.store.serves_08 is False
    settled.session_interface.store.close()


def test_session_08_servers_is_refused_on_a_redis_cluster_and_auto_is_off(redis_cluster, caplog):
    from flask_session import SessionConfigError
    from tests.flask_session.demo_app import create_app

    redis_cluster.restart_stopped()
    redis_cluster.flushall()
    config = {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": redis_cluster.url}
    with pytest.raises(SessionConfigError, match="SESSION_08_SERVERS.*Redis Cluster"):
        create_app({**config, "SESSION_08_SERVERS": True})
    # 'auto' never serves the transition on a cluster, 0.8's data or not, and says so
    caplog.set_level("INFO", logger="flask_session.stores.redis")
    app = create_app(config)
    store = app.session_interface.store
    try:
        sid = new_session_id(32)
        write_like_08(store.redis, sid, {"n": 7})
        assert store.serves_08 is False
        assert "'auto' on a Redis Cluster: no rolling upgrade's transition" in caplog.text
        again = create_app(config)
        assert again.session_interface.store.serves_08 is False
        again.session_interface.store.close()
        # a cutover works: the 0.8 session is carried over on first use
        loaded = store.load(sid, lock=False, refresh_ttl=None)
        assert values(store, loaded) == {"n": 7}
    finally:
        store.close()
