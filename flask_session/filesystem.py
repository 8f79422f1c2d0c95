"""Flask-Session 0.8's ``flask_session.filesystem``: ``FileSystemSessionInterface``.

Backed by this package's filesystem store: one file per session, locked, never evicted.
Flask-Session 0.8's files in the same directory are carried over on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ServerSideSession, ServerSideSessionInterface, configured, shared_overrides

if TYPE_CHECKING:
    from flask import Flask


class FileSystemSession(ServerSideSession):
    """The session class of :class:`FileSystemSessionInterface` (0.8's name)."""


class FileSystemSessionInterface(ServerSideSessionInterface):
    """Sessions in files, built as in Flask-Session 0.8.

    :param cache_dir: the directory (``SESSION_FILE_DIR``). When not given, the app's
        ``SESSION_FILE_DIR`` or this package's default (under the instance folder).
    :param threshold: not used (0.8 evicted sessions past it; this store never evicts a
        live session), warned about at start-up.
    :param mode: not used (files are always 0600), warned about at start-up.

    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = FileSystemSession

    def __init__(
        self,
        app: Flask | None = None,
        key_prefix: str = "session:",
        use_signer: bool = False,
        permanent: bool = True,
        sid_length: int = 32,
        serialization_format: str = "msgpack",
        cache_dir: str | None = None,
        threshold: int | None = None,
        mode: int | None = None,
    ) -> None:
        overrides: dict[str, object] = {"SESSION_TYPE": "filesystem"}
        if cache_dir is not None:
            overrides["SESSION_FILE_DIR"] = cache_dir
        if threshold is not None:
            overrides["SESSION_FILE_THRESHOLD"] = threshold
        if mode is not None:
            overrides["SESSION_FILE_MODE"] = mode
        settings, store = configured(
            app,
            **overrides,
            **shared_overrides(key_prefix, use_signer, permanent, sid_length, serialization_format),
        )
        super().__init__(settings, store, app=app, use_signer=use_signer)
