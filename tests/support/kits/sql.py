"""What the two databases of the sqlalchemy store share: its tables (no ``KIT`` here)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from .base import StoreKit


class SqlKit(StoreKit):
    """The sqlalchemy store: tables ``<table>`` (sessions), ``<table>_locks`` (leases) and
    ``<table>_counters``; ids are stored as ``<prefix><sid>``."""

    session_type = "sqlalchemy"
    expires_by_cleanup = True
    #: the SQLAlchemy dialect of this kit's database
    dialect = ""
    python_only_settings = {
        "SESSION_SQLALCHEMY": "an Engine or Flask-SQLAlchemy db, from Python only (refusals:"
        " tests/flask_session/test_sql_and_memcached_stores.py; use: tests/dropin)",
    }

    def owns(self, store: Any) -> bool:
        return bool(store.name == "sqlalchemy" and store.engine.dialect.name == self.dialect)

    def session_names(self, store: Any, prefix: str = "session:") -> set[str]:
        rows = _column(store, store.tables.sessions.c.session_id)
        return {key[len(prefix) :] for key in rows}

    def lock_count(self, store: Any, prefix: str = "session:") -> int:
        return len(_column(store, store.tables.locks.c.session_id))

    def items(self, store: Any) -> list[str]:
        tables = store.tables
        return sorted(
            _column(store, tables.sessions.c.session_id)
            + _column(store, tables.locks.c.session_id)
            + _column(store, tables.counters.c.name)
        )

    def stored_document(self, store: Any, sid: str) -> bytes | None:
        sessions = store.tables.sessions
        with store.engine.connect() as conn:
            return bytes(
                conn.execute(
                    sa.select(sessions.c.data).where(sessions.c.session_id == store._key(sid))
                ).scalar_one()
            )

    def dump(self, store: Any) -> bytes:
        tables = store.tables
        parts: list[bytes] = []
        with store.engine.connect() as conn:
            for table in (tables.sessions, tables.locks, tables.users, tables.counters):
                for row in conn.execute(sa.select(table)):
                    for value in row:
                        if isinstance(value, (bytes, memoryview)):
                            parts.append(bytes(value))
                        else:
                            parts.append(str(value).encode())
        return b"\n".join(parts)

    def write_unhashed(
        self, store: Any, sid: str, values: dict[str, bytes], ttl: float, prefix: str = "session:"
    ) -> None:
        expiry = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=ttl)
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(store.tables.sessions).values(
                    session_id=prefix + sid,
                    data=store.codec.encode_document(values),
                    expiry=expiry,
                )
            )

    def holds_unhashed(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        return prefix + sid in _column(store, store.tables.sessions.c.session_id)

    def corrupt(self, store: Any, sid: str) -> None:
        sessions = store.tables.sessions
        with store.engine.begin() as conn:
            conn.execute(
                sa.update(sessions)
                .where(sessions.c.session_id == store._key(sid))
                .values(data=b"\x93\x01\x02")  # a msgpack array: neither format's document
            )


def _column(store: Any, column: sa.Column) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(column)).scalars())
