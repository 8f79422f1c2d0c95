"""Engine and tables for the SQLAlchemy store, built from ``SESSION_SQLALCHEMY*`` settings.

Tables (created when missing, never altered or dropped):

* ``<table>`` (default ``sessions``): Flask-Session 0.8's own layout, so a 0.8 app's
  table is used as it is: ``id`` integer key, ``session_id`` (``key_prefix + sid``,
  unique), ``data`` (the whole session as one JSON or msgpack document, as 0.8 writes
  it), ``expiry`` (naive UTC).
* ``<table>_locks``: one lease row per locked session (``session_id``, ``token``,
  ``expires``). A lease ends at its expiry, so a killed worker's lock frees itself
  within ``SESSION_LOCK_TIMEOUT``.
* ``<table>_counters``: store-wide counters (``name``, ``value``).
* ``<table>_users``: the per-user index (stores/users.py): one row per bound session
  (``user``, a hash of the user id; ``session_id`` as in ``<table>``; ``bound_at``, Unix
  seconds; ``label``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..errors import SessionConfigError
from ..readers import Setting, as_is, sql_name, text
from .users import MAX_LABEL

#: dialects whose upsert and row locking the store is written and tested for
SUPPORTED_DIALECTS = ("postgresql", "sqlite")
CONNECT_TIMEOUT = 2  # seconds; a database that does not answer is a 503, not a hang
DEFAULT_TABLE = "sessions"
#: SQLite: pages in the write-ahead log that start a checkpoint (256 pages of 4 KiB: 1 MiB)
WAL_AUTOCHECKPOINT_PAGES = 256
#: SQLite: bytes the write-ahead log is truncated to when a checkpoint lets it restart
JOURNAL_SIZE_LIMIT = 1024 * 1024
#: PostgreSQL cuts longer names (silently); the longest table name made is <table>_counters
IDENTIFIER_LIMIT = 63
LONGEST_SUFFIX = "_counters"


@dataclass(frozen=True)
class Tables:
    sessions: sa.Table
    locks: sa.Table
    counters: sa.Table
    users: sa.Table


def define_tables(name: str, schema: str | None, sequence: str | None = None) -> Tables:
    """The tables; ``sequence``: ids come from that sequence (Flask-Session 0.8's
    ``SESSION_SQLALCHEMY_SEQUENCE``: its tables have no default on ``id``)."""
    metadata = sa.MetaData(schema=schema)
    id_column = (
        sa.Column("id", sa.Integer, sa.Sequence(sequence), primary_key=True)
        if sequence
        else sa.Column("id", sa.Integer, primary_key=True)
    )
    sessions = sa.Table(
        name,
        metadata,
        id_column,
        sa.Column("session_id", sa.String(255), unique=True),
        sa.Column("data", sa.LargeBinary),
        sa.Column("expiry", sa.DateTime),
    )
    locks = sa.Table(
        f"{name}_locks",
        metadata,
        sa.Column("session_id", sa.String(255), primary_key=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("expires", sa.DateTime, nullable=False),
    )
    counters = sa.Table(
        f"{name}_counters",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    users = sa.Table(
        f"{name}_users",
        metadata,
        sa.Column("user", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(255), primary_key=True),
        sa.Column("bound_at", sa.Float, nullable=False),
        sa.Column("label", sa.String(MAX_LABEL), nullable=False),
    )
    return Tables(sessions, locks, counters, users)


def engine_from_config(config: Mapping[str, Any], lock_timeout: float) -> Engine:
    """The engine named by ``SESSION_SQLALCHEMY_URL`` or ``SESSION_SQLALCHEMY``.

    ``SESSION_SQLALCHEMY`` may be an ``Engine`` or a Flask-SQLAlchemy ``db`` (its
    ``SQLALCHEMY_DATABASE_URI``, or the ``SESSION_SQLALCHEMY_BIND_KEY`` bind, is used).
    The store always builds its own engine from the URL, with its own timeouts and (on
    SQLite) its own transaction mode, so the app's engine is never reconfigured.
    """
    client = config.get("SESSION_SQLALCHEMY")
    url_text = config.get("SESSION_SQLALCHEMY_URL")
    if client is not None and url_text:
        raise SessionConfigError("set SESSION_SQLALCHEMY or SESSION_SQLALCHEMY_URL, not both")
    bind_key = config.get("SESSION_SQLALCHEMY_BIND_KEY")
    if bind_key is not None and not _is_flask_sqlalchemy(client):
        raise SessionConfigError(
            f"SESSION_SQLALCHEMY_BIND_KEY is {bind_key!r} but it names a bind of a"
            " Flask-SQLAlchemy db, and SESSION_SQLALCHEMY is none: set SESSION_SQLALCHEMY"
            " = db, or leave the bind key unset"
        )
    if client is not None:
        url = _url_of_client(client, config)
    elif url_text:
        url = _parse_url(url_text, "SESSION_SQLALCHEMY_URL")
    else:
        raise SessionConfigError(
            "SESSION_TYPE is 'sqlalchemy' but neither SESSION_SQLALCHEMY_URL (for example"
            " postgresql+psycopg://user@127.0.0.1:5432/app or sqlite:////var/lib/app/sessions.db)"
            " nor SESSION_SQLALCHEMY (an Engine or a Flask-SQLAlchemy db) is set"
        )
    dialect = url.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise SessionConfigError(
            f"SESSION_SQLALCHEMY_URL names a {dialect!r} database; the sqlalchemy session"
            f" store supports {', '.join(SUPPORTED_DIALECTS)}"
        )
    try:
        if dialect == "sqlite":
            return _sqlite_engine(url, lock_timeout)
        return _postgresql_engine(url, lock_timeout)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise SessionConfigError(
            f"SESSION_SQLALCHEMY_URL {url.render_as_string()!r} is not usable: {error}"
            " (for PostgreSQL install psycopg: pip install 'sessionapp[sqlalchemy]')"
        ) from error


def _table_name(config: Mapping[str, Any], key: str) -> str:
    # None (unset) means the default; anything else, "" included, must be a SQL name.
    table = sql_name(config, key) if config[key] is not None else DEFAULT_TABLE
    assert table is not None
    if len(table.encode()) + len(LONGEST_SUFFIX) > IDENTIFIER_LIMIT:
        raise SessionConfigError(
            f"{key} {table!r} is too long: with {LONGEST_SUFFIX!r} it"
            f" must fit PostgreSQL's {IDENTIFIER_LIMIT}-byte names"
        )
    return table


#: The sqlalchemy store's settings (``SQLAlchemyStore.settings``).
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SESSION_SQLALCHEMY_URL",
        None,
        text(none=True),
        "the database: postgresql+psycopg://user@host:5432/app (plain postgresql:// means"
        " psycopg 3 too) or sqlite:////var/lib/app/sessions.db",
    ),
    Setting(
        "SESSION_SQLALCHEMY",
        None,
        as_is,
        "instead of a URL (as in Flask-Session 0.8): a SQLAlchemy Engine, or a"
        " Flask-SQLAlchemy db (its SQLALCHEMY_DATABASE_URI, or the bind named by"
        " SESSION_SQLALCHEMY_BIND_KEY); the store opens its own engine on that database",
    ),
    Setting(
        "SESSION_SQLALCHEMY_TABLE",
        DEFAULT_TABLE,
        _table_name,
        "the sessions table (Flask-Session 0.8's name and layout); <table>_locks,"
        " <table>_counters and <table>_users are made beside it",
    ),
    Setting("SESSION_SQLALCHEMY_SCHEMA", None, sql_name, "schema of the tables (PostgreSQL)"),
    Setting(
        "SESSION_SQLALCHEMY_SEQUENCE",
        None,
        sql_name,
        "as in Flask-Session 0.8: the sequence the table's id comes from; made when missing",
    ),
    Setting(
        "SESSION_SQLALCHEMY_BIND_KEY",
        None,
        as_is,
        "the Flask-SQLAlchemy bind holding the tables, with SESSION_SQLALCHEMY = db",
    ),
    # Flask-SQLAlchemy's own, read when SESSION_SQLALCHEMY is its db; never written here.
    Setting("SQLALCHEMY_DATABASE_URI", None, as_is, "Flask-SQLAlchemy's", publish=False),
    Setting("SQLALCHEMY_BINDS", None, as_is, "Flask-SQLAlchemy's", publish=False),
)


def _parse_url(text: Any, key: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, TypeError, ValueError) as error:
        raise SessionConfigError(f"{key} {text!r} is not a database URL: {error}") from error


def _url_of_client(client: Any, config: Mapping[str, Any]) -> URL:
    if isinstance(client, Engine):
        return client.url
    if _is_flask_sqlalchemy(client):
        bind_key = config.get("SESSION_SQLALCHEMY_BIND_KEY")
        if bind_key is not None:
            binds = config.get("SQLALCHEMY_BINDS") or {}
            bind = binds.get(bind_key)
            if bind is None:
                raise SessionConfigError(
                    f"SESSION_SQLALCHEMY_BIND_KEY is {bind_key!r} but SQLALCHEMY_BINDS has"
                    " no such bind"
                )
            text = bind.get("url") if isinstance(bind, Mapping) else bind
            return _parse_url(text, f"SQLALCHEMY_BINDS[{bind_key!r}]")
        text = config.get("SQLALCHEMY_DATABASE_URI")
        if not text:
            raise SessionConfigError(
                "SESSION_SQLALCHEMY is a Flask-SQLAlchemy db but SQLALCHEMY_DATABASE_URI is"
                " not set; set it, or set SESSION_SQLALCHEMY_URL instead"
            )
        return _parse_url(text, "SQLALCHEMY_DATABASE_URI")
    raise SessionConfigError(
        "SESSION_SQLALCHEMY must be a sqlalchemy Engine or a Flask-SQLAlchemy db, not"
        f" {type(client).__name__}; or set SESSION_SQLALCHEMY_URL"
    )


def _is_flask_sqlalchemy(client: Any) -> bool:
    # An isinstance check, not attribute probing: ``db.engines`` needs an app context.
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError:
        return False
    return isinstance(client, SQLAlchemy)


def _postgresql_engine(url: URL, lock_timeout: float) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2's default
    wait_ms = max(1, int(lock_timeout * 1000))
    return sa.create_engine(
        url,
        # A pooled connection the server closed (restart) is found before use, so the
        # first request after an outage is served. The check runs before any statement:
        # it can never repeat an increment.
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=40,
        pool_timeout=lock_timeout,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            # Row-lock waits are bounded like session-lock waits; statements by more.
            "options": f"-c lock_timeout={wait_ms} -c statement_timeout={wait_ms + 5000}",
        },
    )


def _sqlite_engine(url: URL, lock_timeout: float) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise SessionConfigError(
            "SESSION_SQLALCHEMY_URL names an in-memory SQLite database, which each process"
            " would have on its own; use a file, e.g. sqlite:////var/lib/app/sessions.db"
        )
    engine = sa.create_engine(
        url,
        pool_size=10,
        max_overflow=40,
        pool_timeout=lock_timeout,
        # Writers queue on SQLite's file lock for up to the lock timeout ("database is
        # locked" after that, which is a 503).
        connect_args={"timeout": lock_timeout, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off; _sqlite_begin starts transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers never wait for the writer, and many processes share the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process, not of the
        # machine's power (the last commits can roll back then).
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A bounded log: checkpointed into the database once it holds this many pages
        # (SQLite's default, 1000 pages, is 4 MiB: a small volume's worth), and cut back
        # to JOURNAL_SIZE_LIMIT whenever a checkpoint lets it start over.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    # Writers take the write lock at BEGIN: a read-then-write transaction that upgrades
    # later can fail with "database is locked" without waiting. Plain reads do not.
    if connection.get_execution_options().get("sqlite_read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
