"""The store contract (flask_session/stores/base.py), proven on every store.

These talk to the store objects directly; test_session_contract.py proves the same
promises through Flask.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa

from flask_session import SessionLockTimeout, StoreUnavailable
from flask_session.ids import new_session_id
from flask_session.stores.upgrade08 import MARKER_NAME
from tests.support.kits import kit_of
from tests.support.memcached_server import memcached_keys

from .conftest import stored_session_count

#: also on a Redis Cluster, a Sentinel set and Valkey (tests/conftest.py)
pytestmark = pytest.mark.redis_topologies

TTL = 60.0


def enc(store, value):
    return store.codec.encode(value)


def test_loading_an_unknown_session_finds_nothing_and_creates_nothing(app, store):
    sid = new_session_id(32)
    assert store.load(sid, lock=False, refresh_ttl=None) is None
    assert store.load(sid, lock=True, refresh_ttl=TTL) is None
    assert store.incr(sid, "n", 1, ttl=TTL, create=False) is None
    assert store.save(sid, {"a": enc(store, 1)}, [], ttl=TTL, create=False) is False
    store.delete(sid)
    assert stored_session_count(app) == 0
    if store.name == "redis":
        assert store.redis.dbsize() == 0  # no stray lock keys either
    if store.name == "sqlalchemy":
        assert stored_rows(store, store.tables.locks) == []  # no stray lease rows
    if store.name == "memcached":  # nothing but the 0.8 upgrade's marker, set at start-up
        marker = store.key_prefix + MARKER_NAME
        keys = [key for h, p in store.servers for key in memcached_keys(h, p)]
        assert [key for key in keys if key != marker] == []


def test_save_creates_and_load_reads_back(store):
    sid = new_session_id(32)
    values = {"a": enc(store, 1), "b": enc(store, {"nested": [1, "x"]})}
    assert store.save(sid, values, [], ttl=TTL, create=True) is True
    assert store.load(sid, lock=False, refresh_ttl=None).values == values


def test_save_merges_only_the_keys_it_is_given(store):
    sid = new_session_id(32)
    store.save(
        sid, {"a": enc(store, 1), "b": enc(store, 2), "c": enc(store, 3)}, [], ttl=TTL, create=True
    )
    store.save(sid, {"a": enc(store, 10)}, [], ttl=TTL, create=False)  # request one
    store.save(sid, {"d": enc(store, 4)}, ["c"], ttl=TTL, create=False)  # request two
    assert store.load(sid, lock=False, refresh_ttl=None).values == {
        "a": enc(store, 10),
        "b": enc(store, 2),
        "d": enc(store, 4),
    }


def test_a_session_left_with_no_keys_is_deleted(app, store):
    sid = new_session_id(32)
    store.save(sid, {"a": enc(store, 1)}, [], ttl=TTL, create=True)
    assert store.save(sid, {}, ["a"], ttl=TTL, create=False) is False
    assert store.load(sid, lock=False, refresh_ttl=None) is None
    assert stored_session_count(app) == 0


def test_a_deleted_session_is_never_brought_back_by_a_late_save(store):
    sid = new_session_id(32)
    store.save(sid, {"a": enc(store, 1)}, [], ttl=TTL, create=True)
    store.delete(sid)
    assert store.save(sid, {"b": enc(store, 2)}, [], ttl=TTL, create=False) is False
    assert store.incr(sid, "n", 1, ttl=TTL, create=False) is None
    assert store.load(sid, lock=False, refresh_ttl=None) is None


def test_incr_counts_and_reports_permanent(store):
    sid = new_session_id(32)
    assert store.incr(sid, "n", 1, ttl=TTL, create=True).value == 1
    assert store.incr(sid, "n", 5, ttl=TTL, create=False).value == 6
    assert store.incr(sid, "n", -7, ttl=TTL, create=False).value == -1
    store.save(sid, {"_permanent": enc(store, False)}, [], ttl=TTL, create=False)
    result = store.incr(sid, "other", 2, ttl=TTL, create=False)
    assert (result.value, store.codec.decode(result.permanent)) == (2, False)
    values = store.load(sid, lock=False, refresh_ttl=None).values
    assert store.codec.decode(values["n"]) == -1


def test_incr_refuses_a_value_that_is_not_an_int(store):
    sid = new_session_id(32)
    store.save(
        sid,
        {"s": enc(store, "text"), "f": enc(store, 1.5), "b": enc(store, True)},
        [],
        ttl=TTL,
        create=True,
    )
    for key in ("s", "f", "b"):
        with pytest.raises(TypeError):
            store.incr(sid, key, 1, ttl=TTL, create=False)
    assert store.codec.decode(store.load(sid, lock=False, refresh_ttl=None).values["s"]) == "text"


def test_incr_is_atomic_across_threads(store):
    sid = new_session_id(32)
    store.incr(sid, "n", 0, ttl=TTL, create=True)

    def work():
        for _ in range(50):
            store.incr(sid, "n", 1, ttl=TTL, create=False)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.codec.decode(store.load(sid, lock=False, refresh_ttl=None).values["n"]) == 400


def test_a_lock_excludes_other_lockers_and_incr_until_released(store):
    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 1)}, [], ttl=TTL, create=True)
    held = store.load(sid, lock=True, refresh_ttl=None)
    finished = []
    incrementer = threading.Thread(
        target=lambda: finished.append(store.incr(sid, "n", 1, ttl=TTL, create=False).value)
    )
    incrementer.start()
    time.sleep(0.3)
    assert finished == [], "incr ran while another request held the session lock"
    store.save(sid, {"n": enc(store, 10)}, [], ttl=TTL, create=False, lock=held.lock)
    incrementer.join(5)
    assert finished == [11]


def test_incr_never_lands_inside_a_locked_read_modify_write(store):
    """Increments race lockers that read the same key, add one and save it: none is lost.
    (An increment applied between a locker's read and its save would be overwritten by
    it; stores whose incr takes no lock must make the locker's lease fail it.)"""
    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 0)}, [], ttl=TTL, create=True)
    incrementers, increments, lockers, rounds = 4, 40, 2, 15

    def increment():
        for _ in range(increments):
            store.incr(sid, "n", 1, ttl=TTL, create=False)

    def read_modify_write():
        for _ in range(rounds):
            loaded = store.load(sid, lock=True, refresh_ttl=None)
            value = store.codec.decode(loaded.values["n"])
            time.sleep(0.002)  # a view's work: the window an increment could fall into
            store.save(
                sid, {"n": enc(store, value + 1)}, [], ttl=TTL, create=False, lock=loaded.lock
            )

    threads = [threading.Thread(target=increment) for _ in range(incrementers)]
    threads += [threading.Thread(target=read_modify_write) for _ in range(lockers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.codec.decode(store.load(sid, lock=False, refresh_ttl=None).values["n"])
    assert final == incrementers * increments + lockers * rounds


def test_waiting_for_a_lock_is_bounded_by_the_lock_timeout(store):
    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 1)}, [], ttl=TTL, create=True)
    held = store.load(sid, lock=True, refresh_ttl=None)
    store.lock_timeout = 0.3
    started = time.monotonic()
    with pytest.raises(SessionLockTimeout, match="SESSION_LOCK_TIMEOUT"):
        store.load(sid, lock=True, refresh_ttl=None)
    assert 0.25 < time.monotonic() - started < 2
    store.release(sid, held.lock)
    again = store.load(sid, lock=True, refresh_ttl=None)  # free again
    store.release(sid, again.lock)


def test_a_killed_holder_frees_the_lock_within_the_lock_timeout(app, store, store_config, tmp_path):
    """A worker killed with SIGKILL while holding a session lock blocks nobody for long."""
    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 1)}, [], ttl=TTL, create=True)
    ready = tmp_path / "locked"
    child = textwrap.dedent(
        f"""
        import time
        from tests.flask_session.demo_app import create_app
        app = create_app({{**{store_config!r}, "SESSION_LOCK_TIMEOUT": 2.5}})
        app.session_interface.store.load({sid!r}, lock=True, refresh_ttl=None)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "child never locked"
            time.sleep(0.02)
        store.lock_timeout = 0.2  # (+1 s grace on redis: still inside the child's lease)
        with pytest.raises(SessionLockTimeout):
            store.load(sid, lock=True, refresh_ttl=None)  # really held by the child
    finally:
        process.kill()
        process.wait()
    store.lock_timeout = 2.5  # the child's lease (redis); flock frees at once
    # memcached's leases are whole seconds: they end up to a second late
    allowed = 3.5 if store.name == "memcached" else 2.5
    started = time.monotonic()
    taken = store.load(sid, lock=True, refresh_ttl=None)
    assert time.monotonic() - started < allowed
    store.release(sid, taken.lock)


def test_sessions_expire_and_refresh_pushes_expiry_out(store):
    # (ttl, wait, refreshed ttl, wait): memcached counts expiry in whole seconds, and an
    # item it is told to keep for n seconds lives between n-1 and n
    ttl, first_wait, refresh, second_wait = (
        (3.0, 1.0, 10.0, 2.5) if store.name == "memcached" else (0.4, 0.25, 2.0, 0.3)
    )
    short, kept = new_session_id(32), new_session_id(32)
    store.save(short, {"a": enc(store, 1)}, [], ttl=ttl, create=True)
    store.save(kept, {"a": enc(store, 1)}, [], ttl=ttl, create=True)
    time.sleep(first_wait)
    assert store.load(kept, lock=False, refresh_ttl=refresh) is not None
    time.sleep(second_wait)
    assert store.load(short, lock=False, refresh_ttl=None) is None
    assert store.save(short, {"b": enc(store, 2)}, [], ttl=TTL, create=False) is False
    assert store.load(kept, lock=False, refresh_ttl=None) is not None


def test_the_lock_follows_the_session_after_each_save(store):
    """Saves replace the data (files: by rename); a waiter must lock the new copy."""
    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 0)}, [], ttl=TTL, create=True)

    def read_modify_write():
        for _ in range(25):
            loaded = store.load(sid, lock=True, refresh_ttl=None)
            value = store.codec.decode(loaded.values["n"])
            store.save(
                sid, {"n": enc(store, value + 1)}, [], ttl=TTL, create=False, lock=loaded.lock
            )

    threads = [threading.Thread(target=read_modify_write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.codec.decode(store.load(sid, lock=False, refresh_ttl=None).values["n"]) == 150


def test_corrupt_or_foreign_data_loads_as_nothing_with_one_warning(app, store, caplog):
    sid = new_session_id(32)
    store.save(sid, {"a": enc(store, 1)}, [], ttl=TTL, create=True)
    kit_of(store).corrupt(store, sid)
    with caplog.at_level(logging.WARNING, logger="flask_session"):
        assert store.load(sid, lock=True, refresh_ttl=None) is None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    store.lock_timeout = 0.5
    assert store.load(sid, lock=True, refresh_ttl=None) is None  # the lock was not kept


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_files_are_written_atomically_with_private_mode(store):
    sid = new_session_id(32)
    store.save(sid, {"a": enc(store, "x" * 10_000)}, [], ttl=TTL, create=True)
    path = store._path(sid)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sid not in os.path.basename(path)  # file names never come from cookie text
    assert [name for name in os.listdir(store.directory) if name.endswith(".tmp")] == []


def test_values_are_json_or_msgpack_never_pickle(make_app):
    for fmt, looks_right in (
        ("json", lambda raw: raw.startswith(b"{")),
        ("msgpack", lambda raw: raw[0] in range(0x80, 0x90)),
    ):
        app = make_app(SESSION_SERIALIZATION_FORMAT=fmt)
        store = app.session_interface.store
        sid = new_session_id(32)
        store.save(sid, {"a": enc(store, [1, 2])}, [], ttl=TTL, create=True)
        raw = kit_of(store).stored_document(store, sid)
        if raw is not None:  # one document per session
            assert looks_right(raw) and store.codec.decode_document(raw) == {
                "a": enc(store, [1, 2])
            }
        else:  # Redis: one hash field per value, and a marker field naming the format
            assert store.redis.hget(store._keys(sid)[0], "a") == enc(store, [1, 2])
            assert store.redis.hget(store._keys(sid)[0], b"\xff") == fmt.encode()
        assert store.incr(sid, "n", 41, ttl=TTL, create=False).value == 41
        assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 42
        store.delete(sid)


def stored_rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).all()


def test_ping(make_app, request):
    """Ping reaches the store: it passes on a live store, raises StoreUnavailable while the
    store is out (the kit's outage: its server stopped, its directory gone, its SQLite file
    locked, a Redis topology refusing writes) and passes again once the store is back."""
    # a short lock timeout: a locked SQLite file is reported busy after it
    store = make_app(SESSION_LOCK_TIMEOUT=0.5).session_interface.store
    store.ping()
    with kit_of(store).outage(request, store), pytest.raises(StoreUnavailable):
        store.ping()
    store.ping()


@pytest.mark.parametrize("store_type", ["redis"])
def test_scripts_survive_a_flushed_script_cache(store):
    """After SCRIPT FLUSH (or a Redis restart) the scripts are loaded again, once."""
    sid = new_session_id(32)
    assert store.incr(sid, "n", 1, ttl=TTL, create=True).value == 1
    store.redis.script_flush()
    assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 2  # counted once
    assert store.load(sid, lock=False, refresh_ttl=None) is not None


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_waiting_threads_leave_nothing_behind(store):
    """Threads of one process queue per path before polling the flock; the queue table
    empties again, also after waits that timed out."""
    from flask_session.stores import filelock

    sid = new_session_id(32)
    store.save(sid, {"n": enc(store, 0)}, [], ttl=TTL, create=True)
    held = store.load(sid, lock=True, refresh_ttl=None)
    store.lock_timeout = 0.2
    timeouts = []

    def impatient():
        try:
            store.load(sid, lock=True, refresh_ttl=None)
        except SessionLockTimeout:
            timeouts.append(1)

    waiters = [threading.Thread(target=impatient) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    assert timeouts == [1, 1, 1, 1]
    store.release(sid, held.lock)
    store.lock_timeout = 5
    test_incr_is_atomic_across_threads(store)
    assert filelock._queues == {}
