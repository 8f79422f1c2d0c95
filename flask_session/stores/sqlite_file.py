"""The SQLite database file under the sqlalchemy store: its identity, and its log on a full disk.

Two things a file on a local disk can do that a database server cannot:

* **Be deleted or replaced while open.** A connection keeps writing to the inode it
  opened, so after ``rm sessions.db`` (or a restore that renames another file over it)
  every commit still succeeds, into a file no later process will read. The store records
  the file's identity (device and inode) when it first opens it, and each connection the
  identity of the file it opened; every transaction compares them with the path's after
  it ends. A mismatch, or no file, fails the verb with StoreUnavailable (a 503, logged
  once) and discards the connection: nothing is acknowledged that went to a file that is
  gone. The store never adopts the new file (its write-ahead log and shared-memory index
  may still belong to the old one, which SQLite would then apply to it): it answers 503
  until the app is restarted. Connections opened after the first never create a file
  (``mode=rw``), so a deleted database is not replaced by an empty one behind the
  operator's back.

* **Run out of space.** The write-ahead log grows until a checkpoint copies it into the
  database; the pragmas in :mod:`~flask_session.stores.sqlalchemy_setup` keep it small.
  When a write fails for lack of space anyway, :meth:`SqliteFile.disk_full` runs one
  ``wal_checkpoint(TRUNCATE)``, which empties the log and gives its space back, so the
  store recovers by itself once the disk has room (without it, the log regrows to fill
  whatever is freed, and every write keeps failing).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import OutageLog, StoreUnavailable

logger = logging.getLogger(__name__)

#: the key under which a pooled connection keeps the identity of the file it opened
IDENTITY_KEY = "flask_session_file_identity"
#: seconds the checkpoint after a full-disk error waits for other connections' readers
#: and writers: it runs inside a failing request, which must not hang on it
CHECKPOINT_BUSY_TIMEOUT = 1.0
#: what SQLite says when a write finds no space (SQLITE_FULL)
DISK_FULL_TEXT = "database or disk is full"

Identity = tuple[int, int]  # (st_dev, st_ino)


def _identity(path: str) -> Identity | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


class SqliteFile:
    """Watches the database file of a SQLite engine (module docstring).

    Built on the engine before its first connection; one per store. ``check`` runs after
    each transaction, ``disk_full`` after a write failed for space.
    """

    def __init__(self, engine: Engine) -> None:
        self.path = os.path.abspath(engine.url.database or "")
        #: the file this store opened first: the only one it ever writes
        self.identity: Identity | None = None
        self._outage = OutageLog(logger, f"SQLite session database file {self.path}")
        self._checkpointing = threading.Lock()
        #: a checkpoint's outcome was logged since the last transaction that succeeded:
        #: the next ones of this full-disk spell are logged at DEBUG
        self._checkpoint_logged = False
        sa.event.listen(engine, "do_connect", self._do_connect)
        # First of the connect hooks: before the pragmas read the file (and its log).
        sa.event.listen(engine, "connect", self._connected, insert=True)

    # -- pool events ---------------------------------------------------------------------

    def _do_connect(
        self, _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        if self.identity is not None:
            # The file exists (or existed): open it, never create it anew. (The driver
            # is given the file name as its first positional argument.)
            cargs[:1] = [f"file:{quote(self.path)}?mode=rw"]
            cparams["uri"] = True

    def _connected(self, _dbapi_connection: Any, record: Any) -> None:
        # The path's identity just after SQLite opened it (it reads nothing before the
        # first statement): the file this connection has.
        identity = _identity(self.path)
        if self.identity is None:
            self.identity = identity
        elif identity != self.identity:
            # Another file at the path: not a byte read or written (the pool closes
            # the connection). Its log and index files may still be the old file's.
            raise self._refusal(identity)
        record.info[IDENTITY_KEY] = identity

    # -- the checks ----------------------------------------------------------------------

    def check(self, conn: sa.Connection) -> None:
        """Raise StoreUnavailable (and discard ``conn``) unless the path still names the
        file this store and ``conn`` opened. Runs after a transaction ended: a commit
        into a deleted or replaced file is then reported as failed, never acknowledged."""
        opened = conn.connection.info.get(IDENTITY_KEY)
        now = _identity(self.path)
        if now is not None and now == opened == self.identity:
            self._outage.succeeded()
            self._checkpoint_logged = False
            return
        conn.invalidate()  # never handed out again
        raise self._refusal(now)

    def _refusal(self, now: Identity | None) -> StoreUnavailable:
        """The error for a path that no longer names our file (``now``: what it names)."""
        if now is None:
            what, reason = "was deleted", "the session database file was deleted"
        else:
            what, reason = "was replaced", "the session database file was replaced"
        error = StoreUnavailable(
            f"the SQLite session database {self.path} {what} while in use; sessions are"
            " answered 503 until the app is restarted on the file that should hold them",
            reason=reason,
        )
        self._outage.failed(error)
        return error

    def disk_full(self) -> None:
        """After a write failed for lack of space: checkpoint the write-ahead log into the
        database and truncate it, once, to give its space back. Never raises; a request
        that finds another checkpoint under way does not wait for it. The outcome is
        logged at WARNING once per full-disk spell (until a transaction succeeds)."""
        if not self._checkpointing.acquire(blocking=False):
            return
        level = logging.DEBUG if self._checkpoint_logged else logging.WARNING
        self._checkpoint_logged = True
        try:
            connection = sqlite3.connect(
                f"file:{quote(self.path)}?mode=rw",
                uri=True,
                timeout=CHECKPOINT_BUSY_TIMEOUT,
                isolation_level=None,
            )
            try:
                busy, log_pages, done = connection.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).fetchone()
            finally:
                connection.close()
            logger.log(
                level,
                "SQLite session database %s: disk full; checkpoint of the write-ahead log"
                " %s (%s of %s pages copied)",
                self.path,
                "blocked by another connection" if busy else "truncated it",
                done,
                log_pages,
            )
        except sqlite3.Error as error:
            logger.log(
                level,
                "SQLite session database %s: disk full; checkpoint failed: %s",
                self.path,
                error,
            )
        finally:
            self._checkpointing.release()


def is_disk_full(error: BaseException) -> bool:
    """True if ``error`` (a DBAPIError) is SQLite's SQLITE_FULL."""
    return DISK_FULL_TEXT in str(getattr(error, "orig", error))
