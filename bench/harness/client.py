"""Plain HTTP calls to a running app: new cookies, counter reads, the shared-counter check."""

from __future__ import annotations

import concurrent.futures
import contextlib
import secrets
import threading
import time

import requests

from .apps import Running
from .common import BenchError

COOKIE_COLLECTORS = 8
SETTLE_INTERVAL = 0.3  # s between two reads of a counter that must agree


def set_cookie_pairs(resp: requests.Response) -> str | None:
    pairs = [h.split(";", 1)[0].strip() for h in resp.raw.headers.getlist("Set-Cookie")]
    pairs = [p for p in pairs if "=" in p and p.split("=", 1)[1]]
    return "; ".join(pairs) if pairs else None


def new_cookie(target: Running) -> str:
    """One POST /inc with no cookie; the cookie the target set (or a stand-in of the same
    size for C, which keeps no session, so that requests weigh the same)."""
    with requests.Session() as s:
        r = s.post(target.base + "/inc", timeout=10)
    if r.status_code != 200:
        raise BenchError(
            f"target {target.name}: POST /inc without a cookie gave HTTP {r.status_code}"
        )
    cookie = set_cookie_pairs(r)
    if cookie is None:
        if target.sets_cookies:
            raise BenchError(f"target {target.name}: POST /inc for a new client set no cookie")
        cookie = "session=" + secrets.token_urlsafe(32)
    return cookie


def collect_cookies(target: Running, n: int) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(COOKIE_COLLECTORS) as pool:
        cookies = list(pool.map(lambda _: new_cookie(target), range(n)))
    if len(set(cookies)) != n:
        raise BenchError(
            f"target {target.name}: {n} new clients got only {len(set(cookies))} distinct cookies"
        )
    return cookies


def read_counter(target: Running, cookie: str) -> int | None:
    r = requests.get(target.base + "/counter", headers={"Cookie": cookie}, timeout=10)
    if r.status_code != 200:
        return None
    try:
        return int(r.json()["counter"])
    except (ValueError, KeyError, TypeError):
        return None


def settled_counter(target: Running, cookie: str, timeout: float = 10) -> int | None:
    """GET /counter until two reads agree: requests wrk cut off may still be running."""
    deadline = time.monotonic() + timeout
    last = read_counter(target, cookie)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_INTERVAL)
        now = read_counter(target, cookie)
        if now == last:
            return now
        last = now
    return last


def shared_uniqueness(target: Running, clients: int = 32, each: int = 16) -> dict:
    """``clients`` keep-alive clients start together and POST /shared/inc ``each`` times:
    how many distinct numbers came back. A correct shared counter gives one per answer; a
    module global gives each worker process its own sequence, so numbers repeat."""
    barrier = threading.Barrier(clients, timeout=30)

    def one(_: int) -> list[int | None]:
        out: list[int | None] = []
        with requests.Session() as s:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            for _ in range(each):
                try:
                    r = s.post(target.base + "/shared/inc", timeout=30)
                    out.append(int(r.json()["counter"]) if r.status_code == 200 else None)
                except (requests.RequestException, ValueError, KeyError, TypeError):
                    out.append(None)
        return out

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        values = [v for vs in pool.map(one, range(clients)) for v in vs]
    ok = [v for v in values if v is not None]
    return {"requests": len(values), "ok": len(ok), "unique": len(set(ok))}
