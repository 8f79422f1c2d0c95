"""Counting live sessions: an optional capability of a store, for metrics.

A store that can count its live sessions cheaply implements :class:`SessionCount`; a
metrics exporter asks at scrape time (``isinstance(store, SessionCount)``) and reports
nothing for a store that cannot. How each store counts:

* **redis**: ``SCAN`` over ``<prefix>{*}`` (the session hashes; not locks, increment
  records, counters, nor Flask-Session 0.8 keys not yet carried over), 1000 keys a step,
  on every primary of a cluster. Redis drops expired keys itself, so what it finds lives
  (a key may expire, or appear, during the scan).
* **sqlalchemy**: one ``COUNT`` of the rows under ``SESSION_KEY_PREFIX`` whose expiry is
  in the future; on PostgreSQL bounded by ``statement_timeout``, on SQLite not bounded (a
  local file: a scan of the table).
* **filesystem**: one listing of ``SESSION_FILE_DIR``, a ``stat`` per session file (its
  modification time is its expiry); files of other prefixes in the same directory are
  counted too (their names are hashes that do not say their prefix).
* **memcached** cannot: it has no way to list keys (its ``lru_crawler metadump`` is a
  debugging aid that walks the whole cache), so it does not implement this.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SessionCount(Protocol):
    """What a store that can count its live sessions implements."""

    def count_sessions(self, deadline: float) -> int | None:
        """How many unexpired sessions the store holds, or None if the count could not
        finish by ``deadline`` (a ``time.monotonic()`` value). Reads only. May raise
        StoreUnavailable."""
