"""Live sessions are never evicted; cleanup removes exactly the expired ones."""

from __future__ import annotations

import os
import time

import pytest

from flask_session.ids import new_session_id

from .conftest import stored_session_count


def test_5000_sessions_are_all_kept_intact(app):
    clients = []
    for number in range(5000):
        client = app.test_client()
        client.post(f"/set/owner?value={number}")
        clients.append(client)
    assert stored_session_count(app) == 5000
    for number, client in enumerate(clients):
        assert client.get("/get").json == {"owner": str(number)}


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_100000_live_files_are_all_kept_by_cleanup(app):
    """No count threshold anywhere: cachelib's default would have pruned to 500."""
    store = app.session_interface.store
    value = {"n": store.codec.encode(1)}
    sids = [new_session_id(32) for _ in range(100_000)]
    for sid in sids:
        store.save(sid, value, [], ttl=3600, create=True)
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0, result.output
    assert "Removed 0 expired session(s)" in result.output
    assert "kept 100000 live session(s)" in result.output
    assert stored_session_count(app) == 100_000
    assert all(store.load(sid, lock=False, refresh_ttl=None) for sid in sids[::997])


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_cleanup_removes_expired_sessions_and_stale_temp_files_only(app):
    store = app.session_interface.store
    clients = []
    for _ in range(10):
        client = app.test_client()
        client.post("/incr/n")
        clients.append(client)
    expired, live = clients[:4], clients[4:]
    an_hour_ago = time.time() - 3600
    for client in expired:  # the file's mtime is its expiry time
        path = store._path(client.get_cookie("session").value)
        os.utime(path, (an_hour_ago, an_hour_ago))
    stale_temp = os.path.join(store.directory, ".tmpdeadwriter.tmp")  # a killed writer's
    with open(stale_temp, "wb") as file:
        file.write(b'{"half":')
    not_ours = os.path.join(store.directory, "shared-counter")
    with open(not_ours, "w") as file:
        file.write("42\n")

    runner = app.test_cli_runner()
    result = runner.invoke(args=["session", "cleanup", "-v"])
    assert result.exit_code == 0, result.output
    assert "Removed 4 expired session(s) and 0 stale temp file(s)" in result.output
    assert "kept 6 live session(s)" in result.output
    assert os.path.exists(stale_temp)  # fresh: could belong to a writer right now

    result = runner.invoke(args=["session", "cleanup", "--stale-temp-after", "0"])
    assert "Removed 0 expired session(s) and 1 stale temp file(s)" in result.output
    assert not os.path.exists(stale_temp)
    assert os.path.exists(not_ours)
    assert stored_session_count(app) == 6
    for client in live:
        assert client.get("/get").json == {"n": 1}
    for client in expired:
        assert client.get("/get").json == {}


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_cleanup_never_removes_a_session_in_use(app):
    """An expired-looking file whose lock is held (a request is using it) is kept."""
    store = app.session_interface.store
    client = app.test_client()
    client.post("/incr/n")
    sid = client.get_cookie("session").value
    held = store.load(sid, lock=True, refresh_ttl=None)
    path = store._path(sid)
    os.utime(path, (time.time() - 10, time.time() - 10))
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert "Removed 0 expired session(s)" in result.output
    store.release(sid, held.lock)
    assert os.path.exists(path)


@pytest.mark.parametrize("store_type", ["redis"])
def test_cleanup_on_redis_explains_that_redis_expires_sessions(app):
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0
    assert "redis expires sessions" in result.output
