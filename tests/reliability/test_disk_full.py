"""Issue 4, point 3: a full disk or a read-only session directory (filesystem store).

The session directory is on a real tmpfs the test mounts (512 KiB): filled up with a
file until the kernel says ENOSPC, or remounted read-only. The service runs under
granian on it. Requests that must write answer 503 (never 500), sessions already on
disk stay intact, and the service recovers as soon as space returns or the mount is
writable again, without a restart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.flask_session.demo_app import create_app as create_demo_app
from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP, Mount, needs_service
from tests.support.kits.filesystem import session_files

CLIENTS = 5


def start_service(granian_server, session_dir: Path):
    needs_service()
    env = {"FLASK_SESSION_TYPE": "filesystem", "FLASK_SESSION_FILE_DIR": str(session_dir)}
    return granian_server(SERVICE_APP, env=env, workers=2, threads=2)


def make_clients(server) -> list[str]:
    """CLIENTS sessions; client i has counter i + 1. Returns their Cookie headers."""
    cookies = []
    for number in range(CLIENTS):
        reply = httpkit.request(server.url, "POST", "/inc")
        cookie = f"session={reply.cookie('session')}"
        for _ in range(number):
            assert httpkit.request(server.url, "POST", "/inc", cookie=cookie).status == 200
        cookies.append(cookie)
    return cookies


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def counters(server, cookies: list[str]) -> list[int]:
    return [
        httpkit.request(server.url, "GET", "/counter", cookie=cookie).json()["counter"]
        for cookie in cookies
    ]


def assert_503(reply: httpkit.Reply, what: str, reason: str) -> None:
    """A clean 503 whose message names the reason, and nothing internal (no path)."""
    assert reply.status == 503, f"{what}: {reply.status} {reply.text[:200]}"
    assert reply.header("Retry-After"), what
    assert "Traceback" not in reply.text
    message = reply.json()["error"]
    assert reason in message, f"{what}: {message!r}"
    assert "/" not in message, f"{what}: {message!r}"


def test_disk_full_answers_503_keeps_sessions_and_recovers(small_tmpfs: Mount, granian_server):
    session_dir = small_tmpfs.path / "sessions"
    server = start_service(granian_server, session_dir)
    cookies = make_clients(server)
    assert httpkit.request(server.url, "POST", "/shared/inc").json() == {"counter": 1}
    before = snapshot(session_dir)

    small_tmpfs.fill()
    # Anything that must create or rewrite a session file (temp file + rename) fails.
    assert_503(httpkit.request(server.url, "POST", "/inc"), "new client POST /inc", "disk is full")
    for cookie in cookies:
        assert_503(
            httpkit.request(server.url, "POST", "/inc", cookie=cookie), "POST /inc", "disk is full"
        )
        assert_503(
            httpkit.request(server.url, "POST", "/dec", cookie=cookie), "POST /dec", "disk is full"
        )
    health = httpkit.request(server.url, "GET", "/healthz")
    assert health.status == 503 and health.json()["status"] != "ok"
    # Reading needs no space: every client still reads its own, unchanged counter.
    assert counters(server, cookies) == [n + 1 for n in range(CLIENTS)]
    page = httpkit.request(server.url, "GET", "/", cookie=cookies[2],
                           headers={"Accept": "text/html"})  # fmt: skip
    assert page.status == 200 and re.search(r'id="counter"[^>]*>\s*3\s*<', page.text)
    # The shared counter is rewritten in place (no new block needed): 200 is right too.
    shared = httpkit.request(server.url, "POST", "/shared/inc")
    assert shared.status in (200, 503)

    after = snapshot(session_dir)
    assert {name for name in after if name.endswith(".tmp")} == set(), "temp files left"
    assert {n: b for n, b in after.items() if n.endswith(".session")} == {
        n: b for n, b in before.items() if n.endswith(".session")
    }, "a session file changed while the disk was full"
    log = server.log_text()
    assert "No space left on device" in log
    assert len(re.findall(r"session directory .* is unavailable", log)) <= 2  # per worker
    assert "Traceback" not in log

    small_tmpfs.free()
    assert httpkit.request(server.url, "GET", "/healthz").status == 200
    # The increments that got a 503 were not applied; counting goes on from there.
    for number, cookie in enumerate(cookies):
        reply = httpkit.request(server.url, "POST", "/inc", cookie=cookie)
        assert reply.json() == {"counter": number + 2}
    assert httpkit.request(server.url, "POST", "/inc").json() == {"counter": 1}
    assert len(session_files(session_dir)) == CLIENTS + 1


def test_read_only_session_directory_answers_503_and_recovers(small_tmpfs: Mount, granian_server):
    session_dir = small_tmpfs.path / "sessions"
    server = start_service(granian_server, session_dir)
    cookies = make_clients(server)
    before = snapshot(session_dir)

    small_tmpfs.remount("ro")
    try:
        new_client = httpkit.request(server.url, "POST", "/inc")
        assert_503(new_client, "new client POST /inc", "read-only")
        assert_503(
            httpkit.request(server.url, "POST", "/shared/inc"), "POST /shared/inc", "read-only"
        )
        for number, cookie in enumerate(cookies):
            reply = httpkit.request(server.url, "POST", "/inc", cookie=cookie)
            assert_503(reply, "POST /inc", "read-only")
            # Reads still work: pushing the expiry out is best-effort.
            reply = httpkit.request(server.url, "GET", "/counter", cookie=cookie)
            assert reply.status == 200 and reply.json() == {"counter": number + 1}, reply
        assert httpkit.request(server.url, "GET", "/healthz").status == 503
        assert snapshot(session_dir) == before
    finally:
        small_tmpfs.remount("rw")

    log = server.log_text()
    assert "Read-only file system" in log and "Traceback" not in log
    assert httpkit.request(server.url, "GET", "/healthz").status == 200
    for number, cookie in enumerate(cookies):
        reply = httpkit.request(server.url, "POST", "/inc", cookie=cookie)
        assert reply.json() == {"counter": number + 2}


def test_flask_session_default_503_says_the_disk_is_full_or_read_only(small_tmpfs: Mount):
    """flask_session's own 503 handler (apps without one) names the cause in plain words.

    The counter service says the same in its JSON (tested above); this is the library's
    default handler, for apps without their own.
    """
    app = create_demo_app({"TESTING": True, "SESSION_FILE_DIR": str(small_tmpfs.path / "s")})
    client = app.test_client()
    client.post("/set/a?value=1")
    small_tmpfs.fill()
    full = client.post("/set/b?value=2")
    assert full.status_code == 503 and "disk is full" in full.text
    assert full.headers["Retry-After"]
    small_tmpfs.free()
    small_tmpfs.remount("ro")
    try:
        read_only = client.post("/set/b?value=2")
    finally:
        small_tmpfs.remount("rw")
    assert read_only.status_code == 503 and "read-only" in read_only.text
    assert client.post("/set/b?value=2").json == {"a": "1", "b": "2"}
