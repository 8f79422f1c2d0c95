"""Security headers on every response.

``init_app(app)`` adds them in an ``after_request`` hook. A header a view already set
is left alone, so a route that needs something different says so itself.

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

from typing import TYPE_CHECKING

from flask_session.settings import config_number

if TYPE_CHECKING:
    from flask import Flask, Response

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
    wanted = [(name.lower(), name, value) for name, value in headers.items()]

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # One pass over the response's headers instead of a setdefault (a scan) each.
        present = {name.lower() for name, _ in response.headers}
        response.headers.extend(
            [(name, value) for lower, name, value in wanted if lower not in present]
        )
        return response
