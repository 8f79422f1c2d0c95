"""Flask-Session 0.8's ``flask_session.memcached``: ``MemcachedSessionInterface`` and
``MemcachedSession``.

Backed by this package's memcached store (CAS merges, lease locks taken with ``add``;
see :mod:`flask_session.stores.memcached`), on 0.8's layout (``prefix + sid`` holds the
whole session) so a 0.8 app's sessions carry over. ``import flask_session.memcached``
does not import pymemcache; building the interface does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BackendInterface, ServerSideSession, common_arguments

if TYPE_CHECKING:
    from flask import Flask


class MemcachedSession(ServerSideSession):
    """The session class of :class:`MemcachedSessionInterface` (0.8's name)."""


class MemcachedSessionInterface(BackendInterface):
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
    store_type = "memcached"

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
                "SESSION_MEMCACHED": client,
                **common_arguments(
                    key_prefix, use_signer, permanent, sid_length, serialization_format
                ),
            },
        )
        #: the pymemcache client given (0.8's attribute), or the app's SESSION_MEMCACHED
        self.client: Any = self.settings.store["SESSION_MEMCACHED"]


__all__ = ["MemcachedSession", "MemcachedSessionInterface"]
