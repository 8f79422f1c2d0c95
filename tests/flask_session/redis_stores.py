"""Helpers for the Redis store's own tests: stores on a given server, closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from flask_session.codecs import CODECS
from flask_session.stores.redis import RedisStore
from tests.support.redis_server import RedisServer

TTL = 60.0
FORMATS = ["json", "msgpack"]


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
