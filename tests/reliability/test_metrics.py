"""Issue 21: the service's GET /metrics, scraped while a known load runs, on granian and on
gunicorn (gunicorn.conf.py, as operators run it), several workers each, Redis store.

* N increments show as at least N ``incr`` observations, summed over every worker, and
  counts already scraped survive a worker killed with ``kill -9``;
* a Redis stopped for two seconds shows as StoreUnavailable counts, by reason, equal to
  the 503s the clients saw (session increments and the shared counter alike);
* a client outside SESSIONAPP_METRICS_ALLOW is refused (403), checked from a second
  loopback address (127.0.0.2) against a listener that allows only 127.0.0.1;
* bad metrics settings stop either launcher before it serves, naming the variable.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flask_session.prometheus import PUBLISH_INTERVAL_S
from sessionapp.metrics_server import ALLOW_VAR, BIND_VAR, is_allowed, parse_allow
from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP
from tests.support.app_servers import REPO_ROOT, AppServer
from tests.support.ports import HOST, free_port

WORKERS = 3
CLIENTS = 4
INCREMENTS_PER_CLIENT = 40
OUTAGE_S = 2.0
#: bound on any load loop here
LOAD_LIMIT_S = 30.0
#: how long a scrape may lag behind what the workers counted
PUBLISH_WAIT_S = PUBLISH_INTERVAL_S * 3
#: a loopback address other than the listener's allowed one (Linux routes all 127/8 to lo)
OTHER_LOOPBACK = "127.0.0.2"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def start_service(
    app_server: Callable[..., AppServer], server_kind: str, env: dict[str, str]
) -> tuple[AppServer, str]:
    """The service with metrics on; (server, the metrics listener's base URL)."""
    port = free_port()
    env = {**env, BIND_VAR: f"{HOST}:{port}", ALLOW_VAR: HOST}
    options: dict[str, object] = {"env": env, "workers": WORKERS, "threads": 4}
    if server_kind == "gunicorn":
        options["config"] = REPO_ROOT / "gunicorn.conf.py"  # its hooks start the exporter
    server = app_server(SERVICE_APP, **options)
    return server, f"http://{HOST}:{port}"


def scrape(metrics_url: str, server: AppServer) -> Samples:
    """Every sample of GET /metrics, by (name, sorted labels)."""
    reply = httpkit.request(metrics_url, "GET", "/metrics")
    assert reply.status == 200, (reply, server.log_tail(30))
    assert reply.header("Content-Type").startswith("text/plain; version="), reply.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_until(metrics_url: str, server: AppServer, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``done(samples)`` or PUBLISH_WAIT_S passed; the last samples. Each
    worker hands its tallies over every PUBLISH_INTERVAL_S, so a scrape may lag by that."""
    deadline = time.monotonic() + PUBLISH_WAIT_S
    while True:
        samples = scrape(metrics_url, server)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value for (found, have), value in samples.items() if found == name and wanted <= set(have)
    )


def incr_calls(samples: Samples) -> float:
    """How many Redis ``incr`` verbs the workers measured."""
    return total(samples, "flask_session_store_seconds_count", store="redis", verb="incr")


def run_clients(
    url: str, per_client: int, *, until: float | None = None, shared_every: int = 0
) -> Counter[int]:
    """CLIENTS threads, each its own session, POST /inc ``per_client`` times (or until the
    monotonic time ``until``), and POST /shared/inc (the shared counter: not a session
    verb) instead every ``shared_every``-th time if given; the statuses they saw."""
    statuses: Counter[int] = Counter()
    guard = threading.Lock()
    deadline = time.monotonic() + LOAD_LIMIT_S

    def client() -> None:
        cookie = None
        sent = 0
        while sent < per_client and time.monotonic() < deadline:
            if until is not None and time.monotonic() > until:
                break
            shared = shared_every and sent % shared_every == shared_every - 1
            reply = httpkit.request(url, "POST", "/shared/inc" if shared else "/inc", cookie=cookie)
            sent += 1
            if reply.status == 200 and cookie is None:
                cookie = f"session={reply.cookie('session')}"
            with guard:
                statuses[reply.status] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_increments_counted_over_workers_and_kill_9(app_server, server_kind, store_env, redis_url):
    server, metrics_url = start_service(app_server, server_kind, store_env)
    assert incr_calls(scrape(metrics_url, server)) == 0

    # A scrape while the load runs sees a count between nothing and everything.
    seen: list[Counter[int]] = []
    load = threading.Thread(
        target=lambda: seen.append(run_clients(server.url, INCREMENTS_PER_CLIENT))
    )
    load.start()
    midway = scrape(metrics_url, server)
    load.join()
    assert seen == [{200: CLIENTS * INCREMENTS_PER_CLIENT}], seen
    expected = CLIENTS * INCREMENTS_PER_CLIENT
    first = scrape_until(metrics_url, server, lambda samples: incr_calls(samples) >= expected)
    counted = incr_calls(first)
    assert incr_calls(midway) <= counted
    assert counted >= CLIENTS * INCREMENTS_PER_CLIENT, first
    assert total(first, "flask_session_sessions_created_total", store="redis") == CLIENTS
    assert total(first, "flask_session_live_sessions", store="redis") == CLIENTS
    assert total(first, "flask_session_store_unavailable_total") == 0

    # kill -9 one worker: what was scraped stays (the others' counts, and its own too).
    victim = server.worker_pids()[0]
    server.kill_worker(victim)
    server.wait_for_workers(exclude=[victim])
    after_kill = scrape(metrics_url, server)
    assert incr_calls(after_kill) >= counted
    statuses = run_clients(server.url, INCREMENTS_PER_CLIENT)
    assert statuses == {200: CLIENTS * INCREMENTS_PER_CLIENT}, statuses
    expected = counted + CLIENTS * INCREMENTS_PER_CLIENT
    final = scrape_until(metrics_url, server, lambda samples: incr_calls(samples) >= expected)
    assert incr_calls(final) >= expected

    # Only the allowed address is answered: 127.0.0.1 is, 127.0.0.2 (loopback too) is not.
    refused = http.client.HTTPConnection(
        HOST, int(metrics_url.rsplit(":", 1)[1]), timeout=5, source_address=(OTHER_LOOPBACK, 0)
    )
    try:
        refused.request("GET", "/metrics")
        answer = refused.getresponse()
        body = answer.read()
    finally:
        refused.close()
    assert answer.status == 403, (answer.status, body[:200])
    assert b"flask_session" not in body
    assert httpkit.request(metrics_url, "GET", "/other").status == 404


def test_redis_outage_counted_by_reason_as_the_503s_clients_saw(
    app_server, server_kind, store_env, redis_server, redis_url
):
    server, metrics_url = start_service(app_server, server_kind, store_env)
    assert run_clients(server.url, 2) == {200: CLIENTS * 2}

    seen: list[Counter[int]] = []
    load = threading.Thread(
        target=lambda: seen.append(
            run_clients(server.url, 10_000, until=time.monotonic() + OUTAGE_S + 1.0, shared_every=3)
        )
    )
    load.start()
    try:
        time.sleep(0.3)
        redis_server.stop()
        time.sleep(OUTAGE_S)
    finally:
        redis_server.start()
        load.join()
    statuses = seen[0]
    assert set(statuses) <= {200, 503}, statuses
    # A third of the requests during the outage were /shared/inc: the shared counter's
    # refusals must be in the count as well as the sessions'.
    assert statuses[503] > 3 * CLIENTS, statuses

    def refused(samples: Samples) -> float:
        return total(samples, "flask_session_store_unavailable_total")

    samples = scrape_until(metrics_url, server, lambda found: refused(found) >= statuses[503])
    time.sleep(PUBLISH_INTERVAL_S * 1.5)  # and nothing more comes in late
    samples = scrape(metrics_url, server)
    refusals = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "flask_session_store_unavailable_total"
    }
    print(f"\nclients saw {dict(statuses)}; /metrics counted {refusals}")
    assert sum(refusals.values()) == statuses[503], (refusals, statuses)
    assert set(refusals) == {"the session store cannot be reached"}, refusals
    assert total(samples, "flask_session_lock_timeouts_total") == 0


@pytest.fixture
def store_type() -> str:
    return "redis"


@pytest.mark.parametrize(
    ("variable", "value"),
    [(BIND_VAR, "127.0.0.1"), (BIND_VAR, "127.0.0.1:99999"), (ALLOW_VAR, "127.0.0.1,localhost")],
)
@pytest.mark.parametrize("launcher", ["granian", "gunicorn"])
def test_bad_metrics_setting_stops_the_launcher(launcher, variable, value, tmp_path):
    env = {**os.environ, BIND_VAR: f"{HOST}:{free_port()}", variable: value}
    env["SESSIONAPP_BIND"] = f"{HOST}:{free_port()}"
    env["FLASK_SESSION_FILE_DIR"] = str(tmp_path)
    if launcher == "granian":
        command = [sys.executable, "-m", "sessionapp.serve"]
    else:
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", SERVICE_APP]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert variable in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr or launcher == "gunicorn", done.stderr[-2000:]


def test_allow_list_logic():
    loopback = parse_allow("127.0.0.0/8,::1")
    assert is_allowed("127.0.0.1", loopback)
    assert is_allowed("127.0.0.2", loopback)
    assert is_allowed("::1", loopback)
    assert is_allowed("::ffff:127.0.0.1", loopback)
    # non-loopback addresses as text only: nothing connects from them
    assert not is_allowed("192.0.2.10", loopback)
    assert not is_allowed("2001:db8::1", loopback)
    assert not is_allowed("not an address", loopback)
    only = parse_allow("127.0.0.1")
    assert is_allowed("127.0.0.1", only) and not is_allowed("127.0.0.2", only)
    wider = parse_allow("127.0.0.1, 10.0.0.0/8")
    assert is_allowed("10.1.2.3", wider)
