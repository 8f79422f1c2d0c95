"""Flask-Session 0.8's configuration, translated into settings this package reads.

Every key 0.8 reads is accepted. :func:`translate` returns the configuration with 0.8's
conventions applied, for :func:`flask_session.wiring.configure` to read, and the keys it
changed, which are then left as the app wrote them:

* keys this package does not use get one warning at start-up saying why (and the fix);
* ``SESSION_TYPE = "redis"`` or ``"memcached"`` with no client connects to localhost, as
  0.8 did, with a warning;
* ``SESSION_TYPE = "cachelib"`` is served by a store that keeps this package's guarantees
  (:func:`plan_cachelib`);
* ``SESSION_TYPE = "sqlalchemy"`` with no database makes a Flask-SQLAlchemy ``db`` on the
  app's ``SQLALCHEMY_DATABASE_URI``, as 0.8 did, with 0.8's warning.

The core (settings, stores, interface, wiring) never imports this module.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import SessionConfigError
from .settings import DEFAULT_STORE_TYPE
from .stores import STORE_TYPES

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("flask_session")

#: Flask-Session 0.8's default for SESSION_FILE_DIR (ours is under the instance folder)
FS08_DEFAULT_FILE_DIR = "flask_session"
#: 0.8 connected to a Redis on localhost when given no client; so do we, with a warning
FS08_DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: ... and to a memcached on localhost
FS08_DEFAULT_MEMCACHED_SERVERS = "127.0.0.1:11211"

#: 0.8's warning when no Flask-SQLAlchemy instance is given and it makes one itself
NO_SQLALCHEMY_CLIENT_WARNING = (
    "No valid SQLAlchemy instance provided, attempting to create a new instance on"
    " the app's SQLALCHEMY_DATABASE_URI (as Flask-Session 0.8 did); set"
    " SESSION_SQLALCHEMY (your db) or SESSION_SQLALCHEMY_URL to choose"
)


def _unsupported_store(name: str) -> str:
    choices = ", ".join(repr(kind) for kind in STORE_TYPES)
    return (
        f"there is no {name} store in this package (Flask-Session 0.8's {name} store"
        f" cannot lock a session); choose SESSION_TYPE {choices}"
    )


#: 0.8 key -> why it is ignored. Warned about once at start-up when the key is set (not
#: None); SESSION_CACHELIB is read, not ignored, with SESSION_TYPE = "cachelib".
IGNORED_KEYS: dict[str, str] = {
    "SESSION_CLEANUP_N_REQUESTS": (
        "expired sessions are never served (each read checks the expiry), Redis and"
        " memcached expire them themselves, and expired files and rows are removed by"
        " `flask session cleanup` run from cron, never by a user's request"
    ),
    "SESSION_FILE_THRESHOLD": "the filesystem store never evicts live sessions",
    "SESSION_FILE_MODE": "session files are always created with mode 0600",
    "SESSION_MONGODB": _unsupported_store("MongoDB"),
    "SESSION_MONGODB_DB": _unsupported_store("MongoDB"),
    "SESSION_MONGODB_COLLECT": _unsupported_store("MongoDB"),
    "SESSION_DYNAMODB": _unsupported_store("DynamoDB"),
    "SESSION_DYNAMODB_TABLE": _unsupported_store("DynamoDB"),
    "SESSION_CACHELIB": "it is read only with SESSION_TYPE = 'cachelib'",
}


def requested_store_type(config: Mapping[str, Any]) -> str:
    """The SESSION_TYPE an app asks for, in lower case as 0.8 compared it (unchecked:
    the settings refuse a type no store has)."""
    return str(config.get("SESSION_TYPE", DEFAULT_STORE_TYPE)).strip().lower()


def translate(app: Flask | None, config: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``config`` with 0.8's conventions applied, and the keys that changed."""
    store_type = requested_store_type(config)
    for key, why in IGNORED_KEYS.items():
        if config.get(key) is None or (key == "SESSION_CACHELIB" and store_type == "cachelib"):
            continue
        logger.warning("%s is ignored: %s", key, why)
    if config.get("SESSION_USE_SIGNER"):
        logger.warning(
            "SESSION_USE_SIGNER: cookies signed by Flask-Session 0.8 are still accepted"
            " (so nobody is logged out); new cookies carry the bare id, which has 256 bits"
            " from `secrets` and is checked against the store"
        )
    if store_type == "redis":
        changes = _default_redis(config)
    elif store_type == "memcached":
        changes = _default_memcached(config)
    elif store_type == "cachelib":
        changes = plan_cachelib(config.get("SESSION_CACHELIB"))
    elif store_type == "sqlalchemy":
        changes = _default_sqlalchemy(app, config)
    else:
        changes = {}
        if store_type == "filesystem" and "SESSION_FILE_DIR" not in config:
            _point_at_08_directory()
    return {**config, **changes}, set(changes)


def _default_redis(config: Mapping[str, Any]) -> dict[str, Any]:
    # A URL key present but None is a choice ("no default"): refused by the store.
    if config.get("SESSION_REDIS") is not None or "SESSION_REDIS_URL" in config:
        return {}
    logger.warning(
        "SESSION_TYPE is 'redis' with no SESSION_REDIS client: connecting to %s as"
        " Flask-Session 0.8 did; set SESSION_REDIS_URL (or SESSION_REDIS) to choose",
        FS08_DEFAULT_REDIS_URL,
    )
    return {"SESSION_REDIS_URL": FS08_DEFAULT_REDIS_URL}


def _default_memcached(config: Mapping[str, Any]) -> dict[str, Any]:
    # Set but empty: refused by the store.
    if config.get("SESSION_MEMCACHED") is not None or "SESSION_MEMCACHED_SERVERS" in config:
        return {}
    logger.warning(
        "SESSION_TYPE is 'memcached' with no SESSION_MEMCACHED client: connecting to %s"
        " as Flask-Session 0.8 did; set SESSION_MEMCACHED_SERVERS (or SESSION_MEMCACHED)"
        " to choose",
        FS08_DEFAULT_MEMCACHED_SERVERS,
    )
    return {"SESSION_MEMCACHED_SERVERS": FS08_DEFAULT_MEMCACHED_SERVERS}


def _default_sqlalchemy(app: Flask | None, config: Mapping[str, Any]) -> dict[str, Any]:
    """0.8's fallback when no database is named: a Flask-SQLAlchemy ``db`` on the app's
    ``SQLALCHEMY_DATABASE_URI`` (the app's own one if it already has one), with 0.8's
    warning. Nothing when the app names a database for sessions, has no
    ``SQLALCHEMY_DATABASE_URI``, or Flask-SQLAlchemy is not installed (the store then
    says what to set)."""
    if app is None or config.get("SESSION_SQLALCHEMY") is not None:
        return {}
    if config.get("SESSION_SQLALCHEMY_URL") or not config.get("SQLALCHEMY_DATABASE_URI"):
        return {}
    try:
        from flask_sqlalchemy import SQLAlchemy
    except ImportError:
        return {}
    client = app.extensions.get("sqlalchemy")
    if client is None:
        warnings.warn(NO_SQLALCHEMY_CLIENT_WARNING, RuntimeWarning, stacklevel=5)
        client = SQLAlchemy(app)
    return {"SESSION_SQLALCHEMY": client}


def _point_at_08_directory() -> None:
    """Warn if 0.8's default directory holds sessions our default would not see."""
    directory = os.path.abspath(FS08_DEFAULT_FILE_DIR)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    if any(len(name) in (32, 64) for name in entries):
        logger.warning(
            "%s holds Flask-Session 0.8's session files, but SESSION_FILE_DIR is not set"
            " and this package's default is under the app's instance folder: set"
            " SESSION_FILE_DIR = %r to keep those sessions",
            directory,
            directory,
        )


def plan_cachelib(cache: Any) -> dict[str, Any]:
    """The settings that serve a cachelib ``cache``'s sessions with a store that keeps this
    package's guarantees (a cachelib cache cannot by itself: see flask_session.cachelib).
    """
    if isinstance(cache, tuple) and len(cache) == 1:
        # 0.8's docs write `SESSION_CACHELIB = FileSystemCache(...),` (a stray comma).
        logger.warning("SESSION_CACHELIB is a 1-tuple (a trailing comma?); using its item")
        cache = cache[0]
    if cache is None:
        logger.warning(
            "SESSION_TYPE is 'cachelib' with no SESSION_CACHELIB: Flask-Session 0.8 made a"
            " FileSystemCache in ./%s; serving that directory with the filesystem store",
            FS08_DEFAULT_FILE_DIR,
        )
        return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": FS08_DEFAULT_FILE_DIR}
    kind = f"{type(cache).__module__}.{type(cache).__qualname__}"
    try:
        from cachelib import FileSystemCache, RedisCache, SimpleCache
    except ImportError:  # a cache object without cachelib: not one we know
        FileSystemCache = RedisCache = SimpleCache = ()  # type: ignore[assignment,misc]
    if isinstance(cache, FileSystemCache):
        directory = cache._path  # noqa: SLF001 (cachelib has no public accessor)
        threshold = getattr(cache, "_threshold", 0)
        evicts = f" (its threshold={threshold} would evict live sessions)" if threshold else ""
        logger.warning(
            "SESSION_CACHELIB is a FileSystemCache in %s: served by this package's"
            " filesystem store%s, which locks each session and never evicts a live one;"
            " Flask-Session 0.8's files there are carried over on first use",
            directory,
            evicts,
        )
        return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": directory}
    if isinstance(cache, RedisCache):
        logger.warning(
            "SESSION_CACHELIB is a RedisCache: served by this package's Redis store on"
            " the cache's client (atomic increments and locks); sessions cachelib pickled"
            " there are not carried over"
        )
        return {
            "SESSION_TYPE": "redis",
            "SESSION_REDIS": cache._write_client,  # noqa: SLF001
            "SESSION_REDIS_URL": None,
        }
    if isinstance(cache, SimpleCache):
        logger.warning(
            "SESSION_CACHELIB is a SimpleCache, which lives inside one process (each worker"
            " would see different sessions, all lost on restart): serving sessions with the"
            " filesystem store in SESSION_FILE_DIR instead"
        )
        return {"SESSION_TYPE": "filesystem"}
    raise SessionConfigError(
        f"SESSION_CACHELIB is a {kind}, which cannot lock a session (its add is not"
        " atomic across processes) or keep it from eviction; use a cachelib"
        " FileSystemCache or RedisCache, or SESSION_TYPE 'filesystem' or 'redis'"
    )
