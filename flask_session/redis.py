"""Flask-Session 0.8's ``flask_session.redis``: ``RedisSessionInterface`` and ``RedisSession``.

Backed by this package's Redis store (one hash per session, atomic increments, locks).
``import flask_session.redis`` does not import redis-py; building the interface does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ServerSideSession, ServerSideSessionInterface, configured, shared_overrides

if TYPE_CHECKING:
    from flask import Flask


class RedisSession(ServerSideSession):
    """The session class of :class:`RedisSessionInterface` (0.8's name)."""


class RedisSessionInterface(ServerSideSessionInterface):
    """Sessions in Redis, built as in Flask-Session 0.8::

        app.session_interface = RedisSessionInterface(app, client=Redis(...), key_prefix="s:")

    :param app: the Flask app; when given, its config supplies the settings not passed
        here, and the ``flask session`` commands, the 503 handler and the lock-releasing
        teardown are registered on it.
    :param client: a ``redis.Redis`` client (None: Redis on localhost, with a warning).
    :param key_prefix: prefix of every stored key.
    :param use_signer: accept cookies Flask-Session 0.8 signed.
    :param permanent: the default of ``session.permanent``.
    :param sid_length: random bytes in a session id.
    :param serialization_format: ``"msgpack"`` (0.8's default) or ``"json"``.
    """

    session_class = RedisSession

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
            SESSION_TYPE="redis",
            SESSION_REDIS=client,
            **shared_overrides(key_prefix, use_signer, permanent, sid_length, serialization_format),
        )
        super().__init__(settings, store, app=app, use_signer=use_signer)

    @property
    def client(self) -> Any:
        """The redis.Redis client (0.8's attribute)."""
        return getattr(self.store, "redis", None)
