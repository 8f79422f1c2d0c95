"""Flask-Session 0.8's configuration, read the way this package can honour it.

Every key 0.8 reads is accepted. Keys this package honours pass through; the others
get one warning at start-up that says why they do not apply (and the fix, if any).
``SESSION_TYPE = "cachelib"`` is planned by :mod:`flask_session.cachelib`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("flask_session")

#: Flask-Session 0.8's default for SESSION_FILE_DIR (ours is under the instance folder)
FS08_DEFAULT_FILE_DIR = "flask_session"
#: 0.8 connected to a Redis on localhost when given no client; so do we, with a warning
FS08_DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: ... and to a memcached on localhost
FS08_DEFAULT_MEMCACHED_SERVERS = "127.0.0.1:11211"


def _unsupported_store(name: str) -> str:
    return (
        f"there is no {name} store in this package (Flask-Session 0.8's {name} store"
        " cannot lock a session); choose SESSION_TYPE 'filesystem', 'redis', 'sqlalchemy'"
        " or 'memcached'"
    )


#: key -> (applies(store_type), why it is ignored). Warned about only when the key is
#: set and ``applies`` says this store does not use it. Stores that honour a key (the
#: SQL store and SESSION_CLEANUP_N_REQUESTS, say) add themselves to the predicate.
IGNORED_08_KEYS: dict[str, tuple[Callable[[str], bool], str]] = {
    "SESSION_CLEANUP_N_REQUESTS": (
        lambda store: store in ("filesystem", "redis", "cachelib", "sqlalchemy", "memcached"),
        "expired sessions are never served (each read checks the expiry), Redis and"
        " memcached expire them themselves, and expired files and rows are removed by"
        " `flask session cleanup` run from cron, never by a user's request",
    ),
    "SESSION_MONGODB": (lambda store: True, _unsupported_store("MongoDB")),
    "SESSION_MONGODB_DB": (lambda store: True, _unsupported_store("MongoDB")),
    "SESSION_MONGODB_COLLECT": (lambda store: True, _unsupported_store("MongoDB")),
    "SESSION_DYNAMODB": (lambda store: True, _unsupported_store("DynamoDB")),
    "SESSION_DYNAMODB_TABLE": (lambda store: True, _unsupported_store("DynamoDB")),
    "SESSION_CACHELIB": (
        lambda store: store != "cachelib",
        "it is read only with SESSION_TYPE = 'cachelib'",
    ),
}


def translate(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The settings to build the store from: ``config`` with ``overrides`` and 0.8's
    conventions applied. Warns once per key this package does not use."""
    merged = {**config, **overrides}
    store_type = merged.get("SESSION_TYPE", "filesystem")
    if isinstance(store_type, str):
        store_type = store_type.lower()  # 0.8 accepted any case
        merged["SESSION_TYPE"] = store_type
    for key, (applies, why) in IGNORED_08_KEYS.items():
        if merged.get(key) is not None and applies(store_type):
            logger.warning("%s is ignored: %s", key, why)
    if merged.get("SESSION_USE_SIGNER"):
        logger.warning(
            "SESSION_USE_SIGNER: cookies signed by Flask-Session 0.8 are still accepted"
            " (so nobody is logged out); new cookies carry the bare id, which has 256 bits"
            " from `secrets` and is checked against the store"
        )
    if (
        store_type == "redis"
        and merged.get("SESSION_REDIS") is None
        and "SESSION_REDIS_URL" not in merged
    ):
        logger.warning(
            "SESSION_TYPE is 'redis' with no SESSION_REDIS client: connecting to %s as"
            " Flask-Session 0.8 did; set SESSION_REDIS_URL (or SESSION_REDIS) to choose",
            FS08_DEFAULT_REDIS_URL,
        )
        merged["SESSION_REDIS_URL"] = FS08_DEFAULT_REDIS_URL
    if (
        store_type == "memcached"
        and merged.get("SESSION_MEMCACHED") is None
        and "SESSION_MEMCACHED_SERVERS" not in merged  # set but empty: refused by the store
    ):
        logger.warning(
            "SESSION_TYPE is 'memcached' with no SESSION_MEMCACHED client: connecting to %s"
            " as Flask-Session 0.8 did; set SESSION_MEMCACHED_SERVERS (or SESSION_MEMCACHED)"
            " to choose",
            FS08_DEFAULT_MEMCACHED_SERVERS,
        )
        merged["SESSION_MEMCACHED_SERVERS"] = FS08_DEFAULT_MEMCACHED_SERVERS
    if store_type == "cachelib":
        from .cachelib import plan_cachelib

        merged.update(plan_cachelib(merged.get("SESSION_CACHELIB")))
    elif store_type == "filesystem" and "SESSION_FILE_DIR" not in merged:
        _point_at_08_directory()
    return merged


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
