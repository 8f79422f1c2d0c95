"""What the sqlalchemy and memcached stores hold, looked up directly (not through the
store's verbs), for tests that check nothing was left behind or created.

``config`` is a test's ``store_config`` (SESSION_* settings).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .memcached_server import memcached_keys

LOCK_SUFFIX = ":lock"


def stored_session_ids(config: dict[str, Any]) -> set[str]:
    """Session ids with a stored session (expired rows included: they are still there)."""
    prefix = config.get("SESSION_KEY_PREFIX", "session:")
    if config["SESSION_TYPE"] == "sqlalchemy":
        return {key[len(prefix) :] for key in _column(config, "", "session_id")}
    return {
        key[len(prefix) :]
        for key in _memcached_keys(config)
        if key.startswith(prefix) and ":" not in key[len(prefix) :]
    }


def stored_lock_count(config: dict[str, Any]) -> int:
    """Session locks (lease rows, lock items) still in the store."""
    if config["SESSION_TYPE"] == "sqlalchemy":
        return len(_column(config, "_locks", "session_id"))
    return sum(1 for key in _memcached_keys(config) if key.endswith(LOCK_SUFFIX))


def _column(config: dict[str, Any], suffix: str, column: str) -> list[str]:
    table = config.get("SESSION_SQLALCHEMY_TABLE", "sessions") + suffix
    engine = sa.create_engine(config["SESSION_SQLALCHEMY_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
    finally:
        engine.dispose()


def _memcached_keys(config: dict[str, Any]) -> list[str]:
    found = []
    for server in config["SESSION_MEMCACHED_SERVERS"].split(","):
        host, _, port = server.strip().rpartition(":")
        found += memcached_keys(host, int(port))
    return found
