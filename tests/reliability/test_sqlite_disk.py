"""Issue 19, item 2: SQLite that survives its disk.

On real SQLite files: the write-ahead log stays bounded; on a small tmpfs the test
mounts, a full disk gives 503s that say so (never 500), reads go on, /healthz reports
it, and the service recovers once space is freed, without a restart; a database file
deleted or replaced under the running service gives 503s naming the cause and a log
line, and nothing is acknowledged that went to a file that is gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from flask_session.errors import StoreUnavailable
from flask_session.stores.sqlalchemy_setup import JOURNAL_SIZE_LIMIT, WAL_AUTOCHECKPOINT_PAGES
from tests.flask_session.demo_app import create_app as create_demo_app
from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP, Mount, mounted_tmpfs, needs_service
from tests.reliability.test_disk_full import assert_503, counters, make_clients

#: room for the database, a full write-ahead log (1 MiB) and its index, and the filler
VOLUME = "4m"
#: SQLite's default page size, and a log frame's header
PAGE_SIZE, FRAME_HEADER = 4096, 24
#: the log's high-water mark the docs promise: a checkpoint starts once it holds
#: WAL_AUTOCHECKPOINT_PAGES (1 MiB), after the commit that crossed the line
WAL_BOUND = JOURNAL_SIZE_LIMIT + 256 * 1024
#: requests enough to fill a full disk's remaining log space (bounded: the test fails
#: rather than loops if the disk never refuses)
MAX_WRITES_TO_FULL = 2000


@pytest.fixture
def sqlite_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """A VOLUME tmpfs for a SQLite database, unmounted at teardown."""
    yield from mounted_tmpfs(tmp_path, VOLUME)


def sqlite_env(database: Path) -> dict[str, str]:
    return {
        "FLASK_SESSION_TYPE": "sqlalchemy",
        "FLASK_SESSION_SQLALCHEMY_URL": f"sqlite:///{database}",
    }


def wal_size(database: Path) -> int:
    wal = Path(f"{database}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_write_ahead_log_stays_bounded(app_builder, tmp_path: Path) -> None:
    database = tmp_path / "sessions.db"
    config = {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": f"sqlite:///{database}"}
    app = app_builder(create_demo_app, config)
    clients = [app.test_client() for _ in range(20)]
    largest = 0
    # Each request takes a lease, writes the session's row and drops the lease: about 6
    # pages each, 1800 in all: with SQLite's default threshold (1000 pages, 4 MiB) the
    # log would pass the bound.
    for number in range(300):
        client = clients[number % len(clients)]
        assert client.post(f"/set/k{number % 7}?value={'v' * 200}{number}").status_code == 200
        largest = max(largest, wal_size(database))
    assert 0 < largest <= WAL_BOUND, f"write-ahead log reached {largest:,} bytes"
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert WAL_AUTOCHECKPOINT_PAGES * (PAGE_SIZE + FRAME_HEADER) < WAL_BOUND


def test_a_full_disk_answers_503_and_recovers_when_space_is_freed(
    sqlite_tmpfs: Mount, granian_server
) -> None:
    needs_service()
    database = sqlite_tmpfs.path / "sessions.db"
    server = granian_server(SERVICE_APP, env=sqlite_env(database), workers=2, threads=2)
    cookies = make_clients(server)
    before = counters(server, cookies)
    assert before == [1, 2, 3, 4, 5]

    sqlite_tmpfs.fill()
    # New sessions are new rows: once the log has no room left to grow, writes fail.
    writes = 0
    reply = httpkit.request(server.url, "POST", "/inc")
    while reply.status == 200 and writes < MAX_WRITES_TO_FULL:
        writes += 1
        reply = httpkit.request(server.url, "POST", "/inc")
    assert_503(reply, f"new client POST /inc after {writes} writes", "disk is full")
    health = httpkit.request(server.url, "GET", "/healthz")
    assert health.status == 503 and "disk is full" in health.json()["reason"], health.text
    # Reading needs no space: every client still reads its counter.
    assert counters(server, cookies) == before

    sqlite_tmpfs.free()
    assert httpkit.request(server.url, "GET", "/healthz").status == 200
    for number, cookie in enumerate(cookies):  # counting goes on, nothing lost or doubled
        reply = httpkit.request(server.url, "POST", "/inc", cookie=cookie)
        assert reply.status == 200 and reply.json() == {"counter": number + 2}, reply
    assert httpkit.request(server.url, "POST", "/inc").json() == {"counter": 1}
    log = server.log_text()
    assert "database or disk is full" in log
    assert "disk full; checkpoint" in log  # the one TRUNCATE tried
    assert "Traceback" not in log
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def wait_until_every_worker_holds(server, path: Path, timeout: float = 20.0) -> None:
    """Wait until each of the server's workers has ``path`` open (psutil's open files)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = server.wait_for_workers()
        holding = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                opened = {item.path for item in psutil.Process(pid).open_files()}
                holding.append(str(path) in opened)
        if holding and all(holding) and len(holding) == len(pids):
            return
        assert time.monotonic() < deadline, f"not every worker opened {path}: {holding}"
        time.sleep(0.05)


def test_a_deleted_database_file_answers_503_never_200(tmp_path: Path, granian_server) -> None:
    needs_service()
    database = tmp_path / "sessions.db"
    server = granian_server(SERVICE_APP, env=sqlite_env(database), workers=2, threads=2)
    cookies = make_clients(server)
    # Every worker has the file open before it goes: a worker that starts after the rm
    # makes a new, empty database at the path (a fresh start, not this test's case).
    wait_until_every_worker_holds(server, database)

    database.unlink()  # as an operator's rm would: the workers still hold it open
    # Several rounds, so that every worker and pooled connection meets it.
    for _ in range(3):
        for cookie in cookies:
            for method, path in (("POST", "/inc"), ("GET", "/counter")):
                reply = httpkit.request(server.url, method, path, cookie=cookie)
                assert_503(reply, f"{method} {path}", "session database file")
        new_client = httpkit.request(server.url, "POST", "/inc")
        assert_503(new_client, "new client POST /inc", "session database file")
        health = httpkit.request(server.url, "GET", "/healthz")
        assert health.status == 503 and "database file" in health.json()["reason"]
    assert not database.exists(), "a new, empty database was made in its place"
    log = server.log_text()
    assert f"{database} was deleted while in use" in log
    assert "Traceback" not in log


def test_a_replaced_database_file_answers_503_and_is_left_alone(
    app_builder, tmp_path: Path
) -> None:
    database = tmp_path / "sessions.db"
    config = {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": f"sqlite:///{database}"}
    app = app_builder(create_demo_app, config)
    client = app.test_client()
    assert client.post("/set/a?value=1").status_code == 200

    # A restore: another copy renamed over the path while the app has the old one open.
    with sqlite3.connect(database) as source, sqlite3.connect(tmp_path / "copy.db") as copy:
        source.backup(copy)
    os.replace(tmp_path / "copy.db", database)
    restored = database.read_bytes()

    for _ in range(2):
        reply = client.post("/set/b?value=2")
        assert reply.status_code == 503 and "replaced" in reply.get_data(as_text=True)
    with pytest.raises(StoreUnavailable, match="was replaced while in use") as raised:
        app.session_interface.store.ping()
    assert raised.value.reason == "the session database file was replaced"
    assert database.read_bytes() == restored, "the store wrote into the restored file"


def test_nothing_written_after_the_file_is_gone_is_acknowledged(
    app_builder, tmp_path: Path
) -> None:
    """The check runs after each commit: a commit into the deleted file (its connection
    was open before the delete) is answered 503, and the file is never recreated."""
    database = tmp_path / "sessions.db"
    moved = tmp_path / "moved.db"
    config = {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": f"sqlite:///{database}"}
    app = app_builder(create_demo_app, config)
    client = app.test_client()
    assert client.post("/set/a?value=1").status_code == 200
    os.rename(database, moved)  # gone from the path; the open connections still write it
    for path in ("/set/b?value=2", "/incr/n", "/clear"):
        assert client.post(path).status_code == 503
    assert client.get("/get").status_code == 503
    assert not database.exists()
