"""The SQLAlchemy store: sessions in PostgreSQL or SQLite (tables in sqlalchemy_setup.py).

Every verb is one transaction (but for the increment of a live session, below). A
transaction that changes a session first locks its row (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite every writing transaction starts with ``BEGIN IMMEDIATE``, which
serializes writers on the file), so merges and increments never interleave. Session
locks are lease rows in ``<table>_locks``, taken and checked while the session's row is
locked:

* ``load(lock=True)`` locks the row, then inserts (or takes over an expired) lease;
* ``incr`` locks the row, then looks for a live lease: if there is one it rolls back
  (nothing was applied) and waits. (On PostgreSQL the ``UPDATE`` that writes the row
  looks, ``WHERE NOT EXISTS`` a live lease: a statement begun after the row lock is
  held, so its snapshot sees a lease committed while this one waited for the row.)

Because both lock the session's row first, an increment either commits before a locker
reads the session or sees its lease. A lease ends at its expiry, so a worker killed
while holding one blocks the session for at most ``SESSION_LOCK_TIMEOUT``.

An increment of a live session takes no transaction and no row lock: two statements
in autocommit, a compare-and-set on the row's version (on PostgreSQL its ``xmin``, the
transaction that wrote it; SQLite has none, so there the row's document and expiry as
stored are its version):

* one ``SELECT`` reads the row, its version and whether a live lease exists (if one
  does, it waits and reads again); the new document is computed outside any lock;
* one ``UPDATE ... WHERE session_id = :key AND <version unchanged>`` writes it; no row
  updated means someone wrote the session in between: nothing was applied, and the
  increment is made by the transaction above instead, which queues on the row lock (on
  a busy session, compare-and-set retries would mostly fail).

``load(lock=True)`` on PostgreSQL updates the session's row (its expiry, to the same or a
refreshed value) in the transaction that takes the lease, so the row's version changes
when a lease is taken: an increment that read the row before the lease existed finds its
version gone and reads again, seeing the lease. (An ``UPDATE`` that waited for the
locker's row lock re-checks its ``WHERE`` on the row's new version.) On SQLite the
``UPDATE`` looks for a live lease itself (``WHERE NOT EXISTS``): one statement in
autocommit holds the file's write lock from its start, so it sees every lease committed
before it. That statement is the whole write: the file's write lock is held for it alone,
not across the read and the Python between (this process's writers still take turns on
their own lock for it, as for a transaction). A session that does not exist yet is
created by the transactional path above; an in-memory SQLite database (one connection)
increments in that transaction always.

Expiry is a column; expired rows are invisible to every verb and are deleted by
``flask session cleanup``. Nothing is retried: a failed verb was applied at most once.

A session's row is keyed ``<prefix><name>``, ``<name>`` its at-rest name
(:func:`~flask_session.stores.common.at_rest_name`), never the id (its lease row and
index rows too), so no column holds an id that opens a session. A row of the raw-id
layout (``<prefix><sid>``: this package before ids were hashed, and Flask-Session 0.8) is
carried over on first use by one UPDATE of its key guarded by the old value, in a
writing transaction of the verb that missed; a concurrent request waits for that row and
then finds the session at its new key. While ``SESSION_08_SERVERS`` is on, rows stay
keyed by the raw id, as 0.8's servers look them up (ids at rest in the clear for as long
as the transition lasts); once it is off they are carried over on first use.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..codecs import DecodeError
from ..errors import OutageLog, SessionConfigError, StoreUnavailable
from .base import PERMANENT_KEY, CleanupReport, IncrResult, Loaded, Store
from .common import (
    AT_REST_NAME_LENGTH,
    LEASE_GRACE,
    LockWait,
    at_rest_name,
    check_key_length,
    decode_int,
    is_at_rest_name,
)
from .counters import check_counter_name
from .documents import decode_document
from .sqlalchemy_setup import (
    SETTINGS,
    Database,
    Tables,
    define_tables,
    engine_from_config,
    missing_parts,
)
from .sqlite_file import DISK_FULL_TEXT, SqliteFile, is_disk_full
from .upgrade08 import (
    MARKER_NAME,
    MARKER_OFF,
    Count08,
    SharedLayout08,
    document_08,
    refuse_finish_while_serving_08,
    serves_08_at_start,
)
from .users import UserSession

if TYPE_CHECKING:
    from ..settings import SessionSettings

logger = logging.getLogger(__name__)

#: sessions.session_id is VARCHAR(255), as in Flask-Session 0.8
SESSION_ID_COLUMN_LENGTH = 255
#: bytes left for a document's framing (braces, quotes, lengths) under a size limit
DOCUMENT_FRAMING_ROOM = 1024 * 1024
#: an ``expiry`` long past: a row inserted only to be locked counts as no session
NEVER = datetime(1970, 1, 1)
#: seconds a session whose increment's compare-and-set failed is incremented in a
#: transaction queuing on its row lock (PostgreSQL: 4 round trips; SQLite: the file's
#: write lock) rather than by another compare-and-set (2, plus the transaction's when it
#: fails again, as it mostly does on a session many requests increment at once)
CONTENDED_MEMORY = 1.0
#: the most contended sessions remembered (forgotten all at once beyond that)
CONTENDED_KEPT = 1024

#: PostgreSQL error classes (SQLSTATE) and what they mean for a client
_BUSY_SQLSTATES = {"55P03", "57014", "40P01", "40001"}  # lock/statement timeout, deadlock
_REFUSING_SQLSTATES = {
    "25006": "the session store is read-only",
    "53100": "the session store's disk is full",
}


class SQLAlchemyStore(Store, SharedLayout08):
    """Sessions in PostgreSQL or SQLite (module docstring); counters too (``Counters``),
    and the per-user index (``UserIndex``)."""

    name = "sqlalchemy"
    settings = SETTINGS
    #: The session is one document in the ``data`` column: SQLite holds a BLOB of up to
    #: SQLITE_MAX_LENGTH (1,000,000,000 bytes unless compiled otherwise), PostgreSQL a
    #: bytea of up to 1 GiB. The smaller, less room for the document's own framing
    #: (a few bytes per key).
    max_session_size = 1_000_000_000 - DOCUMENT_FRAMING_ROOM

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> SQLAlchemyStore:
        own = settings.store
        check_key_length(settings, SESSION_ID_COLUMN_LENGTH, "the session_id column")
        tables = define_tables(
            own["SESSION_SQLALCHEMY_TABLE"],
            own["SESSION_SQLALCHEMY_SCHEMA"],
            own["SESSION_SQLALCHEMY_SEQUENCE"],
        )
        database = engine_from_config(own, settings.lock_timeout)
        return cls(
            database=database,
            tables=tables,
            create_tables=own["SESSION_SQLALCHEMY_CREATE_TABLES"],
            serves_08=settings.fs08_servers,
            **cls.common(settings),
        )

    def __init__(
        self,
        *,
        database: Database,
        tables: Tables,
        create_tables: bool = True,
        serves_08: bool | str = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.create_tables = create_tables
        #: SESSION_08_SERVERS: documents written as Flask-Session 0.8 writes them
        #: (resolved at the end, once the tables are there, when it is "auto")
        self.serves_08 = False
        self.engine = engine = database.engine
        self._borrowed = database.borrowed
        # An in-memory database has one connection: one transaction at a time takes it
        # (re-entrant: the first transaction creates the tables).
        self._one_at_a_time: threading.RLock | None = (
            threading.RLock() if database.in_memory else None
        )
        #: A SQLite file: this process's writing transactions take turns on a lock of
        #: their own before BEGIN IMMEDIATE. Threads then queue on it and are woken the
        #: moment it is free, instead of polling the file's lock through SQLite's busy
        #: handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries (the slowest
        #: requests were made of those sleeps); only processes still meet on the file.
        self._writers: threading.RLock | None = (
            threading.RLock()
            if engine.dialect.name == "sqlite" and not database.in_memory
            else None
        )
        self.tables = tables
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._outage = OutageLog(logger, f"{engine.dialect.name} session store")
        #: the SQLite file's watcher (sqlite_file.py), registered before any connection;
        #: None on PostgreSQL, in memory, and for a database named by a file: URI (opened
        #: as given)
        self._file = (
            SqliteFile(engine)
            if engine.dialect.name == "sqlite"
            and not database.in_memory
            and not (engine.url.database or "").startswith("file:")
            else None
        )
        self._tables_ready = False
        self._tables_guard = threading.Lock()
        #: PostgreSQL: rows are locked by ``SELECT ... FOR UPDATE`` (SQLite: every writing
        #: transaction holds the file's write lock)
        self._row_locks = engine.dialect.name == "postgresql"
        #: increments are compare-and-set on the row's version (module docstring):
        #: PostgreSQL and a SQLite file; an in-memory database's one connection does one
        #: transaction at a time anyway
        self._versioned = self._row_locks or self._writers is not None
        #: statements outside any transaction, each committed by itself (``_autocommit``)
        self._autocommit_engine = engine.execution_options(
            **(
                {"isolation_level": "AUTOCOMMIT"}
                if self._row_locks
                else {"sqlite_autocommit": True}
            )
        )
        #: the sessions (row keys) whose compare-and-set lost to another write lately
        #: (monotonic time), which this process increments in the transaction directly
        #: for CONTENDED_MEMORY seconds (dict operations are atomic)
        self._contended: dict[str, float] = {}
        self._build_statements(tables)
        try:
            self._ensure_tables()
        except SessionConfigError:
            self.close()
            raise
        except sa.exc.DBAPIError as error:
            schema = tables.sessions.schema
            if schema is not None and _no_such_schema(error):
                # A setting, not an outage: refused now rather than a 503 on every request.
                self.close()
                raise SessionConfigError(
                    f"SESSION_SQLALCHEMY_SCHEMA {schema!r} does not exist in the database;"
                    " create it (CREATE SCHEMA) or leave the setting unset"
                ) from error
            # The app still starts (and answers 503) while the database is down; the
            # tables are made on first use instead.
            logger.warning("session tables not checked at start-up (%s); will retry", error)
        self.serves_08 = serves_08_at_start(self, serves_08, self.name)

    # -- the store verbs ---------------------------------------------------------------

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        if lock or refresh_ttl is None or self._file is None:
            return self._load(sid, lock=lock, refresh_ttl=refresh_ttl)
        try:
            return self._load(sid, lock=False, refresh_ttl=refresh_ttl, full_disk_ok=True)
        except _DiskFull:
            # SQLite on a full disk: pushing the expiry out is best-effort (as on the
            # filesystem store), and reading needs no space.
            return self._load(sid, lock=False, refresh_ttl=None)

    def _load(
        self, sid: str, *, lock: bool, refresh_ttl: float | None, full_disk_ok: bool = False
    ) -> Loaded | None:
        key = self._key(sid)
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE) if lock else None
        carry = carried = False
        while True:
            if carry and not carried:
                # found by a read (maybe a read-only transaction): moved in a writing one
                with self._transaction() as (conn, _txn):
                    self._carry_over_raw(conn, sid)
                carried = True
            token = secrets.token_hex(16) if lock else None
            read_only = not lock and refresh_ttl is None
            with self._transaction(read_only=read_only, full_disk_ok=full_disk_ok) as (conn, txn):
                now = _now()
                row = conn.execute(
                    self._select_locked if lock or refresh_ttl is not None else self._select_row,
                    {"key": key},
                ).first()
                if row is None and not carry:
                    found = self._after_a_miss(conn, sid)
                    if found is not None:
                        carry = found == "raw"  # else: moved since, by another request
                        txn.rollback()
                        continue
                if row is None or row.expiry is None or row.expiry <= now:
                    return None
                values = self._decode(row.data, sid)
                if values is None:
                    return None
                if token is not None and not self._take_lease(conn, key, token, now):
                    txn.rollback()
                    assert wait is not None
                    wait.pause()
                    continue
                if refresh_ttl is not None or (token is not None and self._row_locks):
                    # With a lease taken on PostgreSQL, always: the update gives the row a
                    # new version, which fails any increment that read it before (module
                    # docstring), even when the expiry stays as it was. (SQLite's
                    # compare-and-set looks for the lease itself.)
                    expiry = (
                        row.expiry if refresh_ttl is None else now + timedelta(seconds=refresh_ttl)
                    )
                    conn.execute(self._set_expiry, {"key": key, "new_expiry": expiry})
            return Loaded(values, lock=token)

    def save(
        self,
        sid: str,
        changed: dict[str, bytes],
        deleted: Iterable[str],
        *,
        ttl: float,
        create: bool,
        lock: str | None = None,
    ) -> bool:
        key = self._key(sid)
        with self._transaction() as (conn, _txn):
            now = _now()
            # The session's row first, then the lease: every transaction locks in this
            # order, so two never wait for each other.
            values = self._locked_values(conn, key, sid, now, create=create)
            if lock is not None and not self._drop_lease(conn, key, lock):
                logger.warning(
                    "a request kept its session locked longer than SESSION_LOCK_TIMEOUT"
                    " (%g s), so the lock had expired; its changes were merged anyway",
                    self.lock_timeout,
                )
            if values is None:
                return False
            values.update(changed)
            for name in deleted:
                values.pop(name, None)
            return self._write(conn, key, values, now, ttl)

    def delete(self, sid: str, *, lock: str | None = None) -> None:
        key = self._key(sid)
        with self._transaction() as (conn, _txn):
            conn.execute(sa.delete(self.tables.sessions).where(self._sid_is(key)))
            if lock is not None:  # after the row (see save)
                self._drop_lease(conn, key, lock)

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        row_key = self._key(sid)
        wait = LockWait(self.lock_timeout, "the session", grace=LEASE_GRACE)
        contended = self._contended.get(row_key)
        if self._versioned and (
            contended is None or time.monotonic() - contended > CONTENDED_MEMORY
        ):
            found = self._incr_by_version(row_key, sid, key, amount, ttl, wait)
            if isinstance(found, IncrResult):
                return found
            if found is CONTENDED:
                if len(self._contended) >= CONTENDED_KEPT:
                    self._contended.clear()
                self._contended[row_key] = time.monotonic()
            # No live session at the hashed key (created, carried over from the raw-id
            # layout, or found absent, in a transaction), or the row is contended: the
            # transaction below queues on its row lock (SQLite: the file's write lock),
            # in turn, where another compare-and-set would be another read and write
            # likely to fail.
        while True:
            with self._transaction() as (conn, txn):
                now = _now()
                if self._row_locks:
                    values = self._locked_values(conn, row_key, sid, now, create=create)
                    leased = False  # checked by the UPDATE, below
                else:
                    values, leased = self._values_and_lease(conn, row_key, sid, now, create)
                if values is None:
                    return None
                if not leased:
                    new_value = decode_int(self.codec, values.get(key), key) + amount
                    values[key] = self.codec.encode(new_value)
                    if not self._row_locks:
                        self._write(conn, row_key, values, now, ttl)
                        return IncrResult(new_value, values.get(PERMANENT_KEY))
                    # The lease is checked by the UPDATE itself: after the row lock is
                    # held, a new statement with a new snapshot, which sees a lease
                    # committed while we waited for the row.
                    written = conn.execute(
                        self._write_unleased,
                        {
                            "key": row_key,
                            "now": now,
                            "new_data": self._document(values),
                            "new_expiry": now + timedelta(seconds=ttl),
                        },
                    ).first()
                    if written is not None:
                        return IncrResult(new_value, values.get(PERMANENT_KEY))
                txn.rollback()  # leased: nothing applied, waiting and trying again is safe
            wait.pause()

    def _incr_by_version(
        self, row_key: str, sid: str, key: str, amount: int, ttl: float, wait: LockWait
    ) -> IncrResult | None | _Contended:
        """The increment of a live session as a compare-and-set on the row's version, in
        autocommit (module docstring): PostgreSQL and a SQLite file. None if there is no
        live session; CONTENDED if someone wrote (or, on SQLite, leased) the row between
        our read and our write (nothing was applied)."""
        while True:
            with self._autocommit() as conn:
                now = _now()
                row = conn.execute(self._read_versioned, {"key": row_key, "now": now}).first()
                if row is None or row.expiry is None or row.expiry <= now:
                    return None
                values = None if row.leased else self._decode(row.data, sid)
                if values is not None:
                    new_value = decode_int(self.codec, values.get(key), key) + amount
                    values[key] = self.codec.encode(new_value)
                    parameters = {
                        "key": row_key,
                        "now": now,
                        "version": row.version,
                        "old_data": row.data,
                        "new_data": self._document(values),
                        "new_expiry": now + timedelta(seconds=ttl),
                    }
                    # SQLite: this process's writers in turn, as in _transaction; the
                    # file's write lock is held for this one statement.
                    with self._writer_turn(read_only=False):
                        written = conn.execute(self._write_versioned, parameters).rowcount
                    if written == 1:
                        return IncrResult(new_value, values.get(PERMANENT_KEY))
                    return CONTENDED  # written by someone else since we read it
                if not row.leased:
                    return None  # corrupt or foreign: no session (logged by _decode)
            wait.pause()  # leased by another request: wait, without holding a connection

    def _values_and_lease(
        self, conn: sa.Connection, key: str, sid: str, now: datetime, create: bool
    ) -> tuple[dict[str, bytes] | None, bool]:
        """SQLite, inside BEGIN IMMEDIATE: the session's values (as ``_locked_values``,
        a raw-id layout's row carried over on a miss) and whether a live lease exists,
        read by one SELECT."""
        if create:
            conn.execute(self._insert_placeholder, {"key": key})
        row = conn.execute(self._read_leased, {"key": key, "now": now}).first()
        if row is None and not create and self._carry_over_raw(conn, sid):
            row = conn.execute(self._read_leased, {"key": key, "now": now}).first()
        live = row is not None and row.expiry is not None and row.expiry > now
        values = self._decode(row.data, sid) if live and row is not None else None
        if values is None and create:
            values = {}
        return values, bool(row is not None and row.leased)

    def release(self, sid: str, lock: str) -> None:
        with self._transaction() as (conn, _txn):
            self._drop_lease(conn, self._key(sid), lock)

    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        sessions, locks = self.tables.sessions, self.tables.locks
        with self._transaction() as (conn, _txn):
            now = _now()
            # The condition is checked again on each row as it is deleted (PostgreSQL
            # re-evaluates it after waiting for a row lock), so a session refreshed in
            # the meantime is kept.
            removed = len(
                conn.execute(
                    sa.delete(sessions).where(sessions.c.expiry <= now).returning(sessions.c.id)
                ).all()
            )
            conn.execute(sa.delete(locks).where(locks.c.expires <= now))
            kept = conn.execute(sa.select(sa.func.count()).select_from(sessions)).scalar_one()
            pruned = self._prune(conn, now)
        return CleanupReport(expired_removed=removed, live_kept=kept, index_removed=pruned)

    def ping(self) -> None:
        # A write in a writing transaction that leaves nothing behind: a read-only
        # replica or a locked SQLite file fails here as requests would. PostgreSQL: rolled
        # back. SQLite: the row is deleted again and the transaction committed, since a
        # rolled-back write never reaches the file and so would pass on a full disk; the
        # commit also passes the file's identity check (a deleted file fails).
        counters = self.tables.counters
        name = self.key_prefix + ":ping"
        with self._transaction() as (conn, txn):
            conn.execute(
                self._insert(counters)
                .values(name=name, value=0)
                .on_conflict_do_update(index_elements=[counters.c.name], set_={"value": 0})
            )
            if self._file is None:
                txn.rollback()
            else:
                conn.execute(sa.delete(counters).where(counters.c.name == name))

    def close(self) -> None:
        if not self._borrowed:  # the app's engine is the app's to close
            self.engine.dispose()

    # -- store-wide counters -----------------------------------------------------------

    def counter_incr(self, name: str) -> int:
        counters = self.tables.counters
        # One statement: the database serializes concurrent upserts of one row.
        statement = (
            self._insert(counters)
            .values(name=self._counter_name(name), value=1)
            .on_conflict_do_update(
                index_elements=[counters.c.name], set_={"value": counters.c.value + 1}
            )
            .returning(counters.c.value)
        )
        with self._transaction() as (conn, _txn):
            return int(conn.execute(statement).scalar_one())

    def counter_value(self, name: str) -> int:
        counters = self.tables.counters
        with self._transaction(read_only=True) as (conn, _txn):
            value = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == self._counter_name(name))
            ).scalar()
        return int(value or 0)

    def counter_reset(self, name: str) -> None:
        counters = self.tables.counters
        with self._transaction() as (conn, _txn):
            conn.execute(sa.delete(counters).where(counters.c.name == self._counter_name(name)))

    # -- counting sessions (SessionCount) ---------------------------------------------

    def count_sessions(self, deadline: float) -> int | None:
        """One COUNT of this prefix's unexpired rows; on PostgreSQL cancelled at
        ``deadline`` (statement_timeout), which raises StoreUnavailable."""
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms < 1:
            return None
        sessions = self.tables.sessions
        query = (
            sa.select(sa.func.count())
            .select_from(sessions)
            .where(
                sessions.c.session_id.startswith(self.key_prefix, autoescape=True),
                sessions.c.expiry > _now(),
            )
        )
        with self._transaction(read_only=True) as (conn, _txn):
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {remaining_ms}"))
            return int(conn.execute(query).scalar_one())

    # -- the per-user index (UserIndex) -------------------------------------------------
    # One row per bound session in <table>_users. Each verb is one transaction, and
    # bind and revoke first take a lock on the user (PostgreSQL: a
    # transaction-scoped advisory lock; SQLite: every writing transaction holds the
    # file's write lock), so two logins of one user never both miss each other's row
    # when enforcing a cap. A session counts as live by its row in <table>.

    def bind_user(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        users = self.tables.users
        key = self._key(sid)
        with self._transaction() as (conn, _txn):
            self._lock_user(conn, user)
            conn.execute(
                self._insert(users)
                .values(user=user, session_id=key, bound_at=time.time(), label=label)
                .on_conflict_do_update(
                    index_elements=[users.c.user, users.c.session_id], set_={"label": label}
                )
            )
            if cap is None:
                return []
            live = self._live_entries(conn, user, _now())
            current = at_rest_name(self.key_prefix, sid)
            live.sort(key=lambda pair: (pair[1].handle == current, pair[1].bound_at, pair[0]))
            excess = [found for found, _ in live[: max(0, len(live) - cap)]]
            return self._revoke(conn, user, excess)

    def unbind_user(self, user: str, sid: str) -> None:
        users = self.tables.users
        with self._transaction() as (conn, _txn):
            conn.execute(
                sa.delete(users).where(users.c.user == user, users.c.session_id == self._key(sid))
            )

    def user_sessions(self, user: str) -> list[UserSession]:
        with self._transaction() as (conn, _txn):
            now = _now()
            live = [entry for _, entry in self._live_entries(conn, user, now)]
            self._prune(conn, now, user)
        return sorted(live, key=lambda entry: (entry.bound_at, entry.handle))

    def revoke_user_sessions(
        self, user: str, handles: Iterable[str] | None, *, keep: str | None
    ) -> list[str]:
        users = self.tables.users
        with self._transaction() as (conn, _txn):
            self._lock_user(conn, user)
            bound = conn.execute(sa.select(users.c.session_id).where(users.c.user == user))
            wanted = None if handles is None else set(handles)
            targets = []
            for key in bound.scalars():
                handle = self._handle_of_key(key)
                if handle != keep and (wanted is None or handle in wanted):
                    targets.append(key)
            return self._revoke(conn, user, targets)

    def prune_user_index(self) -> int:
        with self._transaction() as (conn, _txn):
            return self._prune(conn, _now())

    def _lock_user(self, conn: sa.Connection, user: str) -> None:
        if self.engine.dialect.name == "postgresql":
            # the first 60 bits of the user's hash, as a bigint lock key
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(int(user[:15], 16))))

    def _live_entries(
        self, conn: sa.Connection, user: str, now: datetime
    ) -> list[tuple[str, UserSession]]:
        """(row key, entry) of each of ``user``'s entries whose session is live."""
        users, sessions = self.tables.users, self.tables.sessions
        rows = conn.execute(
            sa.select(users.c.session_id, users.c.bound_at, users.c.label, sessions.c.expiry)
            .join(sessions, sessions.c.session_id == users.c.session_id)
            .where(users.c.user == user, sessions.c.expiry > now)
        )
        return [
            (
                row.session_id,
                UserSession(
                    self._handle_of_key(row.session_id),
                    row.bound_at,
                    row.label,
                    (row.expiry - now).total_seconds(),
                ),
            )
            for row in rows
        ]

    def _revoke(self, conn: sa.Connection, user: str, keys: list[str]) -> list[str]:
        """Delete the sessions (by row key) and their entries (in the caller's
        transaction); return the handles of those that were live."""
        if not keys:
            return []
        users, sessions = self.tables.users, self.tables.sessions
        gone = conn.execute(
            sa.delete(sessions)
            .where(sessions.c.session_id.in_(keys), sessions.c.expiry > _now())
            .returning(sessions.c.session_id)
        ).scalars()
        revoked = set(gone)
        conn.execute(sa.delete(sessions).where(sessions.c.session_id.in_(keys)))
        conn.execute(sa.delete(users).where(users.c.user == user, users.c.session_id.in_(keys)))
        return [self._handle_of_key(key) for key in keys if key in revoked]

    def _prune(self, conn: sa.Connection, now: datetime, user: str | None = None) -> int:
        """Delete index entries whose session is gone (of ``user``, or of everyone)."""
        users, sessions = self.tables.users, self.tables.sessions
        live = sa.select(sessions.c.session_id).where(sessions.c.expiry > now)
        condition: sa.ColumnElement[bool] = users.c.session_id.not_in(live)
        if user is not None:
            condition = sa.and_(users.c.user == user, condition)
        return len(conn.execute(sa.delete(users).where(condition).returning(users.c.user)).all())

    # -- the rolling upgrade's marker (SharedLayout08): a row of <table>_counters --------

    def _marker_08(self) -> int | None:
        counters = self.tables.counters
        with self._transaction(read_only=True) as (conn, _txn):
            value = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == self._marker_name_08())
            ).scalar()
        return None if value is None else int(value)

    def _add_marker_08(self, state: int) -> int:
        counters = self.tables.counters
        name = self._marker_name_08()
        with self._transaction() as (conn, _txn):
            conn.execute(
                self._insert(counters)
                .values(name=name, value=state)
                .on_conflict_do_nothing(index_elements=[counters.c.name])
            )
            stored = conn.execute(sa.select(counters.c.value).where(counters.c.name == name))
            return int(stored.scalar_one())

    def _set_marker_08(self, state: int) -> None:
        counters = self.tables.counters
        with self._transaction() as (conn, _txn):
            conn.execute(
                self._insert(counters)
                .values(name=self._marker_name_08(), value=state)
                .on_conflict_do_update(index_elements=[counters.c.name], set_={"value": state})
            )

    def _first_session_08(self) -> bool:
        """One look (LIMIT 1: it stops at the first) for a live row of this key prefix
        keyed by a raw id: this package keys its own by their at-rest names."""
        sessions = self.tables.sessions
        hashed_length = len(self.key_prefix) + AT_REST_NAME_LENGTH
        query = (
            sa.select(sessions.c.session_id)
            .where(
                sessions.c.session_id.startswith(self.key_prefix, autoescape=True),
                sa.func.length(sessions.c.session_id) != hashed_length,
                sessions.c.expiry > _now(),
            )
            .limit(1)
        )
        with self._transaction(read_only=True) as (conn, _txn):
            return conn.execute(query).first() is not None

    def _marker_name_08(self) -> str:
        # a counter's row is key_prefix + a name without a colon: never this one
        return self.key_prefix + MARKER_NAME

    # -- helpers -----------------------------------------------------------------------

    def _counter_name(self, name: str) -> str:
        check_counter_name(name)  # ValueError for a name some store could not hold
        return self.key_prefix + name

    def _build_statements(self, tables: Tables) -> None:
        """The statements of the hot verbs, built once with bound parameters (``key``,
        ``now``, ``new_data``, ``new_expiry``, ``version``): SQLAlchemy then finds each
        one's compiled form in its cache instead of building and hashing a new
        construct per request."""
        sessions, locks = tables.sessions, tables.locks
        s, lk = sessions.c, locks.c
        key: sa.BindParameter[str] = sa.bindparam("key")
        now: sa.BindParameter[datetime] = sa.bindparam("now")
        self._select_row = sa.select(s.data, s.expiry).where(s.session_id == key)
        self._select_locked = self._select_row.with_for_update()
        live_lease = (
            sa.exists().where(lk.session_id == s.session_id, lk.expires > now).label("leased")
        )
        #: SQLite: the row and whether it is leased (FOR UPDATE is not SQLite's: BEGIN
        #: IMMEDIATE holds the file's write lock already)
        self._read_leased = sa.select(s.data, s.expiry, live_lease).where(s.session_id == key)
        self._insert_placeholder = (
            self._insert(sessions)
            .values(session_id=key, data=b"", expiry=NEVER)
            .on_conflict_do_nothing(index_elements=[s.session_id])
        )
        self._update_row = (
            sa.update(sessions)
            .where(s.session_id == key)
            .values(data=sa.bindparam("new_data"), expiry=sa.bindparam("new_expiry"))
        )
        self._set_expiry = (
            sa.update(sessions).where(s.session_id == key).values(expiry=sa.bindparam("new_expiry"))
        )
        self._delete_row = sa.delete(sessions).where(s.session_id == key)
        unleased = ~sa.exists().where(lk.session_id == key, lk.expires > now)
        if self._row_locks:
            # xmin: the id of the transaction that wrote this version of the row, as
            # text (the xid type has no Python counterpart)
            version: sa.ColumnElement[str] = sa.literal_column("xmin::text", sa.Text)
            unchanged = version == sa.bindparam("version")
            self._write_unleased = (
                sa.update(sessions)
                .where(s.session_id == key, unleased)
                .values(data=sa.bindparam("new_data"), expiry=sa.bindparam("new_expiry"))
                .returning(s.id)
            )
        else:
            # SQLite has no row version: the row's whole state is its version, its
            # document and its expiry (as stored, text). Comparing values is safe even
            # if the row went A -> B -> A in between: it then holds exactly the state our
            # increment was computed from, so writing it is what a locked read-add-write
            # would do now. Taking a lease does not change the row, so the UPDATE also
            # looks for a live lease: it runs with the write lock, on the newest state.
            version = sa.type_coerce(s.expiry, sa.String)
            unchanged = sa.and_(
                s.data == sa.bindparam("old_data"), version == sa.bindparam("version"), unleased
            )
        self._read_versioned = sa.select(
            s.data, s.expiry, version.label("version"), live_lease
        ).where(s.session_id == key)
        # No RETURNING, the row count says whether it wrote: in SQLite's autocommit the
        # statement then commits (or fails) within the one call that runs it; with
        # RETURNING the commit would wait until its cursor had been read to the end.
        self._write_versioned = (
            sa.update(sessions)
            .where(s.session_id == key, unchanged)
            .values(data=sa.bindparam("new_data"), expiry=sa.bindparam("new_expiry"))
        )

    def _key(self, sid: str) -> str:
        """The key of ``sid``'s row (and its lease and index rows): ``<prefix><at-rest
        name>``; while Flask-Session 0.8's servers may read the table
        (``SESSION_08_SERVERS``), 0.8's own, ``<prefix><sid>``."""
        if self.serves_08:
            return self.key_prefix + sid
        return self.key_prefix + at_rest_name(self.key_prefix, sid)

    def _handle_of_key(self, key: str) -> str:
        """The index handle (the at-rest name) of the session whose row key is ``key``."""
        if self.serves_08:  # key is <prefix><sid>: its hash is the at-rest name
            return hashlib.sha256(key.encode()).hexdigest()
        return key[len(self.key_prefix) :]

    def _after_a_miss(self, conn: sa.Connection, sid: str) -> str | None:
        """After ``sid``'s hashed key was missed: "raw" if a row of the raw-id layout is
        there to carry over, "moved" if the hashed row is there now (another request
        carried it over meanwhile), None if neither (never while 0.8's servers read
        the table: the raw layout is theirs). One statement, so one snapshot sees the
        row under one key or the other."""
        if self.serves_08:
            return None
        sessions = self.tables.sessions
        raw, hashed = self.key_prefix + sid, self._key(sid)
        keys = set(
            conn.execute(
                sa.select(sessions.c.session_id).where(sessions.c.session_id.in_([raw, hashed]))
            ).scalars()
        )
        if hashed in keys:
            return "moved"
        return "raw" if raw in keys else None

    def _carry_over_raw(self, conn: sa.Connection, sid: str) -> bool:
        """Move ``sid``'s row of the raw-id layout, and its index rows, to its hashed key
        (in the caller's writing transaction): one UPDATE guarded by the old key, so of
        two requests carrying it over at once the second waits for the row and then
        finds it moved. True if a row was moved."""
        if self.serves_08:
            return False
        sessions, users = self.tables.sessions, self.tables.users
        old, new = self.key_prefix + sid, self._key(sid)
        moved = conn.execute(
            sa.update(sessions)
            .where(self._sid_is(old))
            .values(session_id=new)
            .returning(sessions.c.id)
        ).first()
        if moved is None:
            return False
        conn.execute(sa.update(users).where(users.c.session_id == old).values(session_id=new))
        logger.info("carried session %s… over to its hashed key", sid[:6])
        return True

    def finish_08(self) -> Count08:
        """The transition is over: carry every row still keyed by a raw id (0.8's layout)
        over to its hashed key at once, so that no id is left at rest; rows are otherwise
        carried over on first use. Refused while SESSION_08_SERVERS is on."""
        refuse_finish_while_serving_08(self.serves_08)
        sessions = self.tables.sessions
        prefix = self.key_prefix
        moved = Count08()
        with self._transaction() as (conn, _txn):
            keys = conn.execute(
                sa.select(sessions.c.session_id).where(
                    sessions.c.session_id.startswith(prefix, autoescape=True)
                )
            ).scalars()
            for key in list(keys):
                rest = key[len(prefix) :]
                if not is_at_rest_name(rest) and self._carry_over_raw(conn, rest):
                    moved.not_carried_over += 1
        self._set_marker_08(MARKER_OFF)
        return moved

    def _sid_is(self, key: str) -> sa.ColumnElement[bool]:
        return self.tables.sessions.c.session_id == key

    def _locked_values(
        self, conn: sa.Connection, key: str, sid: str, now: datetime, *, create: bool
    ) -> dict[str, bytes] | None:
        """Lock the session's row and return its values; None if there is no live
        session and ``create`` is false. With ``create`` a missing row is inserted (as
        expired, so it counts as no session) to have a row to lock."""
        if create:
            conn.execute(self._insert_placeholder, {"key": key})
        row = conn.execute(self._select_locked, {"key": key}).first()
        if row is None and not create and not self.serves_08:
            # Carry a row of the raw-id layout over; either way look again, as another
            # request may have carried it over since the read above.
            self._carry_over_raw(conn, sid)
            row = conn.execute(self._select_locked, {"key": key}).first()
        live = row is not None and row.expiry is not None and row.expiry > now
        values = self._decode(row.data, sid) if live and row is not None else None
        if values is None and create:
            return {}
        return values

    def _write(
        self, conn: sa.Connection, key: str, values: dict[str, bytes], now: datetime, ttl: float
    ) -> bool:
        """Store ``values`` in the (locked) row, or delete it if nothing is left."""
        if not values:
            conn.execute(self._delete_row, {"key": key})
            return False
        conn.execute(
            self._update_row,
            {
                "key": key,
                "new_data": self._document(values),
                "new_expiry": now + timedelta(seconds=ttl),
            },
        )
        return True

    def _document(self, values: dict[str, bytes]) -> bytes:
        if self.serves_08:  # 0.8's servers read this row too
            return document_08(values, self.codec)
        return self.codec.encode_document(values)

    def _take_lease(self, conn: sa.Connection, key: str, token: str, now: datetime) -> bool:
        locks = self.tables.locks
        expires = now + timedelta(seconds=self.lock_timeout)
        result = conn.execute(
            self._insert(locks)
            .values(session_id=key, token=token, expires=expires)
            .on_conflict_do_update(
                index_elements=[locks.c.session_id],
                set_={"token": token, "expires": expires},
                where=locks.c.expires <= now,  # only an expired lease is taken over
            )
            # RETURNING, not rowcount: drivers disagree on an upsert's rowcount
            .returning(locks.c.token)
        )
        return result.first() is not None

    def _drop_lease(self, conn: sa.Connection, key: str, token: str) -> bool:
        """Delete our lease; False if it was no longer ours (it had expired)."""
        locks = self.tables.locks
        result = conn.execute(
            sa.delete(locks)
            .where(locks.c.session_id == key, locks.c.token == token)
            .returning(locks.c.token)
        )
        return result.first() is not None

    def _decode(self, data: bytes | None, sid: str) -> dict[str, bytes] | None:
        try:
            return decode_document(bytes(data or b""), self.codec)
        except (DecodeError, TypeError) as error:
            logger.warning(
                "ignoring session %s… in the database: not %s data (%s); the client gets a"
                " new session",
                sid[:6],
                self.codec.name,
                error,
            )
            return None

    @contextlib.contextmanager
    def _transaction(
        self, *, read_only: bool = False, full_disk_ok: bool = False
    ) -> Iterator[tuple[sa.Connection, sa.RootTransaction]]:
        """A connection in a transaction, committed on normal exit; database errors
        become StoreUnavailable, logged once per outage. ``full_disk_ok``: SQLite's full
        disk raises _DiskFull instead, not logged (the caller has a way without writing)."""
        with (
            self._one_at_a_time or contextlib.nullcontext(),
            self._writer_turn(read_only),
            self._transaction_unguarded(read_only=read_only, full_disk_ok=full_disk_ok) as opened,
        ):
            yield opened

    @contextlib.contextmanager
    def _writer_turn(self, read_only: bool) -> Iterator[None]:
        """SQLite file, a writing transaction: this process's writers one at a time
        (``_writers``); the wait is bounded by SESSION_LOCK_TIMEOUT, as SQLite's own."""
        writers = self._writers
        if writers is None or read_only:
            yield
            return
        if not writers.acquire(timeout=self.lock_timeout):
            raise StoreUnavailable(
                "the session database stayed busy with this process's other writers for"
                f" over {self.lock_timeout:g} s (SESSION_LOCK_TIMEOUT)",
                reason="the session store is busy",
            )
        try:
            yield
        finally:
            writers.release()

    @contextlib.contextmanager
    def _transaction_unguarded(
        self, *, read_only: bool, full_disk_ok: bool
    ) -> Iterator[tuple[sa.Connection, sa.RootTransaction]]:
        with self._translated(full_disk_ok=full_disk_ok), self.engine.connect() as conn:
            if read_only:
                conn = conn.execution_options(sqlite_read_only=True)
            with conn.begin() as txn:
                yield conn, txn
            if self._file is not None:
                self._file.check(conn)  # committed to the file still at the path?

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[sa.Connection]:
        """A connection whose every statement commits by itself (no BEGIN, no COMMIT:
        on PostgreSQL one round trip each; on SQLite a write holds the file's write lock
        for that statement only); errors translated as in ``_transaction``, and a SQLite
        file's identity checked at the end, as after a transaction."""
        with self._translated(full_disk_ok=False), self._autocommit_engine.connect() as conn:
            yield conn
            if self._file is not None:
                self._file.check(conn)  # committed to the file still at the path?

    @contextlib.contextmanager
    def _translated(self, *, full_disk_ok: bool) -> Iterator[None]:
        """Database errors become StoreUnavailable, logged once per outage (see
        ``_transaction``); the tables are made first if they were not yet."""
        try:
            self._ensure_tables()
            yield
        except SessionConfigError as error:
            # The database was down at start-up and is now found without the tables:
            # the operator's to fix, so no request can be served (503, said in the log).
            logger.error("%s", error)
            raise StoreUnavailable(
                f"the session tables are not usable: {error}",
                reason="the session store is not set up",
            ) from error
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            if self._file is not None and is_disk_full(error):
                self._file.disk_full()  # gives the log's space back for the next write
                if full_disk_ok:
                    raise _DiskFull from error
            self._outage.failed(error)
            raise _unavailable(error) from error
        else:
            self._outage.succeeded()

    def _ensure_tables(self) -> None:
        """Create the tables once per process, on first use (the database may be down
        when the app starts; the app still starts and answers 503 until it is up). With
        ``SESSION_SQLALCHEMY_CREATE_TABLES`` off, check them instead: SessionConfigError
        naming what is missing."""
        if self._tables_ready:
            return
        with self._tables_guard:
            if self._tables_ready:
                return
            if not self.create_tables:
                self._check_tables()
                self._tables_ready = True
                return
            with self._one_at_a_time or contextlib.nullcontext():
                try:
                    self.tables.sessions.metadata.create_all(self.engine, checkfirst=True)
                except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
                    # Another process created them between our check and our CREATE.
                    self.tables.sessions.metadata.create_all(self.engine, checkfirst=True)
            self._tables_ready = True

    def _check_tables(self) -> None:
        with (
            self._one_at_a_time or contextlib.nullcontext(),
            self.engine.connect() as conn,
        ):
            missing = missing_parts(conn, self.tables)
        if missing:
            raise SessionConfigError(
                "SESSION_SQLALCHEMY_CREATE_TABLES is off (the app's migrations own the"
                f" schema) but the database lacks: {', '.join(missing)}. Run the migration"
                " that creates them (see the sqlalchemy store's DDL in the docs), or set"
                " SESSION_SQLALCHEMY_CREATE_TABLES = True"
            )


class _Contended(enum.Enum):
    """An increment's compare-and-set lost to another write (see ``incr``)."""

    CONTENDED = "contended"


CONTENDED = _Contended.CONTENDED


class _DiskFull(Exception):
    """SQLite's full disk, for a caller that can do without its write (see ``load``)."""


#: SQLite's SQLITE_CANTOPEN, as a connection opened after the file was deleted meets it
SQLITE_NO_FILE_TEXT = "unable to open database file"
#: PostgreSQL's invalid_schema_name; SQLite says "unknown database <schema>"
_NO_SCHEMA_SQLSTATE = "3F000"


def _no_such_schema(error: sa.exc.DBAPIError) -> bool:
    orig = error.orig
    if getattr(orig, "sqlstate", None) == _NO_SCHEMA_SQLSTATE:
        return True
    return "unknown database" in str(orig)


def _unavailable(error: BaseException) -> StoreUnavailable:
    orig = getattr(error, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    text = str(orig or error).split("\n")[0]
    if isinstance(error, sa.exc.TimeoutError):
        reason = "the session store is busy"
    elif sqlstate in _REFUSING_SQLSTATES:
        reason = _REFUSING_SQLSTATES[sqlstate]
    elif DISK_FULL_TEXT in text:  # SQLite's SQLITE_FULL
        reason = "the session store's disk is full"
    elif SQLITE_NO_FILE_TEXT in text:  # opened with mode=rw: the file is gone
        reason = "the session database file is missing"
    elif sqlstate in _BUSY_SQLSTATES or "database is locked" in text:
        reason = "the session store is busy"
    elif isinstance(error, sa.exc.DBAPIError) and (
        error.connection_invalidated
        or isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError))
    ):
        reason = "the session store cannot be reached"
    else:
        reason = "the session store refused the request"
    return StoreUnavailable(f"the session database failed: {text}", reason=reason)


def _now() -> datetime:
    """Naive UTC, as Flask-Session 0.8 stores ``expiry``."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
