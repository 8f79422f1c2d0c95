"""Flask-Session 0.8's ``flask_session.sqlalchemy``: ``SqlAlchemySessionInterface`` and
``SqlAlchemySession``.

Backed by this package's SQLAlchemy store (row-locked merges, atomic increments, lease
locks; see :mod:`flask_session.stores.sqlalchemy`), on 0.8's own ``sessions`` table so a
0.8 app's rows carry over. ``import flask_session.sqlalchemy`` imports neither SQLAlchemy
nor Flask-SQLAlchemy; building the interface does.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .base import ServerSideSession, ServerSideSessionInterface, configured, shared_overrides

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from flask import Flask

#: 0.8's warning when no Flask-SQLAlchemy instance is given and it makes one itself
NO_CLIENT_WARNING = (
    "No valid SQLAlchemy instance provided, attempting to create a new instance on"
    " the app's SQLALCHEMY_DATABASE_URI (as Flask-Session 0.8 did); set"
    " SESSION_SQLALCHEMY (your db) or SESSION_SQLALCHEMY_URL to choose"
)


class SqlAlchemySession(ServerSideSession):
    """The session class of :class:`SqlAlchemySessionInterface` (0.8's name)."""


class SqlAlchemySessionInterface(ServerSideSessionInterface):
    """Sessions in a SQL database (PostgreSQL, SQLite), built as in Flask-Session 0.8::

        app.session_interface = SqlAlchemySessionInterface(app, client=db, table="sessions")

    :param client: a Flask-SQLAlchemy ``db`` or a SQLAlchemy ``Engine``: its database
        (``SQLALCHEMY_DATABASE_URI``, or the ``bind_key`` bind) holds the sessions. The
        store opens its own engine on that URL (its own timeouts and transactions), so
        the app's engine is left as configured. None: the app's ``SESSION_SQLALCHEMY`` /
        ``SESSION_SQLALCHEMY_URL``, else (as 0.8, with its warning) a new Flask-SQLAlchemy
        instance on the app's ``SQLALCHEMY_DATABASE_URI``.
    :param table: the sessions table (created when missing, with ``<table>_locks`` and
        ``<table>_counters`` beside it). :param schema: its schema.
    :param bind_key: the Flask-SQLAlchemy bind holding the table.
    :param sequence: not supported (refused at start-up: the id is the database's own
        autoincrementing key).
    :param cleanup_n_requests: not used (warned about at start-up): expired rows are never
        served, and ``flask session cleanup`` (cron) deletes them outside users' requests.

    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = SqlAlchemySession

    def __init__(
        self,
        app: Flask | None = None,
        client: Any = None,
        key_prefix: str = "session:",
        use_signer: bool = False,
        permanent: bool = True,
        sid_length: int = 32,
        serialization_format: str = "msgpack",
        table: str = "sessions",
        sequence: str | None = None,
        schema: str | None = None,
        bind_key: str | None = None,
        cleanup_n_requests: int | None = None,
    ) -> None:
        overrides: dict[str, Any] = {"SESSION_TYPE": "sqlalchemy"}
        if client is not None:  # else the app's SESSION_SQLALCHEMY(_URL), or 0.8's default
            overrides["SESSION_SQLALCHEMY"] = client
        self.client: Any = client
        self.bind_key: str | None = bind_key
        settings, store = configured(
            app,
            **overrides,
            **shared_overrides(key_prefix, use_signer, permanent, sid_length, serialization_format),
            SESSION_SQLALCHEMY_TABLE=table,
            SESSION_SQLALCHEMY_SEQUENCE=sequence,
            SESSION_SQLALCHEMY_SCHEMA=schema,
            SESSION_SQLALCHEMY_BIND_KEY=bind_key,
            SESSION_CLEANUP_N_REQUESTS=cleanup_n_requests,
        )
        super().__init__(settings, store, app=app, use_signer=use_signer)

    def _wire(self, app: Flask) -> None:
        super()._wire(app)
        # Built by Session(app), or given no client: the app's db, as configured.
        if getattr(self, "client", None) is None:
            self.client = app.config.get("SESSION_SQLALCHEMY")
        if getattr(self, "bind_key", None) is None:
            self.bind_key = app.config.get("SESSION_SQLALCHEMY_BIND_KEY")

    @property
    def sql_session_model(self) -> type:
        """0.8's ORM class of the sessions table (``id``, ``session_id``, ``data``,
        ``expiry``), for reading rows with the app's own ORM session. Writes belong to
        the store: a row written around it bypasses its locks."""
        model = self.__dict__.get("_sql_session_model")
        if model is None:
            model = _session_model(self.store, getattr(self, "bind_key", None))
            self.__dict__["_sql_session_model"] = model
        return model


def default_client(app: Flask, config: MutableMapping[str, Any]) -> Any:
    """0.8's fallback when no database is named: a Flask-SQLAlchemy ``db`` on the app's
    ``SQLALCHEMY_DATABASE_URI`` (the app's own one if it already has one), with 0.8's
    warning, recorded as ``SESSION_SQLALCHEMY``. None when the app names a database for
    sessions, has no ``SQLALCHEMY_DATABASE_URI``, or Flask-SQLAlchemy is not installed
    (the store then says what to set)."""
    if config.get("SESSION_SQLALCHEMY") is not None or config.get("SESSION_SQLALCHEMY_URL"):
        return None
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        return None
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError:
        return None
    client = app.extensions.get("sqlalchemy")
    if client is None:
        warnings.warn(NO_CLIENT_WARNING, RuntimeWarning, stacklevel=3)
        client = SQLAlchemy(app)
    config["SESSION_SQLALCHEMY"] = client
    return client


def _session_model(store: Any, bind_key: str | None) -> type:
    import sqlalchemy.orm

    table = store.tables.sessions
    if bind_key:  # Flask-SQLAlchemy's session sends this table's queries to that bind
        table.metadata.info.setdefault("bind_key", bind_key)

    class Session:
        """A row of the sessions table (0.8's ``sql_session_model``)."""

        id: int
        session_id: str
        data: bytes
        expiry: Any

        def __repr__(self) -> str:
            return f"<Session {self.session_id}>"

    sqlalchemy.orm.registry().map_imperatively(Session, table)
    return Session


__all__ = ["SqlAlchemySession", "SqlAlchemySessionInterface"]
