"""The Flask session interface: cookie in, cookie out, and the store in between."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask.sessions import SessionInterface
from itsdangerous import BadSignature, Signer, want_bytes

from .codecs import CODECS
from .cookies import CookieFormat
from .errors import StoreUnavailable
from .ids import is_well_formed
from .metrics import measured
from .session import (
    OPENED_SESSION_KEY,
    EndpointLocking,
    RequestPolicy,
    ServerSideSession,
    opened_session,
)
from .stores.users import (
    UserIndex,
    UserSession,
    check_label,
    last_seen,
    session_handle,
    user_key,
)

if TYPE_CHECKING:
    from flask import Flask, Request, Response

    from .settings import SessionSettings
    from .stores.base import Store


#: the first status of an error response: a request answered with one (a 4xx, a 500) is
#: not taken as proof that its endpoint only reads (SESSION_LOCKING='auto')
HTTP_ERRORS = 400

#: Flask-Session 0.8's signer salt for SESSION_USE_SIGNER cookies (``sid.signature``)
SIGNER_SALT = "flask-session"


class ServerSideSessionInterface(SessionInterface):
    """Owns the cookie and the session id; the store owns the data.

    ``open_session`` does no I/O: it only checks that the cookie has the exact shape of
    an id we issue. Anything else (unknown, malformed, overlong, path characters) starts
    a fresh session, and only the store can say whether a well-formed id is live.

    A request may carry several cookies of the session's name (a sibling subdomain can
    set one for the parent domain, and the browser sends both). Every well-formed one
    is a candidate, tried in order when the session is first used: the first the store
    knows as live wins, so a planted cookie can never hide the user's session.

    With ``SESSION_USE_SIGNER``, a cookie Flask-Session 0.8 signed (``id.signature``,
    HMAC with the app's ``SECRET_KEY``) is accepted too, so switching logs nobody out;
    the cookies written from then on carry the bare id. As with Flask's own session, the
    signature is checked against ``SECRET_KEY``, then each of ``SECRET_KEY_FALLBACKS``
    (Flask 3.1), so rotating the key logs nobody out either.

    Built from checked, frozen settings and a store (see :mod:`flask_session.wiring`).
    """

    session_class = ServerSideSession

    def __init__(self, settings: SessionSettings, store: Store) -> None:
        self.settings = settings
        #: the store, for what is not a session verb (counters, ``ping``, counting)
        self.store = store
        #: what the sessions call: ``store``, or with SESSION_METRICS it measured
        self.session_store = measured(store, settings)
        self.codec = CODECS[settings.serialization_format]
        # Built once per distinct value of the app settings they depend on, not per
        # request: Flask reads those settings on every request (an app may change them
        # at run time), so they are looked up each time and only the objects are reused.
        self._policies: dict[tuple[Any, Any], RequestPolicy] = {}
        self._cookie_formats: dict[tuple[str, tuple[Any, ...]], CookieFormat] = {}
        #: what SESSION_LOCKING='auto' learned about each endpoint in this process
        self.endpoint_locking = EndpointLocking()

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        opened = self._open_session(app, request)
        request.environ[OPENED_SESSION_KEY] = opened  # see opened_session
        return opened

    def _open_session(self, app: Flask, request: Request) -> ServerSideSession:
        id_bytes = self.settings.id_bytes
        cookies = request.cookies.getlist(self.get_cookie_name(app))
        policy = self._policy(app)
        if len(cookies) == 1:  # the usual case: one cookie of our name
            sid = cookies[0]
            if sid and is_well_formed(sid, id_bytes):
                return self.session_class(policy, sid)
            return self.session_class(policy, self._signed_sid(app, sid))
        found = (self._cookie_sid(app, cookie, id_bytes) for cookie in cookies)
        candidates = [sid for sid in dict.fromkeys(found) if sid]  # in order, each id once
        if not candidates:
            return self.session_class(policy, None)
        return self.session_class(policy, candidates[0], other_sids=tuple(candidates[1:]))

    def _cookie_sid(self, app: Flask, cookie: str, id_bytes: int) -> str | None:
        if cookie and is_well_formed(cookie, id_bytes):
            return cookie
        return self._signed_sid(app, cookie)

    def _signed_sid(self, app: Flask, cookie: str) -> str | None:
        """The id in a cookie Flask-Session 0.8 signed, if SESSION_USE_SIGNER is on and
        the signature is made with ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS``;
        else None."""
        secret = app.secret_key
        if not self.settings.use_signer or not cookie or not secret:
            return None
        signer = Signer(_secret_keys(app, secret), salt=SIGNER_SALT, key_derivation="hmac")
        try:
            sid = signer.unsign(want_bytes(cookie)).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        return sid if is_well_formed(sid, self.settings.id_bytes) else None

    def _policy(self, app: Flask) -> RequestPolicy:
        """The request policy for the app's current lifetime and refresh settings."""
        config = app.config
        key = (config["PERMANENT_SESSION_LIFETIME"], config["SESSION_REFRESH_EACH_REQUEST"])
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = RequestPolicy(
                store=self.session_store,
                codec=self.codec,
                id_bytes=self.settings.id_bytes,
                locking=self.settings.locking,
                permanent_default=self.settings.permanent,
                ttl=app.permanent_session_lifetime.total_seconds(),
                refresh_each_request=key[1],
                max_size=self.settings.max_size,
                metrics=self.settings.metrics,
                store_name=self.store.name,
                endpoints=self.endpoint_locking,
                absolute=self.settings.absolute_lifetime,
                grace=self.settings.regenerate_grace,
            )
        return policy

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:  # type: ignore[override]
        if session.accessed:
            _vary_on_cookie(response)
        try:
            commit = session.commit(succeeded=response.status_code < HTTP_ERRORS)
        except StoreUnavailable as error:
            session.release_lock()
            _become_error_response(app, error, response)
            return
        if not commit.touched:
            return  # nothing looked at the session: no store work, no cookie
        name = self.get_cookie_name(app)
        # Flask's settings, the same for setting and deleting the cookie (read each time,
        # as Flask does; only what is rendered from them is kept)
        attributes = (
            self.get_cookie_domain(app),
            self.get_cookie_path(app),
            self.get_cookie_secure(app),
            self.get_cookie_httponly(app),
            self.get_cookie_samesite(app),
            self.get_cookie_partitioned(app),
        )
        if not commit.exists:
            if commit.existed:  # the session was cleared: make the browser forget it
                response.delete_cookie(name, **_cookie_keywords(attributes))
            return
        if session.forwarded and not commit.issued:
            # Reached through a regenerated session's old id, within the grace window:
            # the response names no id. The browser that regenerated has the new cookie
            # already; a holder of the old id must not be handed the new one.
            return
        permanent = session.is_permanent()
        refresh = permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]
        if commit.issued or commit.wrote or refresh:
            lifetime = session.ttl if permanent else None
            header = self._cookie_format(name, attributes).header(session.sid, lifetime)  # type: ignore[arg-type]
            response.headers.add("Set-Cookie", header)

    def _cookie_format(self, name: str, attributes: tuple[Any, ...]) -> CookieFormat:
        key = (name, attributes)
        found = self._cookie_formats.get(key)
        if found is None:
            found = CookieFormat(name, _cookie_keywords(attributes))
            self._cookie_formats[key] = found
        return found

    def get_cookie_samesite(self, app: Flask) -> str | None:
        # Flask's default is None (no attribute); a session cookie should be Lax unless the
        # app chose otherwise.
        return app.config["SESSION_COOKIE_SAMESITE"] or "Lax"

    def regenerate(self, session: ServerSideSession) -> None:
        """Give the session a new id, keeping its data; the old id stops working.

        Call it when privileges change (after a login) to defeat session fixation. The
        old id keeps reaching the session for SESSION_REGENERATE_GRACE seconds (for
        requests already in flight with it; responses to them set no cookie), then is
        gone; with 0 it is gone at once. A session bound to a user (:meth:`bind_user`)
        is bound again under its new id, and the old id unbound.
        """
        old_sid = session.sid
        index = self.store
        binding = session.binding if isinstance(index, UserIndex) and old_sid else None
        if binding is None or not isinstance(index, UserIndex) or old_sid is None:
            session.regenerate()
            return
        user, label = binding

        def bind(new_sid: str) -> None:
            # Before the old session is deleted: a request reaching the new one through
            # the old id finds it bound (memcached admits a bound session only then), and
            # a revoke-all meanwhile finds one of the two.
            index.bind_user(user, new_sid, label=label, cap=None)

        session.regenerate(on_stored=bind)
        index.unbind_user(user, old_sid)

    # -- the per-user index (an optional store capability: stores/users.py) -------------

    def bind_user(
        self,
        session: ServerSideSession,
        user_id: str | int,
        *,
        label: str = "",
        max_sessions: int | None = None,
    ) -> list[str]:
        """Record ``session`` as one of ``user_id``'s sessions. Call it at login, after
        ``regenerate`` (a later ``regenerate`` binds the new id by itself).

        ``label`` describes the session in :meth:`user_sessions` (a user agent, a device
        name; up to 256 characters). A session bound to another user is unbound from
        them first. With ``max_sessions``, the user's oldest sessions
        beyond that many are revoked, never this one; returns their handles. Writes the
        session now if it was not stored yet.
        """
        index = self._user_index()
        if max_sessions is not None and (
            not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1
        ):
            raise ValueError(f"max_sessions is {max_sessions!r}; use a whole number from 1")
        key, checked = user_key(user_id), check_label(label)
        sid = session.stored_sid()
        previous = session.binding
        if previous is not None and previous[0] != key:  # a login over another user's
            index.unbind_user(previous[0], sid)
        revoked = index.bind_user(key, sid, label=checked, cap=max_sessions)
        session.set_binding(key, checked)  # so that regenerate() binds the new id
        return revoked

    def unbind_user(self, session: ServerSideSession, user_id: str | int) -> None:
        """Forget that ``session`` is ``user_id``'s (at logout); the session stays."""
        if session.sid is not None:
            self._user_index().unbind_user(user_key(user_id), session.sid)
            session.set_binding(None)

    def user_sessions(self, user_id: str | int) -> list[UserSession]:
        """``user_id``'s live sessions (handle, bind time, label, expiry, last seen),
        oldest first. Compare a handle with :meth:`session_handle` to find the current
        session. ``last_seen`` is derived from the expiry and the current app's
        PERMANENT_SESSION_LIFETIME (None outside an app context): no write per request."""
        found = self._user_index().user_sessions(user_key(user_id))
        if not has_app_context():
            return found
        idle, now = current_app.permanent_session_lifetime.total_seconds(), time.time()
        return [replace(entry, last_seen=last_seen(entry, idle, now)) for entry in found]

    def session_handle(self, session: ServerSideSession) -> str | None:
        """The handle :meth:`user_sessions` names ``session`` by (None: not stored)."""
        return (
            None if session.sid is None else session_handle(self.settings.key_prefix, session.sid)
        )

    def revoke_user_sessions(
        self, user_id: str | int, *, keep: ServerSideSession | None = None
    ) -> list[str]:
        """Revoke every session of ``user_id`` but ``keep`` (the current one, for "sign
        out everywhere else"; None: all of them). A revoked session is deleted: the next
        request with its cookie, on any server, gets a fresh, empty session. The current
        request's own session, if revoked, is cleared and ends with the response (which
        deletes its cookie). Returns the revoked sessions' handles."""
        kept = self.session_handle(keep) if keep is not None else None
        return self._revoke(user_key(user_id), None, kept)

    def revoke_user_session(self, user_id: str | int, handle: str) -> bool:
        """Revoke one of ``user_id``'s sessions by its handle (from :meth:`user_sessions`);
        a handle that is not theirs is left alone. Returns whether a live session was
        revoked."""
        return bool(self._revoke(user_key(user_id), [handle], None))

    def _revoke(self, user: str, handles: list[str] | None, kept: str | None) -> list[str]:
        """Revoke through the store, except the current request's own session: that one
        is cleared (the store would otherwise wait for the lock this very request holds)
        and unbound, if it is among those revoked."""
        index = self._user_index()
        own = opened_session()
        own_handle = self.session_handle(own) if own is not None else None
        if own is None or own_handle is None or own_handle == kept:
            return index.revoke_user_sessions(user, handles, keep=kept)
        if kept is None:
            revoked = index.revoke_user_sessions(user, handles, keep=own_handle)
        else:  # two to keep out: name the others
            targets = [
                entry.handle
                for entry in index.user_sessions(user)
                if entry.handle not in (kept, own_handle)
                and (handles is None or entry.handle in handles)
            ]
            revoked = index.revoke_user_sessions(user, targets, keep=None)
        wanted = handles is None or own_handle in handles
        if wanted and any(entry.handle == own_handle for entry in index.user_sessions(user)):
            assert own.sid is not None
            index.unbind_user(user, own.sid)
            own.clear()
            revoked.append(own_handle)
        return revoked

    def _user_index(self) -> UserIndex:
        if not isinstance(self.store, UserIndex):  # every built-in store has one
            raise TypeError(
                f"the {self.store.name!r} store keeps no per-user index (SESSION_TYPE ="
                f" {self.settings.store_type!r}): it does not implement"
                " flask_session.stores.users.UserIndex"
            )
        return self.store


def _secret_keys(app: Flask, secret: str | bytes) -> list[bytes]:
    """The keys a signature may be made with, the fallbacks first and ``secret`` (the
    app's ``SECRET_KEY``) last, as Flask 3.1's own session builds them: itsdangerous
    tries the last (newest) first. Read on every call, as Flask does (an app may rotate
    its keys at run time)."""
    fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
    return [want_bytes(key) for key in (*fallbacks, secret)]


#: dump_cookie's keyword arguments, in the order save_session reads Flask's settings
_COOKIE_ATTRIBUTES = ("domain", "path", "secure", "httponly", "samesite", "partitioned")


def _cookie_keywords(attributes: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_COOKIE_ATTRIBUTES, attributes, strict=True))


def _vary_on_cookie(response: Response) -> None:
    """Add ``Cookie`` to the response's ``Vary``: cheaply when nothing set Vary yet (a
    miss in Werkzeug's header lookups raises and catches an exception)."""
    for name, _ in response.headers:
        if name.lower() == "vary":
            response.vary.add("Cookie")
            return
    response.headers.add("Vary", "Cookie")


#: Headers that describe the original body or session and must not survive the swap.
_REPLACED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-range",
        "content-disposition",
        "content-language",
        "content-location",
        "location",
        "set-cookie",
        "etag",
        "last-modified",
    }
)


def _become_error_response(app: Flask, error: StoreUnavailable, response: Response) -> None:
    """Turn ``response`` into the app's answer to ``error`` (a 503 by default).

    A failure while saving comes after the view returned, where Flask would turn any
    exception into a 500; the handler registered for StoreUnavailable is used instead,
    and its response replaces this one in place (Flask ignores save_session's return).
    Headers added by ``after_request`` hooks (security headers, Vary) are kept; those
    that describe the discarded body or would set a cookie are dropped.
    """
    try:
        raise error
    except StoreUnavailable as raised:
        replacement = app.make_response(app.handle_user_exception(raised))
    kept = [
        (name, value) for name, value in response.headers if name.lower() not in _REPLACED_HEADERS
    ]
    response.status = replacement.status
    response.headers.clear()
    response.headers.extend(kept)
    for name in {name for name, _ in replacement.headers}:
        response.headers.setlist(name, replacement.headers.getlist(name))
    response.set_data(replacement.get_data())
