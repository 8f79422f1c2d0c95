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

from typing import TYPE_CHECKING, Any

from .base import BackendInterface, ServerSideSession, common_arguments

if TYPE_CHECKING:
    from flask import Flask


class CacheLibSession(ServerSideSession):
    """The session class of :class:`CacheLibSessionInterface` (0.8's name)."""


class CacheLibSessionInterface(BackendInterface):
    """0.8's cachelib backend, served as described in this module's docstring (the plan
    itself is :func:`flask_session.config08.plan_cachelib`).

    :param client: a cachelib cache (``FileSystemCache``, ``RedisCache``, ``SimpleCache``).
    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = CacheLibSession
    store_type = "cachelib"

    def __init__(
        self,
        app: Flask | None = None,
        client: Any = None,
        key_prefix: str | None = None,
        use_signer: bool | None = None,
        permanent: bool | None = None,
        sid_length: int | None = None,
        serialization_format: str | None = None,
    ) -> None:
        super().__init__(
            app,
            {
                "SESSION_CACHELIB": client,
                **common_arguments(
                    key_prefix, use_signer, permanent, sid_length, serialization_format
                ),
            },
        )


__all__ = ["CacheLibSession", "CacheLibSessionInterface"]
