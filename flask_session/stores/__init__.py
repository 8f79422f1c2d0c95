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

    allow_eviction = config_bool(config, ALLOW_EVICTION) if ALLOW_EVICTION in config else False
    if isinstance(config, MutableMapping) and ALLOW_EVICTION in config:
        config[ALLOW_EVICTION] = allow_eviction  # checked: written back as a bool
    client = client_from_settings(settings.redis, settings.redis_url)
    try:
        return RedisStore(client=client, allow_eviction=allow_eviction, **common)
    except SessionConfigError:
        if settings.redis is None:  # ours (built from the URL): close it
            client.close()
        raise


#: SESSION_TYPE -> factory(settings, config, codec=, key_prefix=, lock_timeout=). A store
#: reads and checks its own settings from ``config`` (with the readers in settings.py),
#: raising SessionConfigError naming the key. A factory imports its store module itself.
STORE_FACTORIES: dict[str, Callable[..., Store]] = {
    "filesystem": _filesystem,
    "redis": _redis,
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
