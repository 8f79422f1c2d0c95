"""SESSION_SQLALCHEMY_CREATE_TABLES = False: the app's migrations own the session tables.

The DDL and the Alembic recipe are read from docs/flask_session.md and run as written, on a
real PostgreSQL and a SQLite file, so the docs cannot drift from what the store checks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flask_session import SessionConfigError
from tests.conftest import store_settings
from tests.flask_session.demo_app import create_app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "flask_session.md"
TABLES = {"sessions", "sessions_locks", "sessions_counters", "sessions_users"}
OFF = {"SESSION_SQLALCHEMY_CREATE_TABLES": False}

pytestmark = pytest.mark.parametrize("store_type", ["sqlite", "postgresql"])


def docs_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->`` in the docs."""
    found = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert found, f"no block marked {marker} in {DOCS.name}"
    return found.group(1)


def run_ddl(url: str, ddl: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in ddl.split(";"):
                code = "\n".join(
                    line for line in statement.splitlines() if not line.startswith("--")
                )
                if code.strip():
                    conn.exec_driver_sql(code)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def config(store_type: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    return {**store_settings(store_type, tmp_path, request), **OFF}


def serves(config: dict[str, Any]) -> None:
    """The app starts on ``config`` and a session and the shared counter work."""
    app = create_app(config)
    try:
        client = app.test_client()
        assert client.post("/incr/n?by=3").get_json() == {"value": 3}
        assert client.post("/rmw/n").get_json() == {"value": 4}
        assert app.session_interface.store.counter_incr("hits") == 1
    finally:
        app.session_interface.store.close()


def test_missing_tables_are_refused_naming_each_and_the_setting(config):
    with pytest.raises(SessionConfigError) as refused:
        create_app(config)
    message = str(refused.value)
    assert "SESSION_SQLALCHEMY_CREATE_TABLES" in message
    for table in TABLES:
        assert f"table {table}" in message
    assert not table_names(config["SESSION_SQLALCHEMY_URL"]) & TABLES  # nothing was made


def test_the_documented_ddl_is_what_the_store_needs(config, store_type):
    run_ddl(config["SESSION_SQLALCHEMY_URL"], docs_block(f"ddl:{store_type}"))
    serves(config)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda ddl: ddl.replace(",\n    expiry", "\n    -- no expiry", 1), "sessions.expiry"),
        (lambda ddl: ddl.replace("session_id VARCHAR(255) UNIQUE", "session_id VARCHAR(255)"),
         "a unique key on sessions(session_id)"),
        (lambda ddl: ddl.replace("token VARCHAR(64) NOT NULL,\n", ""), "sessions_locks.token"),
    ],
    ids=["no-expiry-column", "session-id-not-unique", "no-token-column"],
)  # fmt: skip
def test_a_table_lacking_what_the_store_needs_is_refused_naming_it(config, store_type, edit, named):
    ddl = docs_block(f"ddl:{store_type}")
    changed = edit(ddl)
    assert changed != ddl  # the edit applied: the docs' DDL still has that part
    run_ddl(config["SESSION_SQLALCHEMY_URL"], changed)
    with pytest.raises(SessionConfigError, match="SESSION_SQLALCHEMY_CREATE_TABLES") as refused:
        create_app(config)
    assert named in str(refused.value)


def test_the_documented_alembic_migration_makes_the_tables_and_undoes_them(config):
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    migration: dict[str, Any] = {}
    exec(docs_block("migration:alembic"), migration)  # the docs' migration, as written
    engine = sa.create_engine(config["SESSION_SQLALCHEMY_URL"])
    try:
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            migration["upgrade"]()
        serves(config)
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            migration["downgrade"]()
        with pytest.raises(SessionConfigError, match="table sessions"):
            create_app(config)
    finally:
        engine.dispose()


def test_the_documented_include_name_keeps_autogenerate_off_the_tables(config, store_type):
    """Autogenerate on an app whose models lack the session tables proposes dropping them,
    unless the docs' ``include_name`` hook is given (as Flask-Migrate passes it on)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = config["SESSION_SQLALCHEMY_URL"]
    run_ddl(url, docs_block(f"ddl:{store_type}"))
    recipe: dict[str, Any] = {
        "Migrate": lambda app, db, **options: options,  # Flask-Migrate hands them to Alembic
        "app": None,
        "db": None,
    }
    exec(docs_block("migration:include_name"), recipe)
    models = sa.MetaData()  # the app's models: none of the session tables
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            bare = compare_metadata(MigrationContext.configure(conn), models)
            hooked = compare_metadata(
                MigrationContext.configure(conn, opts=recipe["migrate"]), models
            )
    finally:
        engine.dispose()
    dropped = {change[1].name for change in bare if change[0] == "remove_table"}
    assert dropped >= TABLES  # without the hook, autogenerate would drop them
    assert hooked == []
