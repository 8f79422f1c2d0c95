"""Flask-Session 0.8's ``flask_session.sqlalchemy``: ``SqlAlchemySessionInterface`` and
``SqlAlchemySession``.

Backed by this package's SQLAlchemy store (row-locked merges, atomic increments, lease
locks; see :mod:`flask_session.stores.sqlalchemy`), on 0.8's own ``sessions`` table so a
0.8 app's rows carry over. ``import flask_session.sqlalchemy`` imports neither SQLAlchemy
nor Flask-SQLAlchemy; building the interface does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BackendInterface, ServerSideSession, common_arguments

if TYPE_CHECKING:
    from flask import Flask


class SqlAlchemySession(ServerSideSession):
    """The session class of :class:`SqlAlchemySessionInterface` (0.8's name)."""


class SqlAlchemySessionInterface(BackendInterface):
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
    :param sequence: the sequence the table's ``id`` comes from (0.8's tables made with
        one have no default on ``id``).
    :param cleanup_n_requests: not used (warned about at start-up): expired rows are never
        served, and ``flask session cleanup`` (cron) deletes them outside users' requests.

    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = SqlAlchemySession
    store_type = "sqlalchemy"

    def __init__(
        self,
        app: Flask | None = None,
        client: Any = None,
        key_prefix: str | None = None,
        use_signer: bool | None = None,
        permanent: bool | None = None,
        sid_length: int | None = None,
        serialization_format: str | None = None,
        table: str | None = None,
        sequence: str | None = None,
        schema: str | None = None,
        bind_key: str | None = None,
        cleanup_n_requests: int | None = None,
    ) -> None:
        super().__init__(
            app,
            {
                "SESSION_SQLALCHEMY": client,
                **common_arguments(
                    key_prefix, use_signer, permanent, sid_length, serialization_format
                ),
                "SESSION_SQLALCHEMY_TABLE": table,
                "SESSION_SQLALCHEMY_SEQUENCE": sequence,
                "SESSION_SQLALCHEMY_SCHEMA": schema,
                "SESSION_SQLALCHEMY_BIND_KEY": bind_key,
                "SESSION_CLEANUP_N_REQUESTS": cleanup_n_requests,
            },
        )
        own = self.settings.store
        #: the db or Engine (0.8's attribute): the one given, the app's, or 0.8's default
        self.client: Any = own["SESSION_SQLALCHEMY"]
        self.bind_key: str | None = own["SESSION_SQLALCHEMY_BIND_KEY"]
        self._sql_session_model: type | None = None

    @property
    def sql_session_model(self) -> type:
        """0.8's ORM class of the sessions table (``id``, ``session_id``, ``data``,
        ``expiry``), for reading rows with the app's own ORM session. Writes belong to
        the store: a row written around it bypasses its locks."""
        if self._sql_session_model is None:
            self._sql_session_model = _session_model(self.store, self.bind_key)
        return self._sql_session_model


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
