"""Who is asking: a browser wanting a page, or a client wanting JSON."""

from __future__ import annotations

from flask import request


def wants_html() -> bool:
    """True if the client prefers an HTML page to JSON.

    Browsers ask for ``text/html`` first (a form post, a link); ``fetch`` from our page
    asks for ``application/json``; curl sends ``*/*`` and gets JSON, as do clients that
    send no Accept header at all.
    """
    # From the environ: request.headers.get raises and catches an exception for a
    # client that sends no Accept header.
    accept = request.environ.get("HTTP_ACCEPT", "")
    if "text/" not in accept:
        # Only text/html or text/* can make the page win; most API calls (*/*, JSON)
        # are answered without parsing the header (a measurable share of a request).
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
