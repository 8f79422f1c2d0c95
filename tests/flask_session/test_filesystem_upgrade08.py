"""Issue 17 (filesystem side): a rolling upgrade from Flask-Session 0.8 (SESSION_08_SERVERS).

0.8's servers keep a session as cachelib's file ``sha256(prefix + sid)`` (an expiry
header, then a pickle of the dict), written whole; these tests write and read exactly
that between this store's verbs, as a 0.8 server does (real 0.8 servers run in
tests/dropin/test_rolling_upgrade.py). 0.8 is trusted with its own pickles; the tests
read them with ``pickle.loads`` only to see what a 0.8 server would see.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import time

from markupsafe import Markup

from flask_session.codecs import CODECS
from flask_session.ids import new_session_id
from flask_session.stores.filesystem import FileSystemStore
from flask_session.stores.legacy import LegacyCacheLibFiles

TTL = 60.0
LIFETIME_S = 3000


def store_on(directory, *, serves_08: bool) -> FileSystemStore:
    return FileSystemStore(
        directory=str(directory),
        legacy=LegacyCacheLibFiles(str(directory), "session:"),
        serves_08=serves_08,
        codec=CODECS["json"],
        key_prefix="session:",
        lock_timeout=2.0,
    )


def path_08(directory, sid: str) -> str:
    return os.path.join(directory, hashlib.sha256(f"session:{sid}".encode()).hexdigest())


def write_like_08(directory, sid: str, document: dict) -> None:
    """cachelib's FileSystemCache.set, as 0.8 calls it."""
    data = struct.pack("I", int(time.time()) + LIFETIME_S) + pickle.dumps(document, protocol=5)
    with open(path_08(directory, sid), "wb") as file:
        file.write(data)


def read_like_08(directory, sid: str) -> dict | None:
    try:
        with open(path_08(directory, sid), "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    return pickle.loads(data[4:])  # noqa: S301  # what a 0.8 server does with its files


def values(store, loaded) -> dict:
    return {key: store.codec.decode(raw) for key, raw in loaded.values.items()}


def test_both_fleets_see_each_others_writes_and_0_8_files_are_kept(tmp_path):
    store = store_on(tmp_path, serves_08=True)
    sid = new_session_id(32)
    write_like_08(tmp_path, sid, {"_permanent": True, "n": 1, "pair": (1, "x")})
    for expected in range(2, 12, 2):
        result = store.incr(sid, "n", 1, ttl=TTL, create=False)
        assert result is not None and result.value == expected
        seen = read_like_08(tmp_path, sid)
        assert seen == {"_permanent": True, "n": expected, "pair": (1, "x")}
        write_like_08(tmp_path, sid, {**seen, "n": seen["n"] + 1})
        loaded = store.load(sid, lock=True, refresh_ttl=None)
        assert values(store, loaded)["n"] == expected + 1
        store.release(sid, loaded.lock)
    assert os.path.exists(path_08(tmp_path, sid))


def test_flashes_cross_as_flask_keeps_them(tmp_path):
    store = store_on(tmp_path, serves_08=True)
    sid = new_session_id(32)
    flashes = [("info", Markup("<b>hi</b>"))]
    store.save(sid, {"_flashes": store.codec.encode(flashes)}, (), ttl=TTL, create=True)
    seen = read_like_08(tmp_path, sid)
    assert seen == {"_flashes": flashes} and type(seen["_flashes"][0][1]) is Markup


def test_a_session_a_0_8_server_cleared_is_gone_here_too(tmp_path):
    store = store_on(tmp_path, serves_08=True)
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, (), ttl=TTL, create=True)
    os.unlink(path_08(tmp_path, sid))  # 0.8's save_session of an emptied session
    assert store.load(sid, lock=False, refresh_ttl=None) is None
    assert store.incr(sid, "a", 1, ttl=TTL, create=False) is None


def test_a_session_file_0_8_pruning_deleted_comes_back_from_its_0_8_copy(tmp_path):
    """cachelib's pruning reads this package's files as expired cachelib files and deletes
    them; the 0.8 copy still holds the session."""
    store = store_on(tmp_path, serves_08=True)
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, (), ttl=TTL, create=True)
    os.unlink(store._path(sid))
    assert values(store, store.load(sid, lock=False, refresh_ttl=None)) == {"a": 1}


def test_a_session_made_before_the_transition_is_kept(tmp_path):
    before = store_on(tmp_path, serves_08=False)
    sid = new_session_id(32)
    before.save(sid, {"a": before.codec.encode(1)}, (), ttl=TTL, create=True)
    during = store_on(tmp_path, serves_08=True)
    assert values(during, during.load(sid, lock=False, refresh_ttl=None)) == {"a": 1}
    during.save(sid, {"b": during.codec.encode(2)}, (), ttl=TTL, create=False)
    assert read_like_08(tmp_path, sid) == {"a": 1, "b": 2}  # copied for 0.8 from now on


def test_after_the_transition_a_last_0_8_write_is_read_then_0_8_files_go(tmp_path):
    during = store_on(tmp_path, serves_08=True)
    sid, untouched = new_session_id(32), new_session_id(32)
    during.save(sid, {"n": during.codec.encode(1)}, (), ttl=TTL, create=True)
    write_like_08(tmp_path, sid, {"n": 5})  # the last request was on a 0.8 server
    write_like_08(tmp_path, untouched, {"n": 7})  # a 0.8 session we never saw
    count = during.count_08()
    assert (count.mirrored, count.not_carried_over) == (1, 1)

    after = store_on(tmp_path, serves_08=False)
    assert values(after, after.load(sid, lock=False, refresh_ttl=None)) == {"n": 5}
    assert not os.path.exists(path_08(tmp_path, sid))
    moved = after.finish_08()
    assert (moved.mirrored, moved.not_carried_over) == (0, 1)
    assert after.count_08().total == 0
    assert values(after, after.load(untouched, lock=False, refresh_ttl=None)) == {"n": 7}
