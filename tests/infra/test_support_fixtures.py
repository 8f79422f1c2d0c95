"""Self-tests of tests/support: the helpers really start, stop and drive real processes."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.support.app_servers import GranianServer, GunicornServer, is_alive
from tests.support.memcached_server import MemcachedServer
from tests.support.ports import HOST, free_port
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

TINY_APP = "tests.infra.tiny_app:app"


@contextlib.contextmanager
def _squatted(port: int | None) -> Iterator[int]:
    """``port`` taken by another listener meanwhile (as by another process); yields it."""
    assert port is not None
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        yield port


def _port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    with socket.socket() as sock:
        sock.bind((HOST, port))
        assert sock.getsockname() == (HOST, port)


# -- every server process (tests/support/server_process.py) --------------------------------

#: each kind of server process a fixture starts, built on a free port (not started)
SERVER_PROCESSES = {
    "redis": RedisServer,
    "memcached": MemcachedServer,
    "postgres": PostgresServer,
    "granian": lambda: GranianServer(TINY_APP, workers=1, threads=1),
}


@pytest.mark.parametrize("kind", sorted(SERVER_PROCESSES))
def test_a_taken_port_is_retried_elsewhere_and_restarts_keep_the_new_one(kind):
    """Another process takes the free port between choosing and binding it: the start
    moves to another free port (it used to fail for memcached and PostgreSQL)."""
    server = SERVER_PROCESSES[kind]()
    with _squatted(server.port) as taken, server:
        assert server.running and server.port != taken
        assert f"{server.kind} could not bind" not in server.log_text()
        moved = server.port
        server.stop()
        assert not _port_accepts(moved)
        server.start()
        assert server.port == moved  # clients were told this one
        assert _port_accepts(moved)
    assert not server.dir.exists()


def test_a_cluster_node_whose_bus_port_is_taken_starts_on_new_ports():
    """A cluster node listens on a bus port too: when that one is taken (a client's
    outgoing connection can take it between choosing and binding), both are chosen again
    (a cluster set failed to start this way in a full run)."""
    node = RedisServer(cluster_bus=True, extra_args=("--cluster-enabled", "yes"))
    with _squatted(node.bus_port) as taken, node:
        assert node.running and node.bus_port != taken
        assert _port_accepts(node.bus_port)


# -- redis ---------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["first", "second"])
def test_redis_url_fixture_gives_an_empty_working_database(redis_server, redis_url, run):
    """Whichever run comes second proves the fixture flushed what the first one wrote."""
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("left-behind", run)
    with redis_server.client() as client:
        assert client.get("left-behind") == run.encode()


def test_redis_stop_refuses_connections_and_start_comes_back_on_same_port():
    with RedisServer() as server:
        port = server.port
        with server.client() as client:
            assert client.incr("n") == 1

            server.stop()
            assert not server.running
            assert not _port_accepts(port)
            started = time.monotonic()
            with pytest.raises(redis.ConnectionError):
                client.incr("n")
            # No retries: the failure is immediate, not 10 backed-off attempts.
            assert time.monotonic() - started < 1.0

            server.start()
            assert server.port == port
            assert server.url == f"redis://127.0.0.1:{port}/0"
            # No persistence: the restarted server is empty.
            assert client.get("n") is None
            assert client.incr("n") == 1
        assert "Ready to accept connections" in server.log_tail()
    assert not _port_accepts(port)
    assert not server.dir.exists()


def test_redis_server_has_no_persistence_and_binds_loopback_only(redis_server):
    with redis_server.client() as client:
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("protected-mode")["protected-mode"] == "yes"
        assert client.config_get("dir")["dir"] == str(redis_server.dir.resolve())


# -- app servers (granian, gunicorn) ------------------------------------------------------

#: what each server logs when it starts a worker
WORKER_STARTED = {"granian": "Spawning worker", "gunicorn": "Booting worker"}


def _pid(url: str) -> int:
    response = requests.get(url + "/pid", timeout=10)
    response.raise_for_status()
    return response.json()["pid"]


def _pids_seen(url: str, want: int, limit: float = 15.0) -> set[int]:
    """Send concurrent requests (a new connection each) until `want` distinct pids answered
    or `limit` seconds passed (a just-started worker may still be importing the app)."""
    seen: set[int] = set()
    deadline = time.monotonic() + limit
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(seen) < want and time.monotonic() < deadline:
            seen.update(pool.map(lambda _: _pid(url), range(8)))
    return seen


def test_server_serves_from_several_worker_processes(app_server, server_kind):
    server = app_server(TINY_APP, workers=2, threads=4)
    assert server.url.startswith("http://127.0.0.1:")
    workers = server.worker_pids()
    assert len(workers) == 2
    assert server.pid not in workers

    seen = _pids_seen(server.url, want=2)
    assert seen == set(workers)

    response = requests.get(server.url + "/healthz", timeout=10)
    assert response.json() == {"status": "ok"}
    assert WORKER_STARTED[server_kind] in server.log_text()


def test_server_replaces_a_killed_worker(app_server):
    server = app_server(TINY_APP, workers=2, threads=2)
    before = server.worker_pids()
    victim = before[0]

    server.kill_worker(victim)

    after = server.wait_for_workers(exclude=[victim])
    assert len(after) == 2
    assert victim not in after
    survivor = before[1]
    assert survivor in after
    replacement = (set(after) - {survivor}).pop()
    # The replacement really serves requests.
    assert replacement in _pids_seen(server.url, want=2)
    with pytest.raises(ValueError):
        server.kill_worker(victim)


def test_server_reload_replaces_every_worker(app_server):
    server = app_server(TINY_APP, workers=2, threads=2)
    before = server.worker_pids()
    server.reload()
    after = server.wait_for_workers(exclude=before, timeout=30)
    assert _pids_seen(server.url, want=2) == set(after)


@pytest.mark.parametrize("server_class", [GranianServer, GunicornServer])
def test_server_stop_ends_main_process_and_workers(server_class):
    with server_class(TINY_APP, workers=2, threads=1) as server:
        port = server.port
        workers = server.worker_pids()
        assert _pid(server.url) in workers
        server.stop()
        assert not server.running
        assert server.worker_pids() == []
        assert not _port_accepts(port)
    assert not any(is_alive(pid) for pid in workers)


@pytest.mark.parametrize("server_class", [GranianServer, GunicornServer])
def test_server_start_failure_reports_the_log(server_class):
    server = server_class("tests.infra.no_such_module:app", workers=1, ready_timeout=20)
    try:
        with pytest.raises(RuntimeError) as excinfo:
            server.start()
        assert "no_such_module" in str(excinfo.value)
    finally:
        server.close()


def test_server_env_reaches_the_app(app_server, tmp_path):
    marker = tmp_path / "marker"
    server = app_server(
        "tests.infra.tiny_app:app",
        workers=1,
        threads=1,
        env={"TINY_APP_MARKER": str(marker)},
    )
    assert requests.get(server.url + "/env/TINY_APP_MARKER", timeout=10).json() == {
        "value": str(marker)
    }


# -- browser -------------------------------------------------------------------------------


def test_browser_reads_text_from_a_data_url(browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto("data:text/html,<p id='greeting'>hello from chromium</p>")
        assert page.locator("#greeting").inner_text() == "hello from chromium"
    finally:
        context.close()


def test_browser_loads_a_page_served_by_granian(browser, granian_server):
    server = granian_server(TINY_APP, workers=2, threads=2)
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(server.url + "/")
        assert response is not None and response.status == 200
        assert int(page.locator("#pid").inner_text()) in server.worker_pids()
    finally:
        context.close()
