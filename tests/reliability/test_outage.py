"""Issue 4, point 1: a store outage while the service runs under granian, on every
store with a server to stop (Redis, PostgreSQL, memcached).

The store's server is stopped under a running service (2 workers x 4 threads, the repository's
sessionapp.serve, whose logging is production logging): every request
that needs the store answers 503 with a clear message and Retry-After, never a 500 or a
traceback, including requests that loaded their session before the outage and fail when
saving it. Once the server is back the same workers answer 200 within a second, and the
log names the outage once per worker (and per store client), not once per request.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest

from tests.reliability import httpkit
from tests.reliability.conftest import SLOW_SERVICE_APP, needs_service
from tests.support.kits import KITS

WORKERS = 2
ROUNDS = 6  # each store-backed request is sent this often during the outage
RECOVERY_LIMIT_S = 1.0

# (method, path, Accept, needs the store even without a session cookie): every route
# that uses the store. Reading or resetting the counter of a client without a session
# needs no store (the answer is 0), so those may answer 200 then.
STORE_REQUESTS = [
    ("POST", "/inc", "application/json", True),
    ("POST", "/dec", "application/json", True),
    ("POST", "/reset", "application/json", False),
    ("GET", "/counter", "application/json", False),
    ("POST", "/shared/inc", "application/json", True),
    ("GET", "/shared", "application/json", True),
    ("GET", "/", "text/html", True),  # shows the shared counter
    ("POST", "/inc", "text/html", True),  # a browser's form post
]

UNAVAILABLE_LINE = re.compile(r"\[(\d+)\] \[ERROR\] (.+?) is unavailable")
AVAILABLE_AGAIN_LINE = re.compile(r"\[(\d+)\] \[WARNING\] (.+?) is available again")
ACCESS_STATUS = re.compile(r'" (\d{3}) ')


def assert_clean_503(reply: httpkit.Reply, what: str) -> None:
    """503, Retry-After in whole seconds, a plain message, no traceback or internals."""
    assert reply.status == 503, f"{what}: {reply.status} {reply.text[:300]}"
    assert re.fullmatch(r"\d+", reply.header("Retry-After") or ""), f"{what}: no Retry-After"
    assert "Traceback" not in reply.text and 'File "' not in reply.text, what
    assert "redis://" not in reply.text and "127.0.0.1" not in reply.text, what
    if (reply.header("Content-Type") or "").startswith("application/json"):
        body = reply.json()
        if what.startswith("GET /healthz"):
            assert body["status"] != "ok", body
            return
        message = body["error"]
        assert "unavailable" in message.lower() or "try again" in message.lower(), message
    else:
        assert "unavailable" in reply.text.lower(), reply.text[:300]


def test_store_outage_answers_503_and_recovers_without_restart(
    granian_server, store_server, store_env
):
    needs_service()
    env = {**store_env, "FLASK_SESSION_LOCK_TIMEOUT": "2"}
    server = granian_server(
        SLOW_SERVICE_APP,
        env=env,
        workers=WORKERS,
        threads=4
    )
    workers_before = server.worker_pids()

    # Before: a client with a counter, and the shared counter in use.
    first = httpkit.request(server.url, "POST", "/inc")
    cookie = f"session={first.cookie('session')}"
    for _ in range(2):
        assert httpkit.request(server.url, "POST", "/inc", cookie=cookie).status == 200
    assert httpkit.request(server.url, "POST", "/shared/inc").status == 200
    reader = httpkit.request(server.url, "POST", "/inc")
    reader_cookie = f"session={reader.cookie('session')}"

    # Requests that load their session now and save it after the store is gone: /reset
    # writes (counter 3 -> 0) and must fail cleanly; the page only reads (a read-only
    # view: no lock to release, nothing to save), so it answers from what it read.
    slow_reset = httpkit.PendingRequest(server.url).send(
        "POST", "/reset", cookie=cookie, headers={"X-Test-Delay": "1.5"}
    )
    slow_page = httpkit.PendingRequest(server.url).send(
        "GET", "/", cookie=reader_cookie, headers={"X-Test-Delay": "1.5", "Accept": "text/html"}
    )
    try:
        time.sleep(0.5)
        store_server.stop()

        during = []
        for _ in range(ROUNDS):
            for method, path, accept, always in STORE_REQUESTS:
                for with_cookie in (cookie, None):
                    reply = httpkit.request(
                        server.url, method, path, cookie=with_cookie, headers={"Accept": accept}
                    )
                    what = f"{method} {path} ({accept}, cookie={bool(with_cookie)})"
                    if with_cookie or always:
                        during.append((what, reply))
                    else:
                        assert reply.status == 200 and reply.json() == {"counter": 0}, what
            during.append(("GET /healthz", httpkit.request(server.url, "GET", "/healthz")))
        for what, reply in during:
            assert_clean_503(reply, what)
        assert during[-1][1].json()["status"] != "ok"
        # What needs no store keeps working.
        assert httpkit.request(server.url, "GET", "/static/style.css").status == 200
        assert httpkit.request(server.url, "GET", "/nowhere").status == 404

        assert_clean_503(slow_reset.reply(), "slow POST /reset, session loaded before the outage")
        page = slow_page.reply()
        assert page.status == 200 and 'id="counter"' in page.text, page

    finally:
        slow_reset.close()
        slow_page.close()

    # Back: same port, same workers, no restart.
    store_server.start()
    back_at = time.monotonic()
    recovered = None
    while time.monotonic() - back_at < 5:
        if httpkit.request(server.url, "GET", "/healthz").status == 200:
            recovered = time.monotonic() - back_at
            break
        time.sleep(0.02)
    print(f"\n/healthz answered 200 {recovered} s after the store's server was back")
    assert recovered is not None and recovered < RECOVERY_LIMIT_S
    after = [
        httpkit.request(server.url, method, path, cookie=cookie, headers={"Accept": accept})
        for _ in range(3)
        for method, path, accept, _ in STORE_REQUESTS
    ]
    assert [reply.status for reply in after if reply.status not in (200, 303)] == []
    assert time.monotonic() - back_at < RECOVERY_LIMIT_S + 5
    assert server.worker_pids() == workers_before, "workers were restarted"

    # The log: one ERROR per worker and store client when the outage began, one WARNING
    # when it ended, whatever the number of failed requests (over 100 here).
    log = server.log_text()
    down = Counter(UNAVAILABLE_LINE.findall(log))
    up = Counter(AVAILABLE_AGAIN_LINE.findall(log))
    print("outage lines:", dict(down), "recovery lines:", dict(up))
    assert down, f"the outage was not logged:\n{server.log_tail(40)}"
    assert all(count == 1 for count in down.values()), dict(down)
    assert {pid for pid, _ in down} <= {str(pid) for pid in workers_before}
    assert set(up) <= set(down) and all(count == 1 for count in up.values()), dict(up)

    # A second outage is a new outage: logged again, once.
    store_server.stop()
    for _ in range(ROUNDS):
        for method, path, accept, _ in STORE_REQUESTS:
            reply = httpkit.request(server.url, method, path, headers={"Accept": accept})
            assert reply.status in (200, 503), reply
    store_server.start()
    for _ in range(10):
        httpkit.request(server.url, "POST", "/shared/inc")
        httpkit.request(server.url, "POST", "/inc", cookie=cookie)
    log = server.log_text()
    down_twice = Counter(UNAVAILABLE_LINE.findall(log))
    print("after a second outage:", dict(down_twice))
    assert all(count <= 2 for count in down_twice.values()), dict(down_twice)
    assert sum(down_twice.values()) > sum(down.values())
    assert "Traceback" not in log, server.log_tail(60)
    statuses = Counter(ACCESS_STATUS.findall(log))  # the launcher logs every request
    if statuses:
        assert not [code for code in statuses if code[0] == "5" and code != "503"], statuses
        assert statuses["503"] >= len(during)


def test_503_body_is_the_documented_json_shape(granian_server, store_server, store_env):
    """API clients get ``{"error": "..."}`` and nothing else on an outage."""
    needs_service()
    server = granian_server(SLOW_SERVICE_APP, env=store_env, workers=1, threads=2)
    store_server.stop()
    try:
        reply = httpkit.request(server.url, "POST", "/inc")
    finally:
        store_server.start()
    assert_clean_503(reply, "POST /inc")
    assert set(json.loads(reply.body)) == {"error"}


@pytest.fixture(params=[name for name, kit in KITS.items() if kit.server_fixture])
def store_type(request: pytest.FixtureRequest) -> str:
    """The stores whose outage is a stopped server (disk trouble: test_disk_full; a busy
    SQLite file: tests/flask_session/test_sql_and_memcached_stores.py)."""
    return request.param
