"""Issue 20, item 4: session ids are hashed at rest, on every store and topology.

A store keys each session by its at-rest name (``stores/common.py: at_rest_name``), so a
dump of the store (a backup, a stolen snapshot) holds no id that opens a session. Sessions
written before (keyed by the raw id) are carried over on first use, without losing an
update made meanwhile.
"""

from __future__ import annotations

import threading

import pytest

from flask_session.stores.common import at_rest_name
from flask_session.stores.users import UserIndex
from tests.support.kits import kit_of

from .test_session_contract import sid_of

pytestmark = pytest.mark.redis_topologies

#: SESSION_REGENERATE_GRACE here: long enough that the forwarding record is live while
#: the store is dumped
GRACE = 30.0
TTL = 60.0
#: the concurrent carry-over: threads, and increments each
THREADS = 4
INCREMENTS = 10


def test_a_dump_of_the_store_holds_no_live_session_id(make_app):
    """Keys, values, columns, file names and contents: none holds a live id, with a
    forwarding record of a regeneration, a session bound to its user, a lock held and an
    increment's record in the store."""
    app = make_app(SESSION_REGENERATE_GRACE=GRACE)
    store = app.session_interface.store
    user = app.test_client()
    user.post("/set/x?value=1")
    old = sid_of(user)
    if isinstance(store, UserIndex):
        assert user.post("/login/alice").status_code == 200  # regenerates, then binds
    else:
        user.post("/regenerate")
    new = sid_of(user)
    other = app.test_client()
    other.post("/incr/n")
    held_sid = sid_of(other)
    assert len({old, new, held_sid}) == 3
    held = store.load(held_sid, lock=True, refresh_ttl=None)
    assert held is not None
    try:
        dump = kit_of(store).dump(store)
    finally:
        store.release(held_sid, held.lock)
    assert dump  # the store does hold the sessions
    for sid in (old, new, held_sid):
        assert sid.encode() not in dump
    # ... and every one of them still opens its session (the old id through the record)
    in_flight = app.test_client()
    in_flight.set_cookie("session", old)
    assert in_flight.get("/get").json["x"] == "1"
    assert user.get("/get").json["x"] == "1"
    assert other.get("/get").json == {"n": 1}
    names = {at_rest_name(store.key_prefix, sid) for sid in (new, held_sid)}
    assert all(name.encode() in dump for name in names)  # stored under these


def test_a_session_of_the_raw_id_layout_is_carried_over_on_first_use(store):
    kit = kit_of(store)
    if store.name == "filesystem":
        pytest.skip("the filesystem store always named files by a hash of the id")
    sid = new_sid()
    kit.write_unhashed(store, sid, {"a": store.codec.encode("kept")}, TTL)
    assert kit.holds_unhashed(store, sid) and not kit.holds(store, sid)
    loaded = store.load(sid, lock=True, refresh_ttl=None)
    assert loaded is not None and store.codec.decode(loaded.values["a"]) == "kept"
    assert store.save(
        sid, {"b": store.codec.encode(2)}, [], ttl=TTL, create=False, lock=loaded.lock
    )
    assert kit.holds(store, sid) and not kit.holds_unhashed(store, sid)
    values = store.load(sid, lock=False, refresh_ttl=None).values
    assert {key: store.codec.decode(raw) for key, raw in values.items()} == {"a": "kept", "b": 2}
    assert sid.encode() not in kit.dump(store)


def test_a_carry_over_whose_mover_died_cannot_bring_a_deleted_session_back(store):
    """Redis moves a session in steps (on a cluster its two keys are in two slots): a
    mover that restored it at its hashed key and died before dropping its moving key
    leaves that key behind. Deleting the session deletes it too, so a later miss, once
    the dead mover's lease has ended, has nothing to restore."""
    if store.name != "redis":
        pytest.skip("only the Redis store carries a session over in steps")
    sid = new_sid()
    kit_of(store).write_unhashed(store, sid, {"a": store.codec.encode("old")}, TTL)
    raw = store._raw_keys(sid)  # data, moving, lease
    dump, pttl = store._claim_raw(raw, ["a-mover-that-dies", store._lock_ms])
    store._write(store._restore_raw, store._keys(sid)[:1], [max(0, int(pttl)), dump])
    # ... and the mover dies here, before its MOVED_RAW
    assert store.load(sid, lock=False, refresh_ttl=None) is not None
    store.delete(sid)
    store.redis.delete(raw[2])  # the dead mover's lease has ended
    assert store.load(sid, lock=False, refresh_ttl=None) is None


def test_concurrent_increments_during_the_carry_over_lose_nothing(store):
    """Every thread's first increment meets the raw-id layout: one carries the session
    over, the others wait for it or find it moved; every increment counts once."""
    kit = kit_of(store)
    if store.name == "filesystem":
        pytest.skip("the filesystem store always named files by a hash of the id")
    sid = new_sid()
    kit.write_unhashed(store, sid, {"n": store.codec.encode(0)}, TTL)
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(INCREMENTS):
                assert store.incr(sid, "n", 1, ttl=TTL, create=False) is not None
        except BaseException as error:  # reported below, with the count
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    loaded = store.load(sid, lock=False, refresh_ttl=None)
    assert store.codec.decode(loaded.values["n"]) == THREADS * INCREMENTS
    assert not kit.holds_unhashed(store, sid)


def new_sid() -> str:
    from flask_session.ids import new_session_id

    return new_session_id(32)
