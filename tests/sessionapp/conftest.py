"""Fixtures for the counter service's tests: every store-dependent test runs on both stores.

Real parts only: a real redis-server (tests/conftest.py), real directories, real gunicorn
processes, a real Chromium. Nothing is mocked.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from flask import Flask

from sessionapp import create_app
from sessionapp.shared_counter import EXTENSION_KEY
from tests.support.app_servers import CommandServer
from tests.support.kits import kit_of

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_flask_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set exactly the FLASK_* variables they mean; a developer's shell's don't leak in.

    Also cleans the environment gunicorn subprocesses inherit.
    """
    for name in list(os.environ):
        if name.startswith(("FLASK_", "SESSIONAPP_")):
            monkeypatch.delenv(name)


@pytest.fixture
def build_app(app_builder) -> Callable[[dict], Flask]:
    """``build_app(config)`` is ``create_app(config)``, cleaned up after the test."""
    return lambda config: app_builder(create_app, config)


@pytest.fixture
def make_app(build_app, store_config: dict) -> Callable[..., Flask]:
    """Build the service on the test's store; keyword arguments override config."""

    def make(**overrides: object) -> Flask:
        return build_app({"TESTING": True, **store_config, **overrides})

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


def stored_items(app: Flask) -> list[str]:
    """Everything in the app's store, looked up directly (its kit's ``items``): file names,
    keys or rows of sessions, locks and counters."""
    store = app.session_interface.store
    return kit_of(store).items(store)


def shared_counter_of(app: Flask):
    return app.extensions[EXTENSION_KEY]


COUNTER_IN_PAGE = re.compile(r'id="counter"[^>]*>\s*(-?\d+)\s*<')
SHARED_IN_PAGE = re.compile(r'id="shared-counter"[^>]*>\s*(-?\d+)\s*<')


def page_numbers(html: str) -> tuple[int, int]:
    """(caller's counter, shared counter) as shown on the page."""
    own, shared = COUNTER_IN_PAGE.search(html), SHARED_IN_PAGE.search(html)
    assert own and shared, html
    return int(own.group(1)), int(shared.group(1))


# -- servers started exactly as an operator would ------------------------------------------


@pytest.fixture
def command_server() -> Iterator[Callable[..., CommandServer]]:
    """Factory: ``command_server(args, env=..., port=..., cwd=...)`` -> a started, healthy
    server (run in `cwd`, default the repository)."""
    servers: list[CommandServer] = []

    def start(
        args: list[str],
        *,
        env: Mapping[str, str],
        port: int,
        cwd: str | os.PathLike[str] = REPO_ROOT,
    ) -> CommandServer:
        server = CommandServer(args, env, port, cwd=cwd)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


PYTHON = sys.executable
