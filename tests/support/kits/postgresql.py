"""The sqlalchemy store on a PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..postgres_server import PostgresServer
from ..setting_rows import Setting
from .sql import SqlKit


class PostgresqlKit(SqlKit):
    store_type = "postgresql"
    dialect = "postgresql"
    rank = 40
    server_fixture = "postgres_server"

    setting_rows = (
        Setting(
            "SESSION_SQLALCHEMY_SCHEMA",
            ("a b", "", "123", "true", "no_such_schema"),
            (("public", "public"), ("null", None)),
            store="postgresql",
        ),
        Setting(
            "SESSION_SQLALCHEMY_SEQUENCE",
            ("a b", "", "0", "true"),
            (("session_ids", "session_ids"), ("null", None)),
            store="postgresql",
        ),
    )

    def server(self) -> PostgresServer:
        return PostgresServer()

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        url = request.getfixturevalue("postgres_url")
        return {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": url}


KIT = PostgresqlKit()
