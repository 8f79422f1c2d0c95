"""No lost updates across real worker processes: each server (granian, gunicorn), 2 workers x
4 threads, every store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

DEMO_APP = "tests.flask_session.demo_app:create_app()"


@pytest.fixture
def server(app_server, store_env):
    return app_server(DEMO_APP, env=store_env, workers=2, threads=4)


def new_client(server, first_path="/set/init"):
    """A requests.Session holding a fresh session cookie."""
    client = requests.Session()
    response = client.post(server.url + first_path, timeout=10)
    response.raise_for_status()
    assert "session" in client.cookies
    return client


def hammer_one_cookie(server, path, threads=16, per_thread=20):
    """``threads`` clients sharing ONE cookie each POST ``path`` ``per_thread`` times."""
    cookie = new_client(server).cookies["session"]

    def work(_):
        with requests.Session() as client:
            client.cookies.set("session", cookie)
            return [
                client.post(server.url + path, timeout=30).status_code for _ in range(per_thread)
            ]

    with ThreadPoolExecutor(threads) as pool:
        statuses = [status for batch in pool.map(work, range(threads)) for status in batch]
    with requests.Session() as reader:
        reader.cookies.set("session", cookie)
        final = reader.get(server.url + "/get", timeout=10).json()
    return statuses, final


@pytest.mark.parametrize("path", ["/incr/n", "/rmw/n"], ids=["atomic-incr", "read-modify-write"])
def test_16_threads_x_20_increments_on_one_cookie_end_at_320(server, path):
    statuses, final = hammer_one_cookie(server, path)
    assert statuses == [200] * 320
    assert final["n"] == 320


def test_100_clients_each_see_exactly_their_own_sequence(server):
    def client_run(_):
        with requests.Session() as client:
            seen = [
                client.post(server.url + "/incr/n", timeout=30).json()["value"] for _ in range(20)
            ]
            final = client.get(server.url + "/get", timeout=10).json()
        return seen, final

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client_run, range(100)))
    for seen, final in results:
        assert seen == list(range(1, 21))
        assert final == {"n": 20}


@pytest.mark.parametrize("locking", ["true", "false"])
def test_two_concurrent_requests_writing_different_keys_keep_both(
    granian_server, store_env, locking
):
    server = granian_server(DEMO_APP, env={**store_env, "FLASK_SESSION_LOCKING": locking})
    client = new_client(server, "/set/gone?value=1")
    cookie = client.cookies["session"]

    def request(path):
        with requests.Session() as other:
            other.cookies.set("session", cookie)
            return other.post(server.url + path, timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:
        # The slow one loads first and saves last; without merging it would revert b.
        slow = pool.submit(request, "/set/a?value=A&delay=0.5")
        fast = pool.submit(request, "/set/b?value=B")
        deleter = pool.submit(request, "/delete/gone")
        assert (slow.result(), fast.result(), deleter.result()) == (200, 200, 200)
    assert client.get(server.url + "/get", timeout=10).json() == {"a": "A", "b": "B"}
