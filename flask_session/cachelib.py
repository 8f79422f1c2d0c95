"""Flask-Session 0.8's ``cachelib`` backend: ``SESSION_TYPE = "cachelib"`` with a cachelib cache.

A cachelib cache cannot keep this package's guarantees by itself: ``FileSystemCache``
evicts live sessions past its ``threshold`` and has no lock across processes (its
``add`` checks, then writes); ``SimpleCache`` lives inside one process, so each worker
would see different sessions. So the cache is not used as such; its place is served by a
store that keeps them, and start-up says which:

* ``FileSystemCache(dir)``: the filesystem store in ``dir``, which never evicts, locks
  every session, and carries 0.8's files over on first use (nobody is logged out).
* ``RedisCache``: the Redis store on the cache's client (sessions written through
  cachelib's pickles are not carried over).
* ``SimpleCache`` or none: the filesystem store in ``SESSION_FILE_DIR`` (0.8 used an
  in-process cache or ``./flask_session``).
* anything else: refused at start-up, naming the fix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import config08
from .base import ServerSideSession, ServerSideSessionInterface, configured, shared_overrides
from .errors import SessionConfigError

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("flask_session")


class CacheLibSession(ServerSideSession):
    """The session class of :class:`CacheLibSessionInterface` (0.8's name)."""


class CacheLibSessionInterface(ServerSideSessionInterface):
    """0.8's cachelib backend, served as described in this module's docstring.

    :param client: a cachelib cache (``FileSystemCache``, ``RedisCache``, ``SimpleCache``).
    The other parameters are those of :class:`flask_session.base.ServerSideSessionInterface`.
    """

    session_class = CacheLibSession

    def __init__(
        self,
        app: Flask | None = None,
        client: Any = None,
        key_prefix: str = "session:",
        use_signer: bool = False,
        permanent: bool = True,
        sid_length: int = 32,
        serialization_format: str = "msgpack",
    ) -> None:
        settings, store = configured(
            app,
            SESSION_TYPE="cachelib",
            SESSION_CACHELIB=client,
            **shared_overrides(key_prefix, use_signer, permanent, sid_length, serialization_format),
        )
        super().__init__(settings, store, app=app, use_signer=use_signer)


def plan_cachelib(cache: Any) -> dict[str, Any]:
    """The settings that serve ``cache``'s sessions with a store that keeps our guarantees."""
    if isinstance(cache, tuple) and len(cache) == 1:
        # 0.8's docs write `SESSION_CACHELIB = FileSystemCache(...),` (a stray comma).
        logger.warning("SESSION_CACHELIB is a 1-tuple (a trailing comma?); using its item")
        cache = cache[0]
    if cache is None:
        logger.warning(
            "SESSION_TYPE is 'cachelib' with no SESSION_CACHELIB: Flask-Session 0.8 made a"
            " FileSystemCache in ./%s; serving that directory with the filesystem store",
            config08.FS08_DEFAULT_FILE_DIR,
        )
        return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": config08.FS08_DEFAULT_FILE_DIR}
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
