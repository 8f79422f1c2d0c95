"""Flask-Session 0.8's ``flask_session.filesystem``: ``FileSystemSessionInterface``.

Backed by this package's filesystem store: one file per session, locked, never evicted.
Flask-Session 0.8's files in the same directory are carried over on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import BackendInterface, ServerSideSession, common_arguments

if TYPE_CHECKING:
    from flask import Flask


class FileSystemSession(ServerSideSession):
    """The session class of :class:`FileSystemSessionInterface` (0.8's name)."""


class FileSystemSessionInterface(BackendInterface):
    """Sessions in files, built as in Flask-Session 0.8.

    :param cache_dir: the directory (``SESSION_FILE_DIR``). When not given, the app's
        ``SESSION_FILE_DIR`` or this package's default (under the instance folder).
    :param threshold: not used (0.8 evicted sessions past it; this store never evicts a
        live session), warned about at start-up.
    :param mode: not used (files are always 0600), warned about at start-up.

    The other parameters are those of :class:`flask_session.redis.RedisSessionInterface`.
    """

    session_class = FileSystemSession
    store_type = "filesystem"

    def __init__(
        self,
        app: Flask | None = None,
        key_prefix: str | None = None,
        use_signer: bool | None = None,
        permanent: bool | None = None,
        sid_length: int | None = None,
        serialization_format: str | None = None,
        cache_dir: str | None = None,
        threshold: int | None = None,
        mode: int | None = None,
    ) -> None:
        super().__init__(
            app,
            {
                "SESSION_FILE_DIR": cache_dir,
                "SESSION_FILE_THRESHOLD": threshold,
                "SESSION_FILE_MODE": mode,
                **common_arguments(
                    key_prefix, use_signer, permanent, sid_length, serialization_format
                ),
            },
        )


__all__ = ["FileSystemSession", "FileSystemSessionInterface"]
