"""The memcached store: ``<prefix><sid>`` documents, ``...:lock`` items."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from ..memcached_server import MemcachedServer, memcached_keys
from ..setting_rows import Setting
from .base import StoreKit

LOCK_SUFFIX = ":lock"


def all_keys(store: Any) -> list[str]:
    """Every live key on every server of the store."""
    return [key for host, port in store.servers for key in memcached_keys(host, port)]


class MemcachedKit(StoreKit):
    store_type = session_type = "memcached"
    rank = 50
    server_fixture = "memcached_server"

    # The good servers are the kit's own (settings), so no good rows.
    setting_rows = (
        Setting(
            "SESSION_MEMCACHED_SERVERS",
            (
                "127.0.0.1:http",
                "127.0.0.1:0",
                "127.0.0.1:70000",
                ":11211",
                "",
                ",",
                "null",
                "123",
                "true",
            ),
            store="memcached",
        ),
        Setting(
            # memcached holds items of about 1 MiB: more is refused at start-up
            "SESSION_MAX_SIZE",
            ("1048576", "2000000"),
            (("1000000", 1000000),),
            store="memcached",
        ),
    )
    python_only_settings = {
        "SESSION_MEMCACHED": "a pymemcache client, from Python only (refusals:"
        " tests/flask_session/test_sql_and_memcached_stores.py; use: tests/dropin)",
    }

    def server(self) -> MemcachedServer:
        return MemcachedServer()

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        servers = request.getfixturevalue("memcached_servers")
        return {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED_SERVERS": servers}

    def session_names(self, store: Any, prefix: str = "session:") -> set[str]:
        return {
            key[len(prefix) :]
            for key in all_keys(store)
            if key.startswith(prefix) and ":" not in key[len(prefix) :]
        }

    def lock_count(self, store: Any, prefix: str = "session:") -> int:
        return sum(1 for key in all_keys(store) if key.endswith(LOCK_SUFFIX))

    def items(self, store: Any) -> list[str]:
        return sorted(all_keys(store))

    def stored_document(self, store: Any, sid: str) -> bytes | None:
        with closing(Client(store.servers[0])) as client:
            found: bytes = client.get(store._key(sid))
        return found

    def dump(self, store: Any) -> bytes:
        parts: list[bytes] = []
        for host, port in store.servers:
            with closing(Client((host, port))) as client:
                for key in memcached_keys(host, port):
                    parts += (key.encode(), client.get(key) or b"")
        return b"\n".join(parts)

    def write_unhashed(
        self, store: Any, sid: str, values: dict[str, bytes], ttl: float, prefix: str = "session:"
    ) -> None:
        key = prefix + sid
        node = store._node(key)  # where the store itself looks for the key
        node.set(key, store.codec.encode_document(values), expire=int(ttl), noreply=False)

    def holds_unhashed(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        return prefix + sid in all_keys(store)

    def corrupt(self, store: Any, sid: str) -> None:
        with closing(Client(store.servers[0], default_noreply=False)) as client:
            client.set(store._key(sid), b"{torn", expire=60)


KIT = MemcachedKit()
