"""Flask-Session 0.8's ``flask_session.memcached``: ``MemcachedSessionInterface`` and
``MemcachedSession``.

Backed by this package's memcached store (CAS merges, lease locks taken with ``add``;
see :mod:`flask_session.stores.memcached`), on 0.8's layout (``prefix + sid`` holds the
whole session) so a 0.8 app's sessions carry over. ``import flask_session.memcached``
does not import pymemcache; building the interface does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ServerSideSession, ServerSideSessionInterface, configured, shared_overrides

if TYPE_CHECKING:
    from flask import Flask


class MemcachedSession(ServerSideSession):
    """The session class of :class:`MemcachedSessionInterface` (0.8's name)."""


class MemcachedSessionInterface(ServerSideSessionInterface):
    """Sessions in memcached, built as in Flask-Session 0.8::

        app.session_interface = MemcachedSessionInterface(app, client=Client("127.0.0.1:11211"))

    :param client: a pymemcache client (``Client``, ``PooledClient`` or ``HashClient``):
        the store talks to its servers over its own pooled connections, which wait for
        every reply and never retry. None: the app's ``SESSION_MEMCACHED`` /
        ``SESSION_MEMCACHED_SERVERS``, else memcached on 127.0.0.1:11211 with a warning,
        as 0.8 did.

    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = MemcachedSession

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
        overrides: dict[str, Any] = {"SESSION_TYPE": "memcached"}
        if client is not None:  # else the app's SESSION_MEMCACHED(_SERVERS), or 0.8's default
            overrides["SESSION_MEMCACHED"] = client
        self.client: Any = client
        settings, store = configured(
            app,
            **overrides,
            **shared_overrides(key_prefix, use_signer, permanent, sid_length, serialization_format),
        )
        super().__init__(settings, store, app=app, use_signer=use_signer)

    def _wire(self, app: Flask) -> None:
        super()._wire(app)
        if getattr(self, "client", None) is None:  # built by Session(app): the app's client
            self.client = app.config.get("SESSION_MEMCACHED")


__all__ = ["MemcachedSession", "MemcachedSessionInterface"]
