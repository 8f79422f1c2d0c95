"""The Redis store, on every topology: ``<prefix>{<name>}`` hashes, ``...:lock`` keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from ..redis_server import RedisServer
from ..setting_rows import BOOL_BAD, BOOL_GOOD, Setting
from .base import StoreKit

#: more replicas than any test topology has: a primary told to wait for them refuses
#: every write with NOREPLICAS (what ping must report), and keeps its data
UNREACHABLE_REPLICA_COUNT = 100


def session_names(client: Any, prefix: str = "session:") -> set[str]:
    """At-rest names of the sessions that have a data key (``<prefix>{<name>}``) in Redis."""
    ids = set()
    for key in client.scan_iter(f"{prefix}{{*}}"):
        name = key.decode()
        if name.endswith("}"):  # not a lock, not an increment's record
            ids.add(name[len(prefix) :].strip("{}"))
    return ids


def lock_keys(client: Any, prefix: str = "session:") -> set[str]:
    return {key.decode() for key in client.scan_iter(f"{prefix}*:lock")}


@contextmanager
def refusing_writes(servers: list[Any]) -> Iterator[None]:
    """Every server in ``servers`` (RedisServer) refuses writes (NOREPLICAS) in the block."""
    with ExitStack() as stack:
        for server in servers:
            client = stack.enter_context(server.client())
            client.config_set("min-replicas-to-write", UNREACHABLE_REPLICA_COUNT)
            stack.callback(client.config_set, "min-replicas-to-write", 0)
        yield


class RedisKit(StoreKit):
    store_type = session_type = "redis"
    rank = 20
    #: one redis-server, a Redis Cluster (3 primaries + 3 replicas), a Sentinel set (master,
    #: replica, 3 sentinels) and one Valkey server (``topology_url`` in tests/conftest.py)
    topologies = ("standalone", "cluster", "sentinel", "valkey")
    #: the standalone server; tests on other topologies (the ``redis_topologies`` marker)
    #: use their own (``topology_url``)
    server_fixture = "redis_server"

    setting_rows = (
        Setting("SESSION_REDIS_URL", ("123", "true", "[1]"), store="redis"),
        Setting("SESSION_REDIS_ALLOW_EVICTION", BOOL_BAD, BOOL_GOOD, store="redis"),
        # 0 only among the good values: the test server has no replica, so with 1 every
        # write would (rightly) answer 503
        Setting(
            "SESSION_REDIS_MIN_REPLICAS",
            ("-1", "17", "1.5", "two", "true", ""),
            (("0", 0), ("00", 0)),
            store="redis",
        ),
        Setting(
            "SESSION_REDIS_WAIT_TIMEOUT",
            ("0", "-1", "61", "NaN", "soon", "true"),
            (("0.5", 0.5), ("2", 2)),
            store="redis",
        ),
    )
    python_only_settings = {
        "SESSION_REDIS": "a redis.Redis object, settable from Python only (checked by the"
        " Redis store)",
    }

    def server(self) -> RedisServer:
        return RedisServer()

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        url = request.getfixturevalue("topology_url")
        return {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": url}

    def session_names(self, store: Any, prefix: str = "session:") -> set[str]:
        return session_names(store.redis, prefix)

    def lock_count(self, store: Any, prefix: str = "session:") -> int:
        return len(lock_keys(store.redis, prefix))

    def items(self, store: Any) -> list[str]:
        # not the short-lived increment records, <key>:incr:<id>
        keys = (key.decode() for key in store.redis.scan_iter("*"))
        return sorted(key for key in keys if ":incr:" not in key)

    def stored_document(self, store: Any, sid: str) -> bytes | None:
        return None  # a hash: one field per value, and a marker field naming the format

    def dump(self, store: Any) -> bytes:
        client = store.redis
        parts: list[bytes] = []
        for key in client.scan_iter("*"):
            parts.append(key)
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "hash":
                for field, value in client.hgetall(key).items():
                    parts += (field, value)
            elif kind == "string":
                parts.append(client.get(key) or b"")
            elif kind != "none":
                parts.append(client.dump(key) or b"")
        return b"\n".join(parts)

    def write_unhashed(
        self, store: Any, sid: str, values: dict[str, bytes], ttl: float, prefix: str = "session:"
    ) -> None:
        key = f"{prefix}{{{sid}}}"
        store.redis.hset(key, mapping={b"\xff": store.codec.name, **values})
        store.redis.pexpire(key, int(ttl * 1000))

    def holds_unhashed(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        return bool(store.redis.exists(f"{prefix}{{{sid}}}", f"{prefix}{{{sid}}}:moving"))

    def corrupt(self, store: Any, sid: str) -> None:
        # Written by something else (the other of json/msgpack is read: see test_redis_formats)
        store.redis.hset(store._keys(sid)[0], b"\xff", "pickle")

    @contextmanager
    def outage(self, request: pytest.FixtureRequest, store: Any) -> Iterator[None]:
        """A single server (standalone, Valkey) is stopped; a cluster's primaries or a
        sentinel set's master refuse writes instead (stopping them all would make the
        shared topology take seconds to form again)."""
        topology = request.getfixturevalue("redis_topology")
        if topology in ("standalone", "valkey"):
            server = request.getfixturevalue(
                "redis_server" if topology == "standalone" else "valkey_server"
            )
            server.stop()
            try:
                yield
            finally:
                server.start()
            return
        if topology == "cluster":
            primaries = request.getfixturevalue("redis_cluster").current_primaries()
        else:
            primaries = [request.getfixturevalue("redis_sentinel").master()]
        with refusing_writes(primaries):
            yield


KIT = RedisKit()
