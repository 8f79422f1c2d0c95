"""Issue 4, point 5: a cleared or reset session is not brought back by a slower request.

A request that loaded the session before a clear (or the service's reset) and saves after
it must not write the old state back, with the per-session lock on (the clear waits for
the slow request, then clears) and off (``SESSION_LOCKING=false``: the clear goes first and
the slow request's save merges only its own changes, and never re-creates a session that is
gone). Real granian, both stores.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability import httpkit
from tests.reliability.conftest import DEMO_APP, SLOW_SERVICE_APP, needs_service

LOCKING = ["true", "false"]


@pytest.mark.parametrize("locking", ["true", "false"])
def test_cleared_session_is_not_brought_back_by_a_slower_request(
    granian_server, store_env, locking
):
    """A slow /set that loaded the session before a /clear must not re-create it.

    With locking the clear waits for the slow request and then clears; without it the
    clear deletes at once and the slow request's save finds the session gone (it never
    creates one it did not start with).
    """
    env = {**store_env, "FLASK_SESSION_LOCKING": locking, "FLASK_SESSION_LOCK_TIMEOUT": "5"}
    server = granian_server(DEMO_APP, env=env, workers=2, threads=4)
    created = httpkit.request(server.url, "POST", "/set/a?value=1")
    cookie = f"session={created.cookie('session')}"

    slow = httpkit.PendingRequest(server.url).send("POST", "/set/b?value=2&delay=1", cookie=cookie)
    time.sleep(0.3)
    cleared = httpkit.request(server.url, "POST", "/clear", cookie=cookie)
    slow_reply = slow.reply()
    assert cleared.status == 200 and slow_reply.status == 200, (cleared, slow_reply)
    after = httpkit.request(server.url, "GET", "/get", cookie=cookie)
    assert after.json() == {}, f"the cleared session came back: {after.json()}"
    if locking == "true":
        assert cleared.elapsed > 0.5, "the clear did not wait for the slow request's lock"


@pytest.mark.parametrize("locking", LOCKING)
@pytest.mark.parametrize(
    ("slow_method", "slow_path", "accept"),
    [
        ("POST", "/inc", "application/json"),  # increments, then is slow before its save
        ("GET", "/", "text/html"),  # reads the counter (loads the session), then is slow
    ],
)
def test_reset_counter_is_not_brought_back_by_a_slower_request(
    granian_server, store_env, locking, slow_method, slow_path, accept
):
    """The service's POST /reset against a request that started before it and ends after.

    The slow request is the service's own route held between its view and its session
    save (tests/reliability/slow_service.py). Whatever the order the store applied them
    in, the reset's 0 is not overwritten by the counter the slow request saw: afterwards
    the counter is 0, or 1 if the slow increment was applied after the reset (with the
    lock it cannot be: it was applied before, since it never waited).
    """
    needs_service()
    env = {**store_env, "FLASK_SESSION_LOCKING": locking, "FLASK_SESSION_LOCK_TIMEOUT": "5"}
    server = granian_server(SLOW_SERVICE_APP, env=env, workers=2, threads=4)
    first = httpkit.request(server.url, "POST", "/inc")
    cookie = f"session={first.cookie('session')}"
    for _ in range(4):
        httpkit.request(server.url, "POST", "/inc", cookie=cookie)
    assert httpkit.request(server.url, "GET", "/counter", cookie=cookie).json() == {"counter": 5}

    slow = httpkit.PendingRequest(server.url).send(
        slow_method, slow_path, cookie=cookie, headers={"X-Test-Delay": "1", "Accept": accept}
    )
    try:
        time.sleep(0.3)
        reset = httpkit.request(server.url, "POST", "/reset", cookie=cookie)
        slow_reply = slow.reply()
    finally:
        slow.close()
    assert reset.status == 200 and reset.json() == {"counter": 0}
    assert slow_reply.status == 200, slow_reply
    if slow_path == "/inc":
        assert slow_reply.json() == {"counter": 6}  # it incremented before the reset
    after = httpkit.request(server.url, "GET", "/counter", cookie=cookie).json()
    assert after == {"counter": 0}, f"the reset was undone: {after}"
    assert httpkit.request(server.url, "POST", "/inc", cookie=cookie).json() == {"counter": 1}
    if slow_path == "/":
        # The page is a read-only view: it holds no lock, so the reset never waits for it.
        assert reset.elapsed < 0.5, "the reset waited for a read-only page"
