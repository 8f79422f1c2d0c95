"""Issue 11 under granian load, against a real redis-server in production conditions.

* A Redis that refuses writes (full under ``noeviction``, read-only replica, failing to
  persist): no 500 anywhere; 503s that say why; every session's final counter equals
  its acknowledged increments; no shared number is handed out twice; /healthz is not
  200 while writes are refused; service resumes when Redis does.
* A rolling deploy across formats: two servers on one Redis, one json and one msgpack,
  one cookie alternating between them: every acknowledged increment is counted, and
  what one server writes the other reads.

Every load loop is bounded in requests and seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.support.redis_conditions import CONDITION_ARGS, CONDITIONS, REASONS, out_of_memory
from tests.support.redis_server import RedisServer

CLIENTS = 6
MAX_REQUESTS_PER_CLIENT = 600
PHASE_S = 0.8  # normal service before and after the condition
MAX_CONDITION_S = 4.0
WANTED_REFUSALS = 20
HEALTH_PROBES = 20  # the condition lasts until this many 503s were seen (or the limit)


@pytest.fixture(scope="module")
def server():
    with RedisServer(extra_args=CONDITION_ARGS) as started:
        yield started


@dataclass
class Tally:
    """What one load client saw."""

    cookie: str = ""
    acknowledged: int = 0  # POST /inc answered 200
    statuses: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)  # 503 bodies
    shared_numbers: list[int] = field(default_factory=list)


def load_client(url: str, tally: Tally, stop: threading.Event) -> None:
    for number in range(MAX_REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        shared = number % 3 == 2
        path = "/shared/inc" if shared else "/inc"
        reply = httpkit.request(url, "POST", path, cookie=tally.cookie, timeout=10)
        tally.statuses[(path, reply.status)] += 1
        if reply.status == 200:
            if shared:
                tally.shared_numbers.append(reply.json()["counter"])
            else:
                tally.acknowledged += 1
        elif reply.status == 503:
            assert reply.header("Retry-After"), reply.headers
            tally.refusals[(path, reply.json()["error"])] += 1


def wait_until(condition, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)


def refused(tallies: list[Tally]) -> int:
    return sum(sum(tally.refusals.values()) for tally in tallies)


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_a_redis_refusing_writes_under_load_answers_503_and_loses_nothing(
    granian_server, server, condition
):
    needs_service()
    server.flushall()
    env = {
        "FLASK_SESSION_TYPE": "redis",
        "FLASK_SESSION_REDIS_URL": server.url,
        "FLASK_SESSION_LOCK_TIMEOUT": "2",
    }
    app = granian_server(SERVICE_APP, env=env, workers=2, threads=4)
    tallies = []
    for _ in range(CLIENTS):
        first = httpkit.request(app.url, "POST", "/inc")
        assert first.status == 200, first
        tallies.append(Tally(cookie=f"session={first.cookie('session')}", acknowledged=1))
    stop = threading.Event()
    threads = [
        threading.Thread(target=load_client, args=(app.url, tally, stop), daemon=True)
        for tally in tallies
    ]
    health_during = []
    for thread in threads:
        thread.start()
    try:
        time.sleep(PHASE_S)
        state = (
            out_of_memory(server, at_the_edge=True)  # filled up, as in production
            if condition == "oom"
            else CONDITIONS[condition](server)
        )
        with state:
            before = refused(tallies)
            wait_until(lambda: refused(tallies) - before >= WANTED_REFUSALS, MAX_CONDITION_S)
            if condition == "oom":
                # Right at maxmemory some small writes still pass, and so may /healthz's
                # probe; well past it every write is refused.
                with server.client() as admin:
                    used = int(admin.info("memory")["used_memory"])
                    admin.config_set("maxmemory", used // 2)
            for _ in range(HEALTH_PROBES):
                health_during.append(httpkit.request(app.url, "GET", "/healthz"))
                if health_during[-1].status != 200:
                    break
                time.sleep(0.05)
        time.sleep(PHASE_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    statuses = sum((tally.statuses for tally in tallies), Counter())
    reasons = sum((tally.refusals for tally in tallies), Counter())
    print(f"\n{condition}: {dict(statuses)}\n{dict(reasons)}")
    assert {status for _, status in statuses} <= {200, 503}, statuses  # no 500, no silence
    expected = REASONS[condition].lower()
    inc_refusals = {text for (path, text), _ in reasons.items() if path == "/inc"}
    assert inc_refusals, "no increment was refused"
    for (path, text), _ in reasons.items():
        assert expected in text.lower(), (path, text)
    health = health_during[-1]
    assert health.status == 503 and health.json()["status"] != "ok", health_during

    # Every acknowledged increment counted, nothing refused counted, no number twice.
    for tally in tallies:
        reply = httpkit.request(app.url, "GET", "/counter", cookie=tally.cookie)
        assert reply.status == 200 and reply.json()["counter"] == tally.acknowledged, tally
    numbers = [number for tally in tallies for number in tally.shared_numbers]
    assert len(numbers) == len(set(numbers)), "a shared number was handed out twice"
    assert httpkit.request(app.url, "GET", "/healthz").status == 200


def test_a_rolling_deploy_across_formats_counts_every_acknowledged_increment(
    granian_server, redis_url
):
    needs_service()
    servers = [
        granian_server(
            SERVICE_APP,
            env={
                "FLASK_SESSION_TYPE": "redis",
                "FLASK_SESSION_REDIS_URL": redis_url,
                "FLASK_SESSION_SERIALIZATION_FORMAT": fmt,
            },
            workers=1,
            threads=4,
        )
        for fmt in ("json", "msgpack")
    ]
    first = httpkit.request(servers[0].url, "POST", "/inc")
    assert first.status == 200
    cookie = f"session={first.cookie('session')}"
    per_thread = 25
    acknowledged = [0] * 4
    failures: list[str] = []

    def alternate(index: int) -> None:
        for number in range(per_thread):
            reply = httpkit.request(
                servers[(index + number) % 2].url, "POST", "/inc", cookie=cookie
            )
            if reply.status == 200:
                acknowledged[index] += 1
            else:
                failures.append(f"{reply.status} {reply.text[:200]}")

    def run_concurrently() -> None:
        acknowledged[:] = [0] * 4
        threads = [threading.Thread(target=alternate, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    def counter_on(server_index: int) -> int:
        reply = httpkit.request(servers[server_index].url, "GET", "/counter", cookie=cookie)
        assert reply.status == 200, reply
        return reply.json()["counter"]

    run_concurrently()
    assert failures == []
    assert counter_on(0) == counter_on(1) == 1 + sum(acknowledged)
    # A write (reset saves the session) from the msgpack side converts the json hash;
    # the json side reads it back.
    assert httpkit.request(servers[1].url, "POST", "/reset", cookie=cookie).status == 200
    assert counter_on(0) == counter_on(1) == 0
    run_concurrently()
    assert failures == []
    assert counter_on(0) == counter_on(1) == sum(acknowledged) == 4 * per_thread
