"""``session.save_and_release()``: a long view saves early and stops holding the session's
lock, so the same user's other requests go ahead (real granian workers, every store)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.flask_session.test_concurrency import DEMO_APP, new_client

#: how long the slow view sleeps; its lock (without the early release) is held this long
SLOW = 2.0
#: bound of the wait for the slow view to get the session, in seconds
MARK_WAIT = 10.0


@pytest.fixture
def server(granian_server, store_env):
    # SESSION_LOCKING=true: every request that reads the session takes its lock, the
    # case the early release is for.
    env = {**store_env, "FLASK_SESSION_LOCKING": "true"}
    return granian_server(DEMO_APP, env=env, workers=1, threads=4)


def post(server, cookie, path):
    with requests.Session() as client:
        client.cookies.set("session", cookie)
        return client.post(server.url + path, timeout=30)


def get_session(server, cookie):
    with requests.Session() as client:
        client.cookies.set("session", cookie)
        return client.get(server.url + "/get", timeout=10).json()


def wait_for_mark(mark):
    """Wait (at most MARK_WAIT seconds) until a view sent ``?mark=`` has created the file."""
    deadline = time.monotonic() + MARK_WAIT
    while not mark.exists():
        assert time.monotonic() < deadline, "the slow view never got the session"
        time.sleep(0.02)


def finished(mark):
    """Whether the view sent ``?mark=`` has returned (it creates ``<mark>.done`` then)."""
    return Path(f"{mark}.done").exists()


def run_beside_slow_view(server, slow_path, mark):
    """Start ``slow_path`` on one cookie; once it has the session, POST /rmw/n on the same
    cookie. Returns (slow response, /rmw response, whether /rmw finished while the slow
    view was still running, the cookie)."""
    cookie = new_client(server).cookies["session"]
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(post, server, cookie, f"{slow_path}&mark={mark}")
        wait_for_mark(mark)
        fast = post(server, cookie, "/rmw/n")
        overlapped = not finished(mark)
        return slow.result(), fast, overlapped, cookie


def test_a_released_session_does_not_hold_up_the_users_other_requests(server, tmp_path):
    slow, fast, overlapped, cookie = run_beside_slow_view(
        server, f"/release-early/a?value=A&delay={SLOW}", tmp_path / "started"
    )
    assert fast.status_code == 200 and fast.json() == {"value": 1}
    assert overlapped, "the read-modify-write waited for the released view"
    assert slow.status_code == 200
    body = slow.json()
    assert body["value"] == "A"  # reads after the release still work
    assert "save_and_release()" in body["refused"]  # the late write was refused
    # the write before the release is kept; the refused one never reached the store
    assert get_session(server, cookie) == {"a": "A", "init": "x", "n": 1}


def test_without_the_release_the_slow_view_holds_the_lock(server, tmp_path):
    # The control: the same slow view without the early release keeps the other
    # request waiting until it has saved, so the test above can tell the two apart.
    slow, fast, overlapped, cookie = run_beside_slow_view(
        server, f"/set/a?value=A&delay={SLOW}", tmp_path / "started"
    )
    assert (slow.status_code, fast.status_code) == (200, 200)
    assert not overlapped
    assert get_session(server, cookie) == {"a": "A", "init": "x", "n": 1}
