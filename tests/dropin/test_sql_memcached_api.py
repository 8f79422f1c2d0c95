"""Flask-Session 0.8's sqlalchemy and memcached API on this package's stores: the module
paths and constructors, ``SESSION_SQLALCHEMY = db`` (Flask-SQLAlchemy, with and without a
bind key) and ``SESSION_MEMCACHED = client``, on real PostgreSQL, SQLite and memcached."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from pymemcache.client.base import Client as MemcachedClient

from flask_session import Session
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.memcached import MemcachedSession, MemcachedSessionInterface
from flask_session.sqlalchemy import SqlAlchemySession, SqlAlchemySessionInterface
from flask_session.stores.common import at_rest_name
from tests.dropin.test_api import REPO_ROOT, counter_app


def stored_key(prefix: str, sid: str) -> str:
    """The key (row, item) of session ``sid``: the prefix and the id's at-rest name, as
    ids are hashed at rest (an app reading 0.8's model by ``prefix + sid`` finds nothing)."""
    return prefix + at_rest_name(prefix, sid)


INCREMENTS = 3


@pytest.fixture
def flask_app() -> Iterator[Callable[[dict[str, Any]], flask.Flask]]:
    """``flask_app(config)`` -> a counter app; its store and Flask-SQLAlchemy engines are
    closed at teardown (an open socket is a ResourceWarning, an error here)."""
    apps: list[flask.Flask] = []

    def make(config: dict[str, Any]) -> flask.Flask:
        app = counter_app(flask.Flask(__name__))
        app.config.update(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        if isinstance(app.session_interface, ServerSideSessionInterface):
            app.session_interface.store.close()
        db = app.extensions.get("sqlalchemy")
        if db is not None:
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()


def count_to(app: flask.Flask) -> str:
    """INCREMENTS increments on one cookie, checked; returns the session id."""
    web = app.test_client()
    assert [web.post("/inc").get_json()["n"] for _ in range(INCREMENTS)] == [1, 2, 3]
    assert web.get("/get").get_json() == {"n": INCREMENTS}
    return web.get_cookie("session").value


def session_ids_in(url: str, table: str = "sessions") -> list[str] | None:
    """The session ids in ``table`` of the database at ``url``; None: no such table."""
    engine = sa.create_engine(url)
    try:
        if table not in sa.inspect(engine).get_table_names():
            return None
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT session_id FROM {table}")).scalars())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'app.db'}"


def test_interface_classes_live_at_0_8_module_paths() -> None:
    for interface in (SqlAlchemySessionInterface, MemcachedSessionInterface):
        assert issubclass(interface, ServerSideSessionInterface)
    for session in (SqlAlchemySession, MemcachedSession):
        assert issubclass(session, ServerSideSession)


def test_importing_the_modules_loads_no_driver() -> None:
    code = (
        "import sys, flask_session.sqlalchemy, flask_session.memcached\n"
        "print(sorted(m for m in ('sqlalchemy', 'flask_sqlalchemy', 'pymemcache')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_session_sqlalchemy_as_a_flask_sqlalchemy_db(
    flask_app: Callable[[dict[str, Any]], flask.Flask], database_url: str
) -> None:
    app = flask_app({"SQLALCHEMY_DATABASE_URI": database_url, "SESSION_TYPE": "sqlalchemy"})
    db = SQLAlchemy(app)
    app.config["SESSION_SQLALCHEMY"] = db
    Session(app)
    assert isinstance(app.session_interface, SqlAlchemySessionInterface)
    assert app.session_interface.client is db
    sid = count_to(app)
    assert session_ids_in(database_url) == [stored_key("session:", sid)]
    with app.test_request_context():
        assert isinstance(flask.session, SqlAlchemySession)
        # 0.8's sql_session_model, read through the app's own ORM session
        model = app.session_interface.sql_session_model
        row = db.session.query(model).filter_by(session_id=stored_key("session:", sid)).one()
        assert b'"n"' in row.data


def test_session_sqlalchemy_bind_key_puts_sessions_in_that_database(
    flask_app: Callable[[dict[str, Any]], flask.Flask], tmp_path: Path, postgres_url: str
) -> None:
    main_url = f"sqlite:///{tmp_path / 'main.db'}"
    app = flask_app(
        {
            "SQLALCHEMY_DATABASE_URI": main_url,
            "SQLALCHEMY_BINDS": {"sessions": postgres_url},
            "SESSION_TYPE": "sqlalchemy",
            "SESSION_SQLALCHEMY_BIND_KEY": "sessions",
        }
    )
    db = SQLAlchemy(app)
    app.config["SESSION_SQLALCHEMY"] = db
    Session(app)
    sid = count_to(app)
    assert session_ids_in(postgres_url) == [stored_key("session:", sid)]
    assert session_ids_in(main_url) is None
    with app.test_request_context():
        model = app.session_interface.sql_session_model
        assert (
            db.session.query(model).filter_by(session_id=stored_key("session:", sid)).count() == 1
        )


def test_unknown_bind_key_is_refused_naming_it(
    flask_app: Callable[[dict[str, Any]], flask.Flask], tmp_path: Path
) -> None:
    from flask_session import SessionConfigError

    app = flask_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'main.db'}",
            "SESSION_TYPE": "sqlalchemy",
            "SESSION_SQLALCHEMY_BIND_KEY": "nope",
        }
    )
    app.config["SESSION_SQLALCHEMY"] = SQLAlchemy(app)
    with pytest.raises(SessionConfigError, match="SESSION_SQLALCHEMY_BIND_KEY"):
        Session(app)


def test_sqlalchemy_interface_built_directly(
    flask_app: Callable[[dict[str, Any]], flask.Flask], database_url: str
) -> None:
    app = flask_app({"SQLALCHEMY_DATABASE_URI": database_url})
    db = SQLAlchemy(app)
    app.session_interface = SqlAlchemySessionInterface(
        app, client=db, key_prefix="myapp:", table="web_sessions", serialization_format="json"
    )
    sid = count_to(app)
    assert session_ids_in(database_url, "web_sessions") == [stored_key("myapp:", sid)]


def test_cleanup_n_requests_is_warned_about_on_the_sql_store(
    flask_app: Callable[[dict[str, Any]], flask.Flask],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = flask_app({"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": database_url})
    app.config["SESSION_CLEANUP_N_REQUESTS"] = 100
    with caplog.at_level(logging.WARNING):
        Session(app)
    (warning,) = [r.getMessage() for r in caplog.records if "CLEANUP_N" in r.getMessage()]
    assert "flask session cleanup" in warning


def test_memcached_interface_built_directly(
    flask_app: Callable[[dict[str, Any]], flask.Flask], memcached_servers: str
) -> None:
    client = MemcachedClient(memcached_servers, default_noreply=False)
    try:
        app = flask_app({})
        app.session_interface = MemcachedSessionInterface(
            app, client=client, key_prefix="myapp:", serialization_format="json"
        )
        assert app.session_interface.client is client
        sid = count_to(app)
        assert client.get(stored_key("myapp:", sid)) == b'{"n":3}'
    finally:
        client.close()


def test_session_memcached_client_via_session_app(
    flask_app: Callable[[dict[str, Any]], flask.Flask], memcached_servers: str
) -> None:
    client = MemcachedClient(memcached_servers, default_noreply=False)
    try:
        app = flask_app({"SESSION_TYPE": "memcached", "SESSION_MEMCACHED": client})
        Session(app)
        assert isinstance(app.session_interface, MemcachedSessionInterface)
        assert app.session_interface.client is client
        count_to(app)
        with app.test_request_context():
            assert isinstance(flask.session, MemcachedSession)
    finally:
        client.close()


def test_a_0_8_table_with_a_sequence_is_served(
    flask_app: Callable[[dict[str, Any]], flask.Flask], postgres_url: str
) -> None:
    # The table as Flask-Session 0.8's create_session_model(db, "sessions", sequence=...)
    # makes it: the id column has no default, its values come from the sequence.
    engine = sa.create_engine(postgres_url)
    try:
        metadata = sa.MetaData()
        sa.Table(
            "sessions",
            metadata,
            sa.Column("id", sa.Integer, sa.Sequence("fs08_ids"), primary_key=True),
            sa.Column("session_id", sa.String(255), unique=True),
            sa.Column("data", sa.LargeBinary),
            sa.Column("expiry", sa.DateTime),
        )
        metadata.create_all(engine)
        app = flask_app({"SQLALCHEMY_DATABASE_URI": postgres_url})
        app.session_interface = SqlAlchemySessionInterface(
            app, client=SQLAlchemy(app), sequence="fs08_ids"
        )
        sid = count_to(app)
        with engine.connect() as conn:
            default = conn.execute(
                sa.text(
                    "SELECT column_default FROM information_schema.columns"
                    " WHERE table_name = 'sessions' AND column_name = 'id'"
                )
            ).scalar_one()
            rows = conn.execute(sa.text("SELECT id, session_id FROM sessions")).all()
            last = conn.execute(sa.text("SELECT last_value FROM fs08_ids")).scalar_one()
        assert default is None  # so the ids did come from the sequence
        assert [(row.id, row.session_id) for row in rows] == [(last, stored_key("session:", sid))]
    finally:
        engine.dispose()
