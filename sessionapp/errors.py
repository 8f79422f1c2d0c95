"""Error answers: ``{"error": "..."}`` for API clients, a short page for browsers.

Never a traceback, never internal details (store addresses, file paths): those go to
the log, and the store already logs an outage once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from flask_session import SessionLockTimeout, StoreUnavailable

from .negotiation import wants_html

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)


# Plain messages for the statuses a client can cause; others use Werkzeug's description.
MESSAGES = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The request is too large.",
    500: "Something went wrong on our side. It has been logged.",
}


def register_error_handlers(app: Flask) -> None:
    """Install the handlers. Call before ``Session(app)``, which then keeps out of the way."""
    app.register_error_handler(StoreUnavailable, store_unavailable)
    app.register_error_handler(HTTPException, http_error)


def error_response(
    status: int, title: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    if wants_html():
        body = render_template("error.html", status=status, title=title, message=message)
        response = Response(body, status=status, mimetype="text/html")
    else:
        response = jsonify(error=message)
        response.status_code = status
    response.headers.update(headers or {})
    # Errors are answers about this moment (an outage, this request); never cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


def store_unavailable(error: StoreUnavailable) -> Response:
    """503 with Retry-After. Also used by flask_session when saving the session fails.

    The answer says what is wrong in words meant for clients (``error.reason``: "the
    session store's disk is full", "the session is busy with another request"); the
    details (paths, addresses) stay in the log.
    """
    if isinstance(error, SessionLockTimeout):
        # One session, not the store: worth a line, since it means a request held the
        # session for SESSION_LOCK_TIMEOUT (or many requests queued on one cookie).
        logger.warning("%s %s: %s", request.method, request.path, error)
    else:
        logger.debug("%s %s: %s", request.method, request.path, error)
    reason = error.reason[:1].upper() + error.reason[1:]
    return error_response(
        503,
        "Temporarily unavailable",
        f"{reason}. Try again shortly.",
        {"Retry-After": str(error.retry_after)},
    )


def http_error(error: HTTPException) -> Response:
    """404, 405 (keeping its Allow header), 500 and the rest, in one shape."""
    status = error.code or 500
    message = MESSAGES.get(status) or error.description or error.name
    # Keep the headers that carry meaning (Allow on a 405); drop Werkzeug's Content-Type.
    headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() in ("allow", "retry-after")
    }
    return error_response(status, f"{status} {error.name}", message, headers)
