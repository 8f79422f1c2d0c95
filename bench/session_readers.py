"""One user's parallel and slow session reads, per SESSION_LOCKING mode: a table (issue 23).

    .venv/bin/python bench/session_readers.py [--rounds 5] [--xhr 0.2] [--slow 3]

Serves the Flask-Login test app (tests/flask_session/login_app.py: ``login_required``
views, the real Flask-Login) on granian, one worker x 8 threads, filesystem store in a
temporary directory on 127.0.0.1, once per SESSION_LOCKING value ('true', the lock at
first access of every request; 'auto', the default). Prints, per mode:

- six parallel XHRs (each reads the session, then takes ``--xhr`` seconds) by ONE logged-in
  user, and by six different users: wall time, median of ``--rounds``, and their ratio;
- a fast read by the same user while a ``--slow`` s read-only view runs, without and with
  ``session.save_and_release()`` at the start of the slow view: the fast read's latency;
- sequential latency (median of 200) of one read (GET /api/0) and one write (POST
  /cart/add).

Every endpoint is requested once before measuring (SESSION_LOCKING='auto' learns per
endpoint in each worker; an endpoint not yet seen locks). Bounded: about 10 + 2 x slow
seconds per mode at the defaults.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.app_servers import GranianServer  # noqa: E402

APP = "tests.flask_session.login_app:create_app()"
MODES = ("true", "auto")
XHRS = 6
SEQUENTIAL = 200
TIMEOUT_S = 60


def log_in(url: str, user: str) -> str:
    """The session cookie of ``user``, logged in."""
    response = requests.post(f"{url}/login/{user}", timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.cookies["session"]


def get(url: str, cookie: str, path: str) -> float:
    """Seconds one GET took (raising for an error status)."""
    started = time.perf_counter()
    response = requests.get(url + path, cookies={"session": cookie}, timeout=TIMEOUT_S)
    response.raise_for_status()
    return time.perf_counter() - started


def parallel(url: str, cookies: list[str], xhr: float) -> float:
    """Wall time of one XHR per cookie, all at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(len(cookies)) as pool:
        list(
            pool.map(
                lambda pair: get(url, pair[1], f"/api/{pair[0]}?delay={xhr}"), enumerate(cookies)
            )
        )
    return time.perf_counter() - started


def beside_slow(url: str, cookie: str, slow: float, release: bool) -> str:
    """A fast read by the same user, sent 0.5 s into a ``slow`` s read: its latency, and
    its status if it failed (a 503 once it waited SESSION_LOCK_TIMEOUT)."""
    flag = "&release=1" if release else ""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(get, url, cookie, f"/report?delay={slow}{flag}")
        time.sleep(0.5)
        started = time.perf_counter()
        response = requests.get(f"{url}/api/9", cookies={"session": cookie}, timeout=TIMEOUT_S)
        latency = time.perf_counter() - started
        running.result()
    failed = "" if response.ok else f" ({response.status_code})"
    return f"{latency:.3f}{failed}"


def sequential(url: str, cookie: str, method: str, path: str) -> float:
    times = []
    with requests.Session() as client:
        client.cookies.set("session", cookie)
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            client.request(method, url + path, timeout=TIMEOUT_S).raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-readers-") as session_dir:
        env = {"FLASK_SESSION_FILE_DIR": session_dir, "FLASK_SESSION_LOCKING": mode}
        server = GranianServer(APP, env=env, workers=1, threads=8).start()
        try:
            url = server.url
            users = [log_in(url, f"user{i}") for i in range(XHRS)]
            one = users[0]
            for path in ("/api/0", "/report", "/report?release=1"):  # learn every endpoint
                get(url, one, path)
            requests.post(url + "/cart/add", cookies={"session": one}, timeout=TIMEOUT_S)
            same = statistics.median(
                parallel(url, [one] * XHRS, args.xhr) for _ in range(args.rounds)
            )
            different = statistics.median(
                parallel(url, users, args.xhr) for _ in range(args.rounds)
            )
            return {
                "same": same,
                "different": different,
                "beside_slow": beside_slow(url, one, args.slow, release=False),
                "beside_released": beside_slow(url, one, args.slow, release=True),
                "read_ms": 1000 * sequential(url, one, "GET", "/api/0"),
                "write_ms": 1000 * sequential(url, one, "POST", "/cart/add"),
            }
        finally:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--xhr", type=float, default=0.2, help="seconds each XHR takes")
    parser.add_argument("--slow", type=float, default=3.0, help="seconds the slow view takes")
    args = parser.parse_args()
    rows = [(mode, measure(mode, args)) for mode in MODES]
    print(
        f"granian 1 worker x 8 threads, filesystem store, Flask-Login; {XHRS} XHRs of"
        f" {args.xhr} s each (median of {args.rounds}); slow view {args.slow} s"
    )
    header = (
        "SESSION_LOCKING",
        "6 XHRs, 1 user (s)",
        "6 XHRs, 6 users (s)",
        "ratio",
        "read beside slow view (s)",
        "... slow view released (s)",
        "read (ms)",
        "write (ms)",
    )
    print(" | ".join(header))
    for mode, row in rows:
        cells = (
            mode,
            f"{row['same']:.2f}",
            f"{row['different']:.2f}",
            f"{row['same'] / row['different']:.2f}x",
            row["beside_slow"],
            row["beside_released"],
            f"{row['read_ms']:.1f}",
            f"{row['write_ms']:.1f}",
        )
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
