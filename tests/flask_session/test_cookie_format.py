"""The pre-rendered ``Set-Cookie`` header is, character for character, Werkzeug's own.

``flask_session/cookies.py`` renders the header once per setting with ``dump_cookie`` and
fills in the id and expiry per response. Whatever the cookie settings, the result must be
exactly what ``dump_cookie`` would have written on that response.
"""

from __future__ import annotations

import itertools
import time

import pytest
from werkzeug.http import dump_cookie

from flask_session.cookies import CookieFormat

SID = "Zm9vYmFyLWJhei1xdXV4LTEyMzQ1Njc4OTAtYWJjZGVm"

DOMAINS = [None, "example.org", ".example.org", "bücher.example"]
PATHS = ["/", "/app", "/a b"]
SAMESITES = [None, "Lax", "Strict", "None"]
LIFETIMES = [None, 0, 0.5, 3600, 31 * 24 * 3600]


def expected(name: str, attributes: dict, lifetime: float | None) -> tuple[str, int]:
    """dump_cookie's header for an expiry ``lifetime`` s from now, and the second it used."""
    now = time.time()
    expires = now + lifetime if lifetime is not None else None
    return dump_cookie(name, SID, expires=expires, **attributes), int(now)


@pytest.mark.parametrize("lifetime", LIFETIMES)
@pytest.mark.parametrize("samesite", SAMESITES)
def test_header_matches_dump_cookie_for_every_setting(samesite, lifetime):
    for domain, path, secure, httponly, partitioned in itertools.product(
        DOMAINS, PATHS, [False, True], [False, True], [False, True]
    ):
        attributes = dict(
            domain=domain, path=path, secure=secure, httponly=httponly,
            samesite=samesite, partitioned=partitioned,
        )  # fmt: skip
        cookie = CookieFormat("session", attributes)
        for _ in range(3):  # redo when the clock crossed a second between the two
            want, second = expected("session", attributes, lifetime)
            got = cookie.header(SID, lifetime)
            if int(time.time()) == second:
                break
        assert got == want, attributes


def test_a_header_past_the_size_limit_is_left_to_dump_cookie():
    """dump_cookie warns about (and browsers drop) cookies over 4093 bytes: the fast path
    hands such a header back to it, so the warning still reaches the app's log."""
    with pytest.warns(UserWarning, match="cookie is too large"):
        cookie = CookieFormat("session", {"domain": None, "path": "/" + "p" * 4100})
    with pytest.warns(UserWarning, match="cookie is too large"):
        header = cookie.header(SID, 60)
    assert header.startswith(f"session={SID}; Expires=")


def test_expiry_moves_with_the_clock():
    cookie = CookieFormat("session", {"path": "/"})
    first = cookie.header(SID, 10)
    later = cookie.header(SID, 10 + 86400)
    assert first != later
    assert later == dump_cookie("session", SID, expires=time.time() + 10 + 86400, path="/")
