"""Flask-Session 0.8's ``flask_session.base``: the session, the interface, and the base of
0.8's backend classes.

``ServerSideSession`` and ``ServerSideSessionInterface`` are this package's own (see
:mod:`flask_session.session` and :mod:`flask_session.interface`), under 0.8's names.
0.8's abstract methods (``_retrieve_session_data``...) are not a way to plug in a store
here: a store implements :class:`flask_session.stores.base.Store`, which is what keeps
sessions exact under concurrency.

:class:`BackendInterface` is what 0.8's backend classes (``RedisSessionInterface``...)
add on top: 0.8's constructor arguments, each taken as a setting, and 0.8's ``cache``
view. Built through its constructor, from an app or without one (0.8's docs do both).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from .codecs import DecodeError
from .config08 import requested_store_type, translate
from .interface import ServerSideSessionInterface
from .session import ServerSideSession
from .wiring import configure, install

if TYPE_CHECKING:
    from flask import Flask, Request


#: no settings given (a constructor called with none of its arguments)
_NONE: Mapping[str, Any] = MappingProxyType({})


class BackendInterface(ServerSideSessionInterface):
    """The base of 0.8's backend classes.

    ``given`` holds the ``SESSION_*`` settings the constructor's arguments stand for;
    None means "not given": the app's setting applies (else this package's default).
    With ``app``, its config supplies the rest, the checked values are published into
    it, and the ``flask session`` commands, the 503 handler and the lock-releasing
    teardown are registered on it. Without one, those are registered at the first
    request (the last moment Flask allows it).
    """

    #: the SESSION_TYPE this class serves (None: whatever the app's config says)
    store_type: ClassVar[str | None] = None

    def __init__(self, app: Flask | None = None, given: Mapping[str, Any] = _NONE) -> None:
        config: Mapping[str, Any] = app.config if app is not None else {}
        chosen = {key: value for key, value in given.items() if value is not None}
        if self.store_type is not None and requested_store_type(config) != self.store_type:
            chosen["SESSION_TYPE"] = self.store_type
        translated, changed = translate(app, {**config, **chosen})
        settings, store = configure(app, translated, leave={*chosen, *changed})
        super().__init__(settings, store)
        #: 0.8's ``interface.cache``: get(store_id) / delete(store_id) by prefixed id
        self.cache = StoredSessions(self)
        if app is not None:
            install(app, self, assign=False)
        else:
            # Replaced for the first request only: after it, Flask calls the class's
            # open_session directly, with no per-request check.
            self.__dict__["open_session"] = self._open_first_session

    @property
    def key_prefix(self) -> str:
        return self.settings.key_prefix

    def _open_first_session(self, app: Flask, request: Request) -> ServerSideSession:
        self.__dict__.pop("open_session", None)
        try:
            install(app, self, assign=False)
        except AssertionError:  # Flask refuses setup once a request was handled
            app.logger.warning(
                "flask_session: %s was installed after the app served requests, so store"
                " outages are not answered with 503 by default; pass the app to its"
                " constructor or call Session(app)",
                type(self).__name__,
            )
        return self.open_session(app, request)


def common_arguments(
    key_prefix: str | None,
    use_signer: bool | None,
    permanent: bool | None,
    sid_length: int | None,
    serialization_format: str | None,
) -> dict[str, Any]:
    """The ``SESSION_*`` keys behind the constructor arguments every 0.8 interface takes."""
    return {
        "SESSION_KEY_PREFIX": key_prefix,
        "SESSION_USE_SIGNER": use_signer,
        "SESSION_PERMANENT": permanent,
        "SESSION_ID_LENGTH": sid_length,
        "SESSION_SERIALIZATION_FORMAT": serialization_format,
    }


class StoredSessions:
    """A read/delete view of the store by 0.8's store ids (``key_prefix + sid``)."""

    def __init__(self, owner: ServerSideSessionInterface) -> None:
        self._owner = owner

    def _sid(self, store_id: str) -> str | None:
        prefix = self._owner.settings.key_prefix
        return store_id[len(prefix) :] if store_id.startswith(prefix) else None

    def get(self, store_id: str) -> dict[str, Any] | None:
        """The stored session as a dict, or None (read without lock or refresh)."""
        sid = self._sid(store_id)
        if sid is None:
            return None
        loaded = self._owner.store.load(sid, lock=False, refresh_ttl=None)
        if loaded is None:
            return None
        codec = self._owner.codec
        try:
            return {key: codec.decode(raw) for key, raw in loaded.values.items()}
        except DecodeError:
            return None

    def delete(self, store_id: str) -> None:
        sid = self._sid(store_id)
        if sid is not None:
            self._owner.store.delete(sid)


__all__ = [
    "BackendInterface",
    "ServerSideSession",
    "ServerSideSessionInterface",
    "StoredSessions",
]
