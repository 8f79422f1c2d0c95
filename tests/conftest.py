"""Fixtures backed by real processes: redis-server, gunicorn, headless Chromium.

The helpers live in tests/support; this file only wires them into pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import launch_chromium
from tests.support.gunicorn_server import GunicornServer
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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
