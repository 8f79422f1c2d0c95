"""End to end over real processes: each server (granian, gunicorn; 2 workers x 4 threads)
serving ``app:app``.

Each check is the row of the design brief's table it turns into "exact, always", on both
stores. Load is bounded (at most 2,000 requests per test) and every client runs in its
own thread with its own connection and cookie jar.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.app_servers import AppServer

WORKERS, THREADS = 2, 4
TIMEOUT = 30  # seconds per request: generous, a stuck request fails the test instead of hanging
# gunicorn closes a keep-alive connection after 2 idle seconds by default. On a loaded test
# machine a client thread can sit unscheduled that long, then send its next POST on a
# connection the server is closing; that POST fails and must not be retried (it might
# count twice). Idle connections are kept for longer than any such pause instead.
KEEP_ALIVE = ("--keep-alive", "60")
#: per server: granian keeps idle connections open without a setting
EXTRA_ARGS = {"gunicorn": KEEP_ALIVE, "granian": ()}


@pytest.fixture
def start_service(app_server, server_kind, store_env) -> Callable[[], AppServer]:
    """Start ``app:app`` on the test's store; every call is another app server."""

    def start() -> AppServer:
        server = app_server(
            "app:app",
            env=store_env,
            workers=WORKERS,
            threads=THREADS,
            extra_args=EXTRA_ARGS[server_kind],
        )
        assert len(server.worker_pids()) == WORKERS
        return server

    return start


@pytest.fixture
def service(start_service) -> AppServer:
    return start_service()


def post_counter(http: requests.Session, url: str, **kwargs) -> int:
    response = http.post(url, timeout=TIMEOUT, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()["counter"]


def get_counter(http: requests.Session, url: str) -> int:
    response = http.get(url, timeout=TIMEOUT)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()["counter"]


def test_100_clients_each_see_exactly_their_own_1_to_20(service):
    clients, increments = 100, 20
    start = threading.Barrier(clients)

    def one_client(_: int) -> tuple[list[int], str, int]:
        with requests.Session() as http:
            start.wait()
            seen = [post_counter(http, service.url + "/inc") for _ in range(increments)]
            return seen, http.cookies["session"], get_counter(http, service.url + "/counter")

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one_client, range(clients)))

    for seen, _, final in results:
        assert seen == list(range(1, increments + 1))
        assert final == increments
    assert len({cookie for _, cookie, _ in results}) == clients  # one session each


def test_16_threads_on_one_cookie_lose_no_increment(service):
    threads, increments = 16, 20
    with requests.Session() as setup:
        post_counter(setup, service.url + "/inc")
        assert post_counter(setup, service.url + "/reset") == 0
        sid = setup.cookies["session"]
    start = threading.Barrier(threads)

    def one_thread(_: int) -> tuple[list[int], set[str]]:
        with requests.Session() as http:
            http.headers["Cookie"] = f"session={sid}"  # the same cookie in every thread
            start.wait()
            seen, ids = [], set()
            for _ in range(increments):
                response = http.post(service.url + "/inc", timeout=TIMEOUT)
                assert response.status_code == 200, response.text
                seen.append(response.json()["counter"])
                if "session" in response.cookies:
                    ids.add(response.cookies["session"])
            return seen, ids

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one_thread, range(threads)))

    answers = sorted(value for seen, _ in results for value in seen)
    assert answers == list(range(1, threads * increments + 1))  # every answer unique
    assert set().union(*(ids for _, ids in results)) <= {sid}  # never a new session
    with requests.Session() as http:
        http.headers["Cookie"] = f"session={sid}"
        assert get_counter(http, service.url + "/counter") == threads * increments


def test_100_simultaneous_shared_increments_get_exactly_1_to_100(service):
    takers = 100
    start = threading.Barrier(takers)

    def take(_: int) -> int:
        with requests.Session() as http:
            start.wait()
            return post_counter(http, service.url + "/shared/inc")

    with ThreadPoolExecutor(takers) as pool:
        numbers = list(pool.map(take, range(takers)))

    assert sorted(numbers) == list(range(1, takers + 1))
    with requests.Session() as http:
        assert get_counter(http, service.url + "/shared") == takers


def test_two_app_servers_on_one_store_are_one_service(start_service, store_type):
    """A client alternating between two app servers (one Redis, or one directory)."""
    first, second = start_service(), start_service()
    servers = [first.url, second.url]

    with requests.Session() as http:
        seen = [post_counter(http, servers[i % 2] + "/inc") for i in range(20)]
        assert seen == list(range(1, 21))
        assert post_counter(http, servers[1] + "/dec") == 19
        assert [get_counter(http, url + "/counter") for url in servers] == [19, 19]
        taken = [post_counter(http, servers[i % 2] + "/shared/inc") for i in range(10)]
        assert taken == list(range(1, 11))
        assert [get_counter(http, url + "/shared") for url in servers] == [10, 10]
        assert post_counter(http, servers[0] + "/shared/reset") == 0
        sid = http.cookies["session"]

    # And at the same time: one cookie and the shared counter, both servers at once.
    threads, increments = 8, 10
    start = threading.Barrier(threads)

    def one_thread(index: int) -> tuple[list[int], list[int]]:
        url = servers[index % 2]
        with requests.Session() as http:
            http.headers["Cookie"] = f"session={sid}"
            start.wait()
            own = [post_counter(http, url + "/inc") for _ in range(increments)]
            shared = [post_counter(http, url + "/shared/inc") for _ in range(increments)]
            return own, shared

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one_thread, range(threads)))

    own = sorted(value for values, _ in results for value in values)
    shared = sorted(value for _, values in results for value in values)
    total = threads * increments
    assert own == list(range(20, 19 + total + 1))
    assert shared == list(range(1, total + 1))
    with requests.Session() as http:
        http.headers["Cookie"] = f"session={sid}"
        assert [get_counter(http, url + "/counter") for url in servers] == [19 + total] * 2
