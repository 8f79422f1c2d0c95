"""Issue 4, point 6: a bounded soak of the service on each server (granian, gunicorn), every store.

SOAK_REQUESTS requests per store and server (default 15,000: 30,000 per store) over
SOAK_SESSIONS sessions (default 200) from 8 client threads on keep-alive connections; each
thread owns its sessions, so every single answer can be checked exactly (``/inc`` answers
the previous value + 1, and so on). Afterwards: no errors, exact counters, unique shared
numbers, the same worker processes with flat memory (RSS of each worker after
warm-up and at the end, printed), and, after ``flask session cleanup`` (filesystem), a
session directory that holds only the live sessions (the same command also runs twice in
the middle of the load, as cron would, and must remove nothing). Bounded in time as well
(SOAK_TIME_LIMIT seconds per store and server, default 75): on a slow machine the run stops there
and checks what it did.

    SOAK_REQUESTS=5000 .venv/bin/python -m pytest tests/reliability/test_soak.py -s   # quick
    SOAK_REQUESTS=60000 .venv/bin/python -m pytest tests/reliability/test_soak.py -s  # long
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.support.app_servers import REPO_ROOT
from tests.support.kits import KITS
from tests.support.kits.filesystem import counter_file_name, file_name_for
from tests.support.store_contents import names_of, stored_lock_count, stored_session_names

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "15000"))
SESSIONS = int(os.environ.get("SOAK_SESSIONS", "200"))
TIME_LIMIT_S = float(os.environ.get("SOAK_TIME_LIMIT", "75"))
THREADS = 8
WORKERS = 2
RSS_GROWTH_LIMIT_KIB = 25 * 1024  # generous: a leak of ~0.4 KiB per request would pass
WARM_UP_SHARE = 0.05
# (operation, weight): mostly increments, some decrements, reads and shared numbers
MIX = [("inc", 70), ("dec", 15), ("counter", 10), ("shared", 5)]


@dataclass
class SoakTally:
    done: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    shared_numbers: list[int] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def error(self, message: str) -> None:
        with self.guard:
            self.errors += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(message)


class KeepAliveClient:
    """One persistent connection; a failure is counted, never retried."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(httpkit.HOST, port, timeout=30)

    def send(self, method: str, path: str, cookie: str | None) -> tuple[int, dict | None]:
        headers = {"Accept": "application/json", "Content-Length": "0"}
        if cookie:
            headers["Cookie"] = cookie
        try:
            self.conn.request(method, path, headers=headers)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            self.conn = http.client.HTTPConnection(httpkit.HOST, self.port, timeout=30)
            return 0, {"error": repr(error)}
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, None

    def close(self) -> None:
        self.conn.close()


def soak(server, cookies: list[str], expected: list[int], tally: SoakTally,
         on_warm: threading.Event) -> float:  # fmt: skip
    """Run the mix; returns the seconds it took."""
    operations = [op for op, weight in MIX for _ in range(weight)]
    deadline = time.monotonic() + TIME_LIMIT_S
    warm_at = int(REQUESTS * WARM_UP_SHARE)
    per_thread = (REQUESTS - len(cookies)) // THREADS

    def client(number: int) -> None:
        rng = random.Random(number)
        mine = [i for i in range(len(cookies)) if i % THREADS == number]
        http_client = KeepAliveClient(httpkit.port_of(server.url))
        try:
            for step in range(per_thread):
                if time.monotonic() > deadline:
                    return
                index = mine[step % len(mine)]
                operation = rng.choice(operations)
                if operation == "shared":
                    status, body = http_client.send("POST", "/shared/inc", None)
                    if status == 200 and body:
                        with tally.guard:
                            tally.shared_numbers.append(body["counter"])
                    else:
                        tally.error(f"POST /shared/inc -> {status} {body}")
                else:
                    method, path, change = {
                        "inc": ("POST", "/inc", 1),
                        "dec": ("POST", "/dec", -1),
                        "counter": ("GET", "/counter", 0),
                    }[operation]
                    status, body = http_client.send(method, path, cookies[index])
                    want = expected[index] + change
                    if status == 200 and body == {"counter": want}:
                        expected[index] = want
                    else:
                        tally.error(f"{method} {path} on session {index}: want {want},"
                                    f" got {status} {body}")  # fmt: skip
                        if status == 200 and body and isinstance(body.get("counter"), int):
                            expected[index] = body["counter"]  # resync, error counted
                with tally.guard:
                    tally.done += 1
                    if tally.done == warm_at:
                        on_warm.set()
        finally:
            http_client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    on_warm.set()
    return time.monotonic() - started


@pytest.mark.slow
def test_soak(app_server, store_config, store_env, store_type, session_dir):
    needs_service()
    assert SESSIONS >= THREADS, "SOAK_SESSIONS must be at least the 8 client threads"
    server = app_server(SERVICE_APP, env=store_env, workers=WORKERS, threads=4)
    workers = server.worker_pids()
    cookies, expected = [], []
    for _ in range(SESSIONS):
        reply = httpkit.request(server.url, "POST", "/inc")
        assert reply.json() == {"counter": 1}
        cookies.append(f"session={reply.cookie('session')}")
        expected.append(1)

    tally = SoakTally(done=len(cookies))
    warm = threading.Event()
    rss_start: dict[int, int] = {}

    def sample_after_warm_up() -> None:
        warm.wait()
        rss_start.update({pid: httpkit.rss_kib(pid) for pid in workers})

    sampler = threading.Thread(target=sample_after_warm_up)
    sampler.start()
    cleanups: list[subprocess.CompletedProcess[str]] = []
    cron = None
    if KITS[store_type].expires_by_cleanup:
        # The cleanup command as cron runs it, in the middle of the load: it must never
        # take a live session (every answer is checked, so a removed one would show).
        def cron_job() -> None:
            warm.wait()
            for _ in range(2):
                cleanups.append(run_cleanup(store_env))
                time.sleep(1)

        cron = threading.Thread(target=cron_job)
        cron.start()
    elapsed = soak(server, cookies, expected, tally, warm)
    sampler.join()
    if cron is not None:
        cron.join()
        for done in cleanups:
            assert done.returncode == 0, done.stderr
            assert "Removed 0 expired session(s) and 0 stale temp file(s)" in done.stdout
    rss_end = {pid: httpkit.rss_kib(pid) for pid in workers}

    print(f"\nsoak [{server.kind}, {store_type}]: {tally.done} requests over {SESSIONS} sessions in"
          f" {elapsed:.1f} s ({tally.done / elapsed:.0f}/s), {tally.errors} errors")  # fmt: skip
    for pid in workers:
        growth = rss_end[pid] - rss_start[pid]
        print(f"  worker {pid}: RSS {rss_start[pid] / 1024:.1f} MiB after warm-up ->"
              f" {rss_end[pid] / 1024:.1f} MiB at the end ({growth:+d} KiB)")  # fmt: skip

    assert tally.errors == 0, tally.error_samples
    assert tally.done >= min(REQUESTS, 2000), "the soak did too little to mean anything"
    if tally.done < REQUESTS:
        print(f"  (stopped by SOAK_TIME_LIMIT={TIME_LIMIT_S:g} s before {REQUESTS} requests)")
    for index, cookie in enumerate(cookies):
        reply = httpkit.request(server.url, "GET", "/counter", cookie=cookie)
        assert reply.json() == {"counter": expected[index]}, index
    numbers = tally.shared_numbers
    assert len(set(numbers)) == len(numbers)
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert server.worker_pids() == workers, "a worker died or was replaced"
    for pid in workers:
        assert rss_end[pid] - rss_start[pid] < RSS_GROWTH_LIMIT_KIB, (rss_start, rss_end)
    assert "Traceback" not in server.log_text()

    sids = {cookie.split("=", 1)[1] for cookie in cookies}
    if store_type == "filesystem":
        check_cleanup_leaves_only_live_sessions(server, store_env, session_dir, sids)
    else:
        assert stored_session_names(store_config) == names_of(sids, store_config)
        assert stored_lock_count(store_config) == 0


def check_cleanup_leaves_only_live_sessions(server, store_env, session_dir, sids) -> None:
    """Add expired sessions and a killed writer's temp file, run the cleanup command the
    way cron would, and find exactly the live sessions (and the shared counter) left."""
    expired = []
    for _ in range(20):
        reply = httpkit.request(server.url, "POST", "/inc")
        expired.append(reply.cookie("session"))
    past = time.time_ns() - 3600 * 10**9
    for sid in expired:
        os.utime(session_dir / file_name_for(sid), ns=(past, past))  # mtime is the expiry
    (session_dir / ".left-by-a-killed-writer.tmp").write_bytes(b'{"half":')

    done = run_cleanup(store_env, "--stale-temp-after", "0")  # the service is idle now
    print("  " + done.stdout.strip())
    assert done.returncode == 0, done.stderr
    assert "Removed 20 expired session(s) and 1 stale temp file(s)" in done.stdout
    assert f"kept {len(sids)} live session(s)" in done.stdout
    live = {file_name_for(sid) for sid in sids}
    assert set(os.listdir(session_dir)) == live | {counter_file_name()}


def run_cleanup(store_env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app app session cleanup`` with the service's environment."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "session", "cleanup", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **store_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
