"""The session cookie's ``Set-Cookie`` header, formatted once per setting and second.

Werkzeug's ``dump_cookie`` re-checks and re-quotes every attribute on every call, and
formatting the expiry date is as costly again; together they were a tenth of the
session layer's CPU per request. Only two parts of the header change between requests:
the session id and the expiry. So the header is rendered once by ``dump_cookie`` itself
(the same text, attribute for attribute) with markers in their place, split there, and
each response joins the pieces around its id and an expiry string reused for the whole
second it stays the same (``Expires`` has a resolution of one second).
"""

from __future__ import annotations

import time
from typing import Any

from werkzeug.http import dump_cookie, http_date

# Markers that dump_cookie writes as they are (no quoting), and no cookie name,
# domain or path of a real configuration contains.
_SID_MARK = "sIdMaRk7f3a9c"
_EXPIRES_MARK = "eXpIrEsMaRk7f3a9c"

#: dump_cookie's limit: it warns above this size (a browser may drop such a cookie).
_MAX_SIZE = 4093


class CookieFormat:
    """Renders ``Set-Cookie`` values for one cookie name and set of attributes."""

    __slots__ = ("_name", "_attributes", "_parts", "_expiry")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self._name = name
        self._attributes = attributes
        #: (before id, between id and expiry, after expiry) for a permanent cookie, and
        #: (before id, after id) for a browser-session cookie; None: use dump_cookie
        self._parts = (
            self._split(dump_cookie(name, _SID_MARK, expires=_EXPIRES_MARK, **attributes)),
            self._split(dump_cookie(name, _SID_MARK, **attributes)),
        )
        self._expiry: tuple[int, str] = (0, "")  # (expiry second, its http date)

    def _split(self, rendered: str) -> tuple[str, ...] | None:
        head, found, tail = rendered.partition(_SID_MARK)
        if not found or _SID_MARK in tail or _SID_MARK in head:
            return None
        if _EXPIRES_MARK in tail:
            between, _, after = tail.partition(_EXPIRES_MARK)
            return (head, between, after)
        return (head, tail)

    def header(self, sid: str, lifetime: float | None) -> str:
        """The header value setting the cookie to ``sid``, expiring ``lifetime`` seconds
        from now (None: when the browser closes). ``sid`` needs no quoting (it is a
        checked URL-safe id)."""
        parts = self._parts[0 if lifetime is not None else 1]
        if parts is None or len(sid) + 64 + sum(map(len, parts)) > _MAX_SIZE:
            expires = time.time() + lifetime if lifetime is not None else None
            return dump_cookie(self._name, sid, expires=expires, **self._attributes)
        if lifetime is None:
            return f"{parts[0]}{sid}{parts[1]}"
        second = int(time.time() + lifetime)
        cached_second, expires_text = self._expiry
        if second != cached_second:
            expires_text = http_date(second)
            self._expiry = (second, expires_text)  # one tuple: readers see a matching pair
        return f"{parts[0]}{sid}{parts[1]}{expires_text}{parts[2]}"
