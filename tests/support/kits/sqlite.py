"""The sqlalchemy store on a SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from ..setting_rows import BOOL_BAD, Setting
from .sql import SqlKit

DATABASE_FILE = "sessions.db"


class SqliteKit(SqlKit):
    store_type = "sqlite"
    dialect = "sqlite"
    rank = 30

    # The good URL is the kit's own (settings), so no good rows for it.
    setting_rows = (
        Setting(
            "SESSION_SQLALCHEMY_URL",
            (
                "not a url",
                "mysql://u@127.0.0.1/app",
                "sqlite://",
                "sqlite:///:memory:",
                "",
                "null",
                "123",
                "true",
            ),
            store="sqlite",
        ),
        Setting(
            "SESSION_SQLALCHEMY_TABLE",
            ("a b", "", "123", "true", "1abc", "a-b", "x" * 60, "null.x"),
            (("web_sessions", "web_sessions"), ("Sessions2", "Sessions2")),
            store="sqlite",
        ),
        Setting("SESSION_SQLALCHEMY_BIND_KEY", ("sessions", "", "1"), store="sqlite"),
        # True only among the good values: the fixture's database is empty, so with False
        # the service (rightly) refuses to start, naming the missing tables
        Setting(
            "SESSION_SQLALCHEMY_CREATE_TABLES",
            BOOL_BAD,
            (("true", True), ("1", True)),
            store="sqlite",
        ),
    )

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        session_dir.mkdir(parents=True, exist_ok=True)  # the database's own directory
        database = session_dir / DATABASE_FILE
        return {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": f"sqlite:///{database}"}

    @contextmanager
    def outage(self, request: pytest.FixtureRequest, store: Any) -> Iterator[None]:
        """Another process's writer holds the file's lock (a SQLite file has no server):
        writes wait SESSION_LOCK_TIMEOUT for it, then fail as busy."""
        path = store.engine.url.database
        with closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                holder.execute("ROLLBACK")


KIT = SqliteKit()
