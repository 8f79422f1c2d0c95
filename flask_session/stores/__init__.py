"""Session stores, picked by ``SESSION_TYPE`` from a small table of factories."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..codecs import CODECS
from ..settings import SessionSettings
from .base import CleanupReport, IncrResult, Loaded, Store
from .filesystem import FileSystemStore
from .redis import RedisStore, client_from_settings


def _filesystem(settings: SessionSettings, config: Mapping[str, Any], **common) -> Store:
    return FileSystemStore(directory=settings.file_dir, **common)


def _redis(settings: SessionSettings, config: Mapping[str, Any], **common) -> Store:
    return RedisStore(client=client_from_settings(settings.redis, settings.redis_url), **common)


#: SESSION_TYPE -> factory(settings, config, codec=, key_prefix=, lock_timeout=). A store
#: reads and checks its own settings from ``config`` (with the readers in settings.py),
#: raising SessionConfigError naming the key.
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
