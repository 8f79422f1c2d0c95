"""Flask-Session 0.8's ``flask_session.redis``: ``RedisSessionInterface`` and ``RedisSession``.

Backed by this package's Redis store (one hash per session, atomic increments, locks).
``import flask_session.redis`` does not import redis-py; building the interface does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BackendInterface, ServerSideSession, common_arguments

if TYPE_CHECKING:
    from flask import Flask


class RedisSession(ServerSideSession):
    """The session class of :class:`RedisSessionInterface` (0.8's name)."""


class RedisSessionInterface(BackendInterface):
    """Sessions in Redis, built as in Flask-Session 0.8::

        app.session_interface = RedisSessionInterface(app, client=Redis(...), key_prefix="s:")

    Every argument left out (None) takes the app's setting, else this package's default
    (msgpack or JSON sessions are both read, whichever is written).

    :param app: the Flask app; when given, its config supplies the settings not passed
        here, and the ``flask session`` commands, the 503 handler and the lock-releasing
        teardown are registered on it.
    :param client: a ``redis.Redis`` client (``SESSION_REDIS``; none at all: Redis on
        localhost, with a warning, as 0.8 did).
    :param key_prefix: prefix of every stored key (``SESSION_KEY_PREFIX``).
    :param use_signer: accept cookies Flask-Session 0.8 signed (``SESSION_USE_SIGNER``).
    :param permanent: the default of ``session.permanent`` (``SESSION_PERMANENT``).
    :param sid_length: random bytes in a session id (``SESSION_ID_LENGTH``).
    :param serialization_format: ``"msgpack"`` or ``"json"``
        (``SESSION_SERIALIZATION_FORMAT``).
    """

    session_class = RedisSession
    store_type = "redis"

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
                "SESSION_REDIS": client,
                **common_arguments(
                    key_prefix, use_signer, permanent, sid_length, serialization_format
                ),
            },
        )

    @property
    def client(self) -> Any:
        """The redis.Redis client (0.8's attribute)."""
        return self.store.redis  # type: ignore[attr-defined]


__all__ = ["RedisSession", "RedisSessionInterface"]
