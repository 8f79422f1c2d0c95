"""Security headers on every response.

``init_app(app)`` adds them to every response, in a WSGI middleware around the app. A
header a view already set is left alone, so a route that needs something different says
so itself.

The Content-Security-Policy fits a page whose scripts and styles are all same-origin
files (``/static/...``): no inline ``<script>``, no ``style=""`` attributes, no
``eval``. Forms may only post back to this origin and nobody may frame the page
(``frame-ancestors 'none'``, with ``X-Frame-Options: DENY`` for older browsers), which
rules out clickjacking the Increment/Reset buttons.

``Strict-Transport-Security`` is not sent by default: it is only right behind HTTPS,
and a browser remembers it. Set ``SECURITY_HSTS_SECONDS`` (for example 31536000) once
the service is served only over HTTPS (see docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask_session.readers import config_number

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

#: Two years, the longest max-age browsers' HSTS preload lists ask for; a longer promise
#: would only make a mistake last longer.
MAX_HSTS_SECONDS = 2 * 365 * 24 * 3600

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    """Send :data:`SECURITY_HEADERS` (and HSTS if configured) with every response."""
    app.config.setdefault("SECURITY_HSTS_SECONDS", 0)
    hsts = app.config["SECURITY_HSTS_SECONDS"] = config_number(
        app.config,
        "SECURITY_HSTS_SECONDS",
        minimum=0,
        maximum=MAX_HSTS_SECONDS,
        integer=True,
        what="seconds",
        hint="0 sends no header; 31536000 is one year",
    )
    headers = dict(SECURITY_HEADERS)
    if hsts > 0:
        headers["Strict-Transport-Security"] = f"max-age={hsts}"
    app.wsgi_app = SecurityHeaders(app.wsgi_app, headers)  # type: ignore[method-assign]


class SecurityHeaders:
    """WSGI middleware adding ``headers`` to every response that does not set them.

    Added to the final header list as the response starts, rather than in an
    ``after_request`` hook: constant headers then skip Werkzeug's per-header checks
    and its copy of the response's headers, which for six headers was a noticeable
    part of a request's CPU. It also covers answers that no hook sees.
    """

    def __init__(self, wsgi_app: WSGIApplication, headers: dict[str, str]) -> None:
        self.wsgi_app = wsgi_app
        self._wanted = tuple((name.lower(), name, value) for name, value in headers.items())
        self._lowered = frozenset(lower for lower, _, _ in self._wanted)
        self._every = list(headers.items())

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        wanted, lowered, every = self._wanted, self._lowered, self._every

        def start_with_headers(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            present = {name.lower() for name, _ in response_headers}
            if lowered.isdisjoint(present):  # the usual case: the view set none of them
                return start_response(status, response_headers + every, exc_info)
            missing = [(name, value) for lower, name, value in wanted if lower not in present]
            return start_response(status, response_headers + missing, exc_info)

        return self.wsgi_app(environ, start_with_headers)
