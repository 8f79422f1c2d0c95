"""Flask-Session 0.8's ``flask_session.base``: the session and the interface base class.

``ServerSideSession`` is this package's session (see :mod:`flask_session.session`).
``ServerSideSessionInterface`` is the interface every backend class here derives from:
this package's interface, plus what 0.8 offered on top (signed cookies accepted, a
``cache`` view of the stored sessions, ``regenerate``). 0.8's abstract methods
(``_retrieve_session_data``...) are not a way to plug in a store here: a store
implements :class:`flask_session.stores.base.Store`, which is what keeps sessions
exact under concurrency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, Signer, want_bytes

from . import interface as _interface
from .codecs import CODECS, DecodeError
from .config08 import translate
from .errors import StoreUnavailable
from .ids import is_well_formed
from .session import ServerSideSession
from .settings import SessionSettings, apply_defaults, write_back
from .stores import STORE_FACTORIES, make_store

if TYPE_CHECKING:
    from flask import Flask, Request

    from .stores.base import Store

#: 0.8's signer salt for SESSION_USE_SIGNER cookies (``sid.signature``)
SIGNER_SALT = "flask-session"


class ServerSideSessionInterface(_interface.ServerSideSessionInterface):
    """This package's session interface, with 0.8's extras.

    ``use_signer``: a cookie Flask-Session 0.8 signed (``sid.signature``, with the app's
    ``SECRET_KEY``) is accepted, so switching logs nobody out; the cookies written from
    then on carry the bare id.
    """

    def __init__(
        self,
        settings: SessionSettings,
        store: Store,
        *,
        app: Flask | None = None,
        use_signer: bool = False,
    ) -> None:
        super().__init__(settings, store)
        self.use_signer = use_signer
        #: 0.8's ``interface.cache``: get(store_id) / delete(store_id) by prefixed id
        self.cache = StoredSessions(self)
        #: ids of the apps this interface has wired itself into (see open_session)
        self._wired: set[int] = set()
        if app is not None:
            self._wire(app)

    def _wire(self, app: Flask) -> None:
        from .extension import install

        install(app, self, replace_interface=False)
        self._wired.add(id(app))

    @property
    def key_prefix(self) -> str:
        return self.settings.key_prefix

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        if id(app) not in self._wired:
            self._wire_late(app)
        session = super().open_session(app, request)
        if session.sid is None and self.use_signer:
            cookie = request.cookies.get(self.get_cookie_name(app))
            sid = _unsign(app, cookie) if cookie else None
            if sid is not None and is_well_formed(sid, self.settings.id_bytes):
                session.sid = sid
        return session

    def _wire_late(self, app: Flask) -> None:
        """Built without ``app`` (0.8's docs do: ``RedisSessionInterface(client=r)``): wire
        the 503 handler and the lock-releasing teardown in at the app's first request,
        the last moment Flask allows it."""
        try:
            self._wire(app)
        except AssertionError:  # Flask refuses setup once a request was handled
            self._wired.add(id(app))
            app.logger.warning(
                "flask_session: %s was installed after the app served requests, so store"
                " outages are not answered with 503 by default; pass the app to its"
                " constructor or call Session(app)",
                type(self).__name__,
            )


def _unsign(app: Flask, cookie: str) -> str | None:
    if not app.secret_key:
        return None
    signer = Signer(app.secret_key, salt=SIGNER_SALT, key_derivation="hmac")
    try:
        return signer.unsign(want_bytes(cookie)).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


class StoredSessions:
    """A read/delete view of the store by 0.8's store ids (``key_prefix + sid``)."""

    def __init__(self, owner: ServerSideSessionInterface) -> None:
        self._owner = owner

    def _sid(self, store_id: str) -> str | None:
        prefix = self._owner.key_prefix
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


def shared_overrides(
    key_prefix: str,
    use_signer: bool,
    permanent: bool,
    sid_length: int,
    serialization_format: str,
) -> dict[str, Any]:
    """The ``SESSION_*`` keys behind the constructor arguments every 0.8 interface takes."""
    return {
        "SESSION_KEY_PREFIX": key_prefix,
        "SESSION_USE_SIGNER": use_signer,
        "SESSION_PERMANENT": permanent,
        "SESSION_ID_LENGTH": sid_length,
        "SESSION_SERIALIZATION_FORMAT": serialization_format,
    }


def configured(app: Flask | None, **overrides: Any) -> tuple[SessionSettings, Store]:
    """Settings and store from ``app.config`` (if any) with ``overrides`` on top.

    The one path from configuration to a store, for ``Session(app)`` and for the 0.8
    interface classes built directly. Raises SessionConfigError naming the key.
    """
    from .extension import check_cookie_settings

    if app is not None and overrides.get("SESSION_SQLALCHEMY") is None:
        requested = overrides.get("SESSION_TYPE", app.config.get("SESSION_TYPE"))
        if str(requested).lower() == "sqlalchemy":
            from .sqlalchemy import default_client

            default_client(app, app.config)  # 0.8's fallback: a db on SQLALCHEMY_DATABASE_URI
    base: dict[str, Any] = dict(app.config) if app is not None else {}
    config = translate(base, overrides)
    instance_path = app.instance_path if app is not None else "instance"
    apply_defaults(config, instance_path)
    settings = SessionSettings.from_config(config, tuple(STORE_FACTORIES))
    if app is not None:
        check_cookie_settings({**_flask_cookie_defaults(), **config})
    store = make_store(settings, config)
    if app is not None:
        # Flask reads the cookie settings itself: give it the checked values.
        write_back(config, app.config, skip=overrides)
    return settings, store


def _flask_cookie_defaults() -> dict[str, Any]:
    return {
        "SESSION_COOKIE_NAME": "session",
        "SESSION_COOKIE_SECURE": False,
        "SESSION_COOKIE_SAMESITE": None,
        "SESSION_COOKIE_DOMAIN": None,
        "SESSION_COOKIE_PATH": None,
    }


__all__ = [
    "CODECS",
    "ServerSideSession",
    "ServerSideSessionInterface",
    "StoreUnavailable",
    "StoredSessions",
    "configured",
]
