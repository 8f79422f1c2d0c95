"""Engine and tables for the SQLAlchemy store, built from ``SESSION_SQLALCHEMY*`` settings.

Tables (created when missing, never altered or dropped; with
``SESSION_SQLALCHEMY_CREATE_TABLES`` off, left to the app's migrations and only checked,
see :func:`missing_parts`):

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

An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``), the one most
test suites use, lives in one connection of one process: the store keeps one connection
for it, shared by the process's threads one transaction at a time, and says at start-up
that nothing in it outlives the process or is seen by another worker.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .._version import install_hint
from ..errors import SessionConfigError
from ..readers import Setting, as_is, boolean, sql_name, text
from .users import MAX_LABEL

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Database:
    """The store's engine, and how it may use it."""

    engine: Engine
    #: an in-memory SQLite database: one connection, which the store's transactions
    #: take one at a time
    in_memory: bool = False
    #: the engine is the app's (its in-memory database lives in that engine's one
    #: connection): the store never disposes of it
    borrowed: bool = False


#: the key of each table that the store's upserts (``ON CONFLICT``) name
CONFLICT_COLUMNS = {
    "sessions": ("session_id",),
    "locks": ("session_id",),
    "counters": ("name",),
    "users": ("user", "session_id"),
}


def missing_parts(connection: sa.Connection, tables: Tables) -> list[str]:
    """What the store needs and the database lacks, in words ("table sessions_locks",
    "column sessions.expiry", "a unique key on sessions.session_id", "sequence s");
    empty when everything is there. Extra columns, tables and indexes are no concern."""
    inspector = sa.inspect(connection)
    missing: list[str] = []
    for role, table in (
        ("sessions", tables.sessions),
        ("locks", tables.locks),
        ("counters", tables.counters),
        ("users", tables.users),
    ):
        name, schema = table.name, table.schema
        if not inspector.has_table(name, schema=schema):
            missing.append(f"table {name}")
            continue
        present = {column["name"] for column in inspector.get_columns(name, schema=schema)}
        missing.extend(
            f"column {name}.{column.name}" for column in table.columns if column.name not in present
        )
        key = CONFLICT_COLUMNS[role]
        if present.issuperset(key) and not _is_unique(inspector, name, schema, key):
            missing.append(f"a unique key on {name}({', '.join(key)})")
    for column in tables.sessions.columns:
        sequence = column.default if isinstance(column.default, sa.Sequence) else None
        if (
            sequence is not None
            and connection.dialect.supports_sequences
            and not inspector.has_sequence(sequence.name, schema=tables.sessions.schema)
        ):
            missing.append(f"sequence {sequence.name}")
    return missing


def _is_unique(inspector: Any, table: str, schema: str | None, columns: tuple[str, ...]) -> bool:
    """Whether ``columns`` (in any order) are the table's primary key, or unique by a
    constraint or a unique index (what ``ON CONFLICT (columns)`` needs)."""
    keys = [inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []]
    keys += [found["column_names"] for found in inspector.get_unique_constraints(table, schema)]
    # SQLite reports a column's own UNIQUE only as an automatic index, listed on request
    options = {"include_auto_indexes": True} if inspector.dialect.name == "sqlite" else {}
    keys += [
        found["column_names"]
        for found in inspector.get_indexes(table, schema=schema, **options)
        if found.get("unique")
    ]
    return set(columns) in [set(key) for key in keys]


def engine_from_config(config: Mapping[str, Any], lock_timeout: float) -> Database:
    """The engine named by ``SESSION_SQLALCHEMY_URL`` or ``SESSION_SQLALCHEMY``.

    ``SESSION_SQLALCHEMY`` may be an ``Engine`` or a Flask-SQLAlchemy ``db`` (its
    ``SQLALCHEMY_DATABASE_URI``, or the ``SESSION_SQLALCHEMY_BIND_KEY`` bind, is used).
    The store builds its own engine from the URL, with its own timeouts and (on SQLite)
    its own transaction mode, so the app's engine is never reconfigured; the exception
    is the app's in-memory SQLite database, which exists only inside the app's engine,
    and is used through it (see :func:`_borrowed_memory_engine`).
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
        if dialect == "sqlite" and is_memory_sqlite(url):
            logger.warning(
                "the session database %r is an in-memory SQLite database: it lives in this"
                " process only (every worker process has its own, and a restart forgets"
                " every session). Fine for tests; in production use a file"
                " (sqlite:////var/lib/app/sessions.db) or PostgreSQL",
                url.render_as_string(),
            )
            if client is not None:
                return _borrowed_memory_engine(client, config)
            return Database(_sqlite_memory_engine(url, lock_timeout), in_memory=True)
        if dialect == "sqlite":
            return Database(_sqlite_engine(url, lock_timeout))
        return Database(_postgresql_engine(url, lock_timeout))
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise SessionConfigError(
            f"SESSION_SQLALCHEMY_URL {url.render_as_string()!r} is not usable: {error}"
            f" (for PostgreSQL install psycopg: {install_hint('sqlalchemy')})"
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
        "SESSION_SQLALCHEMY_CREATE_TABLES",
        True,
        boolean,
        "create the tables when missing; False leaves them to the app's migrations"
        " (Flask-Migrate/Alembic): the store then only checks at start-up that they exist"
        " with the columns it needs, and refuses to start if not",
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
    engine = sa.create_engine(
        url,
        # Not pool_pre_ping, which costs a round trip (SELECT 1) per checkout, as much as
        # an increment's statements: see _closed_by_server, which asks the socket.
        # Per process: granian's blocking threads (4 by default) each hold at most one
        # connection at a time; the overflow covers larger thread counts.
        pool_size=10,
        max_overflow=40,
        pool_timeout=lock_timeout,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            # Row-lock waits are bounded like session-lock waits; statements by more.
            "options": f"-c lock_timeout={wait_ms} -c statement_timeout={wait_ms + 5000}",
        },
    )
    sa.event.listen(engine, "checkout", _closed_by_server)
    return engine


def _readable(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read now (never waits). poll where the
    platform has it (select refuses descriptors above FD_SETSIZE, 1024 on Linux)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed (a restart, an idle timeout, a
    terminated backend), before any statement is sent, so the first request after an
    outage is served and a statement is never sent twice. SQLAlchemy then opens a new
    connection in its place.

    Without a round trip: an idle connection's socket has nothing to read unless the
    server said something, and a server that closes a connection does (its last
    message, then end of file). Only then is the input consumed: the connection is
    refused if that finds it broken. (A connection cut without a word from the server,
    as by a network partition, is found by the statement's own failure: a 503.)
    """
    from psycopg import OperationalError
    from psycopg.pq import ConnStatus

    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.status != ConnStatus.OK:
        raise sa.exc.DisconnectionError("the session database connection is closed")
    if not _readable(pgconn.socket):
        return
    try:
        pgconn.consume_input()
    except OperationalError as error:
        raise sa.exc.DisconnectionError(
            f"the session database closed the connection: {error}"
        ) from error
    if pgconn.status != ConnStatus.OK:
        raise sa.exc.DisconnectionError("the session database closed the connection")


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` names a SQLite database kept in memory (``sqlite://``,
    ``:memory:``, or a ``file:`` URI with ``mode=memory``)."""
    database = url.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or url.query.get("mode") == "memory"
    )


def _sqlite_memory_engine(url: URL, lock_timeout: float) -> Engine:
    """One connection to one in-memory database, shared by every thread (StaticPool;
    the store takes it one transaction at a time)."""
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.StaticPool,
        connect_args={"timeout": lock_timeout, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _borrowed_memory_engine(client: Any, config: Mapping[str, Any]) -> Database:
    """The app's own engine on its in-memory database (``SESSION_SQLALCHEMY`` an Engine or
    a Flask-SQLAlchemy db, as in Flask-Session 0.8's tests): that database exists only in
    the engine's one connection, so the sessions table must live there, beside the app's.

    Used through a view of the engine (``execution_options``) that only adds the store's
    ``BEGIN IMMEDIATE``; the connection's own settings are left as the app made them.
    The store's transactions take the connection one at a time, but the app's own ORM
    session shares it unguarded: fine for a test suite, not for concurrent serving.
    """
    if isinstance(client, Engine):
        engine = client
    else:
        try:  # the db's engines are the app's: reachable inside its app context only
            engine = client.engines[config.get("SESSION_SQLALCHEMY_BIND_KEY")]
        except RuntimeError as error:
            raise SessionConfigError(
                "SESSION_SQLALCHEMY is a Flask-SQLAlchemy db on an in-memory SQLite database,"
                " which only its engine can reach: build the session interface with the app"
                " (Session(app)), or set SESSION_SQLALCHEMY_URL"
            ) from error
    if not isinstance(engine.pool, sa.pool.StaticPool):
        raise SessionConfigError(
            "SESSION_SQLALCHEMY is an engine on an in-memory SQLite database with a"
            f" {type(engine.pool).__name__}, which gives each thread its own database: create"
            " it with poolclass=sqlalchemy.pool.StaticPool and connect_args="
            "{'check_same_thread': False} (as Flask-SQLAlchemy does), or set"
            " SESSION_SQLALCHEMY_URL"
        )
    view = engine.execution_options()
    sa.event.listen(view, "begin", _sqlite_begin)
    return Database(view, in_memory=True, borrowed=True)


def _sqlite_engine(url: URL, lock_timeout: float) -> Engine:
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
    # ``sqlite_autocommit``: no BEGIN at all, so each statement is a transaction of its
    # own (the driver's own transaction handling is off, see _sqlite_connect), and a
    # writing one holds the write lock only while SQLite runs it, waiting for it as
    # BEGIN IMMEDIATE does (the store's compare-and-set increment).
    options = connection.get_execution_options()
    if options.get("sqlite_autocommit"):
        return
    if options.get("sqlite_read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
