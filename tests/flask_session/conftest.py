"""Fixtures for the contract tests; ``store_type`` (tests/conftest.py) runs each on every store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from flask_session.codecs import CODECS
from flask_session.stores.redis import RedisStore
from tests.flask_session.demo_app import create_app
from tests.support.kits import kit_of
from tests.support.redis_server import RedisServer


@pytest.fixture
def make_app(app_builder, store_config: dict) -> Callable[..., Flask]:
    """Build the demo app on the test's store (tests/conftest.py runs it on every store);
    keyword arguments override config."""

    def make(**overrides) -> Flask:
        return app_builder(create_app, {"TESTING": True, **store_config, **overrides})

    return make


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def store(app: Flask):
    """The app's store object, for store-level contract checks."""
    return app.session_interface.store


def stored_session_count(app: Flask) -> int:
    """How many sessions the app's store holds, looked up directly in the store."""
    store = app.session_interface.store
    return kit_of(store).session_count(store, app.config["SESSION_KEY_PREFIX"])


@pytest.fixture
def redis_store() -> Iterator[Callable[..., RedisStore]]:
    """``redis_store(server_or_client, fmt="json", **store_options)`` -> a RedisStore.

    Given a server, the store gets its own fail-fast client; every client is closed at
    teardown.
    """
    clients: list[redis.Redis] = []

    def make(target: RedisServer | redis.Redis, fmt: str = "json", **options: Any) -> RedisStore:
        client = target.client() if isinstance(target, RedisServer) else target
        clients.append(client)
        settings: dict[str, Any] = {
            "codec": CODECS[fmt],
            "key_prefix": "session:",
            "lock_timeout": 2.0,
            **options,
        }
        return RedisStore(client=client, **settings)

    yield make
    for client in clients:
        client.close()
