"""Session stores, picked by ``SESSION_TYPE`` from a small table of factories.

Each factory imports its store module when it is called, so ``import flask_session``
needs neither ``fcntl`` (the filesystem store; not on Windows) nor ``redis``: an app
pays for, and needs installed, only the store it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ..codecs import CODECS
from ..errors import SessionConfigError
from ..ids import session_id_length
from ..settings import SessionSettings, config_bool
from .base import CleanupReport, IncrResult, Loaded, Store

if TYPE_CHECKING:
    from .filesystem import FileSystemStore
    from .redis import RedisStore


def _filesystem(settings: SessionSettings, config: Mapping[str, Any], **common: Any) -> Store:
    from .filesystem import FileSystemStore
    from .legacy import LegacyCacheLibFiles

    legacy = LegacyCacheLibFiles(settings.file_dir, settings.key_prefix)
    return FileSystemStore(directory=settings.file_dir, legacy=legacy, **common)


#: Start even if the Redis server may evict keys (see docs/flask_session.md).
ALLOW_EVICTION = "SESSION_REDIS_ALLOW_EVICTION"


def _redis(settings: SessionSettings, config: Mapping[str, Any], **common: Any) -> Store:
    from .redis import RedisStore, client_from_settings
    from .redis_topology import close_client, replica_wait_from_config

    allow_eviction = config_bool(config, ALLOW_EVICTION) if ALLOW_EVICTION in config else False
    if isinstance(config, MutableMapping) and ALLOW_EVICTION in config:
        config[ALLOW_EVICTION] = allow_eviction  # checked: written back as a bool
    # Settings first: a bad SESSION_REDIS_MIN_REPLICAS must not leave a client behind.
    replica_wait = replica_wait_from_config(config)
    client = client_from_settings(settings.redis, settings.redis_url)
    try:
        return RedisStore(
            client=client, allow_eviction=allow_eviction, replica_wait=replica_wait, **common
        )
    except SessionConfigError:
        if settings.redis is None:  # ours (built from the URL): close it
            close_client(client)
        raise


def _sqlalchemy(settings: SessionSettings, config: Mapping[str, Any], **common: Any) -> Store:
    # Imported here: SQLAlchemy (and psycopg) are optional, needed only by this store.
    try:
        from .sqlalchemy import SQLAlchemyStore
        from .sqlalchemy_setup import define_tables, engine_from_config, table_settings
    except ImportError as error:
        raise SessionConfigError(
            f"SESSION_TYPE is 'sqlalchemy' but {error.name} is not installed:"
            " pip install 'sessionapp[sqlalchemy]'"
        ) from error
    table, schema, sequence = table_settings(config)
    _check_key_length(settings, SESSION_ID_COLUMN_LENGTH, "the session_id column")
    engine = engine_from_config(config, settings.lock_timeout)
    return SQLAlchemyStore(engine=engine, tables=define_tables(table, schema, sequence), **common)


def _memcached(settings: SessionSettings, config: Mapping[str, Any], **common: Any) -> Store:
    try:
        from .memcached import MemcachedStore, servers_from_config
    except ImportError as error:
        raise SessionConfigError(
            f"SESSION_TYPE is 'memcached' but {error.name} is not installed:"
            " pip install 'sessionapp[memcached]'"
        ) from error
    _check_key_length(settings, MEMCACHED_KEY_LENGTH - len(":lock"), "a memcached key")
    return MemcachedStore(servers=servers_from_config(config), **common)


SESSION_ID_COLUMN_LENGTH = 255  # sessions.session_id is VARCHAR(255), as in Flask-Session 0.8
MEMCACHED_KEY_LENGTH = 250  # memcached's limit on a key, in bytes


def _check_key_length(settings: SessionSettings, limit: int, where: str) -> None:
    """Refuse at start-up a prefix and id length whose keys would not fit the store."""
    length = len(settings.key_prefix.encode()) + session_id_length(settings.id_bytes)
    if length > limit:
        raise SessionConfigError(
            f"SESSION_KEY_PREFIX ({settings.key_prefix!r}) plus a session id of"
            f" SESSION_ID_LENGTH {settings.id_bytes} bytes makes keys of {length} characters;"
            f" {where} holds {limit}: use a shorter prefix or SESSION_ID_LENGTH"
        )


#: SESSION_TYPE -> factory(settings, config, codec=, key_prefix=, lock_timeout=). A store
#: reads and checks its own settings from ``config`` (with the readers in settings.py),
#: raising SessionConfigError naming the key. A factory imports its store module itself.
STORE_FACTORIES: dict[str, Callable[..., Store]] = {
    "filesystem": _filesystem,
    "redis": _redis,
    "sqlalchemy": _sqlalchemy,
    "memcached": _memcached,
}


def make_store(settings: SessionSettings, config: Mapping[str, Any]) -> Store:
    """The store ``settings`` ask for (settings were checked by SessionSettings)."""
    return STORE_FACTORIES[settings.store_type](
        settings,
        config,
        codec=CODECS[settings.serialization_format],
        key_prefix=settings.key_prefix,
        lock_timeout=settings.lock_timeout,
    )


def __getattr__(name: str) -> Any:
    # FileSystemStore and RedisStore stay importable from here, loaded on first use.
    if name == "FileSystemStore":
        from .filesystem import FileSystemStore

        return FileSystemStore
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STORE_FACTORIES",
    "CleanupReport",
    "FileSystemStore",
    "IncrResult",
    "Loaded",
    "RedisStore",
    "Store",
    "make_store",
]
