"""``/healthz`` tells the truth: 503 with the reason while the store refuses writes.

The session directory is a real tmpfs (tests/reliability/conftest.py), filled until
ENOSPC or remounted read-only. A store that still answers reads but refuses writes is
not healthy: a load balancer must stop sending the requests that would get 503.
The Redis side (OOM, READONLY, MISCONF) is in the Redis store's condition tests.
"""

from __future__ import annotations

from sessionapp import create_app
from tests.reliability.conftest import Mount


def health(app) -> tuple[int, dict, str | None, list[str]]:
    response = app.test_client().get("/healthz")
    return (
        response.status_code,
        response.get_json(),
        response.headers.get("Retry-After"),
        response.headers.getlist("Set-Cookie"),
    )


def test_healthz_is_503_with_the_reason_while_the_disk_is_full_or_read_only(
    small_tmpfs: Mount, in_process_app
):
    session_dir = small_tmpfs.path / "sessions"
    app = in_process_app(create_app, {"TESTING": True, "SESSION_FILE_DIR": str(session_dir)})
    client = app.test_client()
    client.post("/inc")
    assert health(app) == (200, {"status": "ok", "store": "filesystem"}, None, [])

    small_tmpfs.fill()
    status, body, retry_after, cookies = health(app)
    assert (status, body) == (
        503,
        {
            "status": "unavailable",
            "store": "filesystem",
            "reason": "the session store's disk is full",
        },
    )
    assert retry_after == "1" and cookies == []
    assert client.get("/counter").get_json() == {"counter": 1}  # reads still work
    assert client.post("/inc").status_code == 503  # as healthz said

    small_tmpfs.free()
    assert health(app)[0] == 200

    small_tmpfs.remount("ro")
    try:
        status, body, retry_after, _ = health(app)
        assert (status, body["reason"], retry_after) == (
            503,
            "the session store is read-only",
            "1",
        )
    finally:
        small_tmpfs.remount("rw")
    assert health(app)[0] == 200
    assert client.post("/inc").get_json() == {"counter": 2}


def test_healthz_never_touches_the_session(tmp_path, in_process_app):
    session_dir = tmp_path / "sessions"
    app = in_process_app(create_app, {"TESTING": True, "SESSION_FILE_DIR": str(session_dir)})
    client = app.test_client()
    client.post("/inc")
    (session_file,) = [path for path in session_dir.iterdir() if path.suffix == ".session"]
    expires = session_file.stat().st_mtime_ns
    for _ in range(3):
        response = client.get("/healthz")
        assert response.status_code == 200 and response.headers.getlist("Set-Cookie") == []
    assert session_file.stat().st_mtime_ns == expires  # not even refreshed
    assert sorted(path.name for path in session_dir.iterdir()) == [session_file.name]
