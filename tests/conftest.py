"""Fixtures backed by real processes: redis-server, gunicorn, headless Chromium, and
the one parametrization that runs store-dependent tests on every store.

The helpers live in tests/support; this file only wires them into pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import launch_chromium
from tests.support.gunicorn_server import GunicornServer
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Browser

#: every session store; tests asking for ``store_type`` (or what builds on it) run on each
STORE_TYPES = ["filesystem", "redis"]


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


@pytest.fixture
def gunicorn_server() -> Iterator[Callable[..., GunicornServer]]:
    """Factory: `gunicorn_server("pkg.module:app", env={...}, workers=2, ...)` -> started server.

    Takes GunicornServer's arguments; every server it starts is stopped at teardown.
    """
    servers: list[GunicornServer] = []

    def start(app_spec: str, **kwargs: object) -> GunicornServer:
        server = GunicornServer(app_spec, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.close()


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
def session_dir(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store_config(store_type: str, session_dir: Path, request: pytest.FixtureRequest) -> dict:
    """SESSION_* settings pointing at a fresh, empty store of ``store_type``."""
    if store_type == "redis":
        return {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": request.getfixturevalue("redis_url")}
    return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(session_dir)}


@pytest.fixture
def store_env(store_config: dict) -> dict:
    """The same settings as FLASK_* environment variables, for gunicorn runs."""
    return {f"FLASK_{key}": str(value) for key, value in store_config.items()}


@pytest.fixture
def app_builder() -> Iterator[Callable[..., Flask]]:
    """``app_builder(factory, config)`` -> ``factory(config)``, cleaned up after the test.

    At teardown it closes each app's Redis connections: left to the garbage collector, an
    open socket is a ResourceWarning, which with warnings as errors fails the run.
    """
    apps: list[Flask] = []

    def build(factory: Callable[[dict], Flask], config: dict) -> Flask:
        app = factory(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        client = getattr(app.session_interface.store, "redis", None)
        if client is not None:
            client.connection_pool.disconnect()
