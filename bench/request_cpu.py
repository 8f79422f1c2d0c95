"""In-process CPU per request: the service against plain Flask and the one-round-trip floor.

    .venv/bin/python bench/request_cpu.py [--requests 500] [--rounds 15] [--metrics]
                                          [--store redis,filesystem,memcached]

Calls each target's WSGI app directly in this process (no HTTP server, no sockets
between client and app), with environs built once, a pool of 200 session cookies used
round-robin, and measures the thread's CPU time (``time.thread_time_ns``) over
``--requests`` calls after a warm-up. Time spent waiting on redis-server is not CPU
time of this thread, so what is measured is exactly the Python (and C) work a worker
does per request, which is what the session layer can cut. Targets are interleaved in
every round; the table shows the median over rounds, in microseconds per request, and
for A the best (lowest) round too: on a shared machine other processes only ever add
to a round's CPU time (cache and core contention), so many short rounds and their
minimum are the steadiest figure for comparing two versions of the code.

Targets:

* **A**: the service (``sessionapp.create_app``) on the store, default settings.
* **C**: plain Flask answering the same JSON; no store, no session (bench/apps/plain_flask.py).
* **M** (with ``--metrics``): A with ``SESSION_METRICS = "prometheus"``, as the service
  runs with SESSIONAPP_METRICS_BIND set: prometheus_client in multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR``, a temporary directory), so every observation is written
  to a memory-mapped file as in a worker. ``M-A`` is what metrics cost per request.
* **W** (with ``--metrics``): A with an observer that records nothing
  (``flask_session.metrics.NoMetrics``): the wrapper alone. ``W-A`` is the wrapper's cost
  plus the noise between two apps doing the same work; ``M-W`` is prometheus' part.
* **D**: the floor: plain Flask plus one store round trip for the caller's data, keyed
  by the caller's cookie (bench/apps/floor.py, the D that bench/run serves). Redis: one
  INCR (POST) or GET (GET /counter) through the client the service builds from
  ``SESSION_REDIS_URL``. Filesystem: the caller's small file, read (and for POST
  rewritten in place) under its flock. memcached: one ``incr`` (POST) or ``get``
  through a pymemcache PooledClient built as the store builds its pools.

A redis-server or memcached (``--store memcached``) is started on a free loopback port
(tests/support/redis_server.py, memcached_server.py) and stopped at the end; filesystem
data lives in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench" / "apps"))

import floor  # noqa: E402  (target D, as bench/run serves it)
import plain_flask  # noqa: E402  (target C, as bench/run serves it)
from flask import Flask  # noqa: E402

from flask_session.metrics import NoMetrics  # noqa: E402
from sessionapp import create_app  # noqa: E402
from tests.support.memcached_server import MemcachedServer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

COOKIE_POOL = 200
WARM_UP_REQUESTS = 500
COOKIE_NAME = "session"
ROUTES = (("POST", "/inc"), ("GET", "/counter"))

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(
    method: str, path: str, cookie: str | None, cookie_name: str = COOKIE_NAME
) -> dict[str, Any]:
    """A WSGI environ as a server builds it for a small API request (no body)."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "request_cpu",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if method == "POST":
        env["CONTENT_LENGTH"] = "0"
        env["CONTENT_TYPE"] = ""
    if cookie is not None:
        env["HTTP_COOKIE"] = f"{cookie_name}={cookie}"
    return env


class Caller:
    """Calls a WSGI app with fresh copies of prebuilt environs, checking the status."""

    def __init__(self, app: WSGIApp, environs: list[dict[str, Any]]) -> None:
        self.app = app
        self.environs = environs
        self.status = ""

    def _start_response(self, status: str, headers: Any, exc_info: Any = None) -> None:
        self.status = status

    def run(self, count: int) -> None:
        app, start, environs = self.app, self._start_response, self.environs
        pool = len(environs)
        for i in range(count):
            env = dict(environs[i % pool])
            env["wsgi.input"] = io.BytesIO(b"")
            body = app(env, start)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not self.status.startswith("200"):
            raise RuntimeError(f"{self.status} from {environs[0]['PATH_INFO']}")

    def cpu_us_per_request(self, count: int) -> float:
        gc.collect()
        start = time.thread_time_ns()
        self.run(count)
        return (time.thread_time_ns() - start) / count / 1000


def issue_cookies(app: WSGIApp, count: int) -> list[str]:
    """``count`` live sessions of the service: the cookie each first POST /inc set."""
    cookies = []
    captured: list[Any] = []

    def start(status: str, headers: Any, exc_info: Any = None) -> None:
        captured[:] = headers

    for _ in range(count):
        env = environ("POST", "/inc", None)
        env["wsgi.input"] = io.BytesIO(b"")
        body = app(env, start)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        value = next(v for k, v in captured if k == "Set-Cookie" and v.startswith(COOKIE_NAME))
        cookies.append(value.split(";", 1)[0].split("=", 1)[1])
    return cookies


# -- targets -----------------------------------------------------------------------------


def service_app(store: str, url: str | None, directory: str, *, metrics: Any = None) -> Flask:
    """Target A: the service with its default settings on ``store`` (its server at
    ``url``: Redis' URL, memcached's host:port); M and W: with ``SESSION_METRICS = metrics``."""
    config: dict[str, Any] = {"SESSION_TYPE": store}
    if metrics is not None:
        config["SESSION_METRICS"] = metrics
    if store == "redis":
        config["SESSION_REDIS_URL"] = url
    elif store == "memcached":
        config["SESSION_MEMCACHED_SERVERS"] = url
    else:
        config["SESSION_FILE_DIR"] = directory
    return create_app(config)


# -- measurement -------------------------------------------------------------------------


def build_callers(
    stores: list[str], urls: dict[str, str], scratch: str, *, metrics: bool = False
) -> dict[tuple[str, str, str], Caller]:
    """(target, store, route) -> Caller, each with its cookie pool; ``urls``: the
    servers' addresses, by store."""
    callers: dict[tuple[str, str, str], Caller] = {}
    plain = plain_flask.app
    for store in stores:
        directory = os.path.join(scratch, store)
        os.makedirs(directory)
        sessions = os.path.join(directory, "sessions")
        url = urls.get(store)
        service = service_app(store, url, sessions)
        cookies = issue_cookies(service, COOKIE_POOL)
        floor_app = floor.create_app(store, url or "", directory)
        targets = [
            ("A", service, COOKIE_NAME),
            ("C", plain, COOKIE_NAME),
            ("D", floor_app, floor.COOKIE),
        ]
        if metrics:  # the same sessions, through apps that measure them
            measured = service_app(store, url, sessions, metrics="prometheus")
            wrapped = service_app(store, url, sessions, metrics=NoMetrics())
            targets += [("M", measured, COOKIE_NAME), ("W", wrapped, COOKIE_NAME)]
        for target, app, cookie_name in targets:
            for method, path in ROUTES:
                envs = [environ(method, path, cookie, cookie_name) for cookie in cookies]
                callers[(target, store, f"{method} {path}")] = Caller(app.wsgi_app, envs)
    return callers


def measure(
    callers: dict[tuple[str, str, str], Caller], requests: int, rounds: int
) -> dict[tuple[str, str, str], list[float]]:
    for caller in callers.values():
        caller.run(WARM_UP_REQUESTS)
    results: dict[tuple[str, str, str], list[float]] = {name: [] for name in callers}
    # M right after A: a pair run back to back meets the same load on the machine
    rank = {"A": 0, "M": 1, "W": 2}
    order = sorted(callers, key=lambda name: (name[1], name[2], rank.get(name[0], 2)))
    for _ in range(rounds):
        for name in order:
            results[name].append(callers[name].cpu_us_per_request(requests))
    return results


def report_metrics(results: dict[tuple[str, str, str], list[float]], stores: list[str]) -> None:
    """A (metrics off) against M (SESSION_METRICS = "prometheus") and W (the wrapper with
    an observer that records nothing), same sessions. Differences are paired: the median
    over rounds of each round's difference (A, M and W run back to back in a round, so
    a round's load on the machine weighs on them alike)."""
    print(
        f"\n{'store':<11} {'route':<14} {'A µs':>7} {'M µs':>7} {'W µs':>7}"
        f" {'M-A':>7} {'W-A':>7} {'M-W':>7}   (paired medians)"
    )
    for store in stores:
        for method, path in ROUTES:
            route = f"{method} {path}"
            a, m, w = (results[(t, store, route)] for t in "AMW")
            print(
                f"{store:<11} {route:<14} {statistics.median(a):7.1f}"
                f" {statistics.median(m):7.1f} {statistics.median(w):7.1f}"
                f" {paired(m, a):7.1f} {paired(w, a):7.1f} {paired(m, w):7.1f}"
            )


def paired(later: list[float], earlier: list[float]) -> float:
    """The median over rounds of each round's difference."""
    return statistics.median(x - y for x, y in zip(later, earlier, strict=True))


def observation_cost(calls: int = 100_000, rounds: int = 5) -> float:
    """µs of CPU for one store-verb observation by SESSION_METRICS = "prometheus", in a
    hot loop (best of ``rounds``): the floor of what metrics add to a request that makes
    one store call; what a request sees is more, with its caches cold from its own work."""
    from flask_session.prometheus import prometheus_metrics

    metrics = prometheus_metrics()
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time_ns()
        for _ in range(calls):
            metrics.store_call("redis", "incr", 0.0003)
        best = min(best, (time.thread_time_ns() - start) / calls / 1000)
    return best


def report(results: dict[tuple[str, str, str], list[float]], stores: list[str]) -> None:
    print(
        f"{'store':<11} {'route':<14} {'A µs':>7} {'C µs':>7} {'D µs':>7}"
        f" {'A-C':>7} {'A-D':>7} {'A/D':>6} {'A best':>7} {'D best':>7}"
    )
    for store in stores:
        for method, path in ROUTES:
            route = f"{method} {path}"
            a, c, d = (statistics.median(results[(t, store, route)]) for t in "ACD")
            a_best, d_best = (min(results[(t, store, route)]) for t in "AD")
            print(
                f"{store:<11} {route:<14} {a:7.1f} {c:7.1f} {d:7.1f} {a - c:7.1f}"
                f" {a - d:7.1f} {a / d:6.2f} {a_best:7.1f} {d_best:7.1f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="calls per target per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--store", default="redis,filesystem", help="comma-separated stores")
    parser.add_argument(
        "--metrics", action="store_true", help="also targets M and W: A with SESSION_METRICS"
    )
    args = parser.parse_args(argv)
    stores = [s for s in args.store.split(",") if s]
    logging.basicConfig(level=logging.WARNING)
    scratch = tempfile.mkdtemp(prefix="request-cpu-")
    if args.metrics:
        # before prometheus_client is first imported: it picks its value class then
        multiproc = os.path.join(scratch, "metrics")
        os.makedirs(multiproc)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc
    redis = RedisServer() if "redis" in stores else None
    memcached = MemcachedServer() if "memcached" in stores else None
    try:
        urls = {}
        if redis is not None:
            redis.start()
            urls["redis"] = redis.url
        if memcached is not None:
            memcached.start()
            urls["memcached"] = memcached.servers
        callers = build_callers(stores, urls, scratch, metrics=args.metrics)
        results = measure(callers, args.requests, args.rounds)
        cost = observation_cost() if args.metrics else 0.0
    finally:
        for server in (redis, memcached):
            if server is not None:
                server.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"in-process CPU per request (thread CPU time), median of {args.rounds} rounds"
        f" x {args.requests} requests, {COOKIE_POOL} cookies; python {sys.version.split()[0]}"
    )
    report(results, stores)
    if args.metrics:
        report_metrics(results, stores)
        print(f"\none store-verb observation (hot loop, best of 5): {cost:.2f} µs")


if __name__ == "__main__":
    main()
