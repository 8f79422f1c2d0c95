"""The sqlalchemy store on a PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..postgres_server import PostgresServer
from .sql import SqlKit


class PostgresqlKit(SqlKit):
    store_type = "postgresql"
    dialect = "postgresql"
    rank = 40
    server_fixture = "postgres_server"

    def server(self) -> PostgresServer:
        return PostgresServer()

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        url = request.getfixturevalue("postgres_url")
        return {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": url}


KIT = PostgresqlKit()
