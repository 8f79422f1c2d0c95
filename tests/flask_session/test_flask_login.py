"""Flask-Login (the real extension) on the default SESSION_LOCKING='auto', granian and
gunicorn (one worker x 8 threads), every store: a long ``login_required`` read does not
hold up the same user's other reads, and POST routes that change the session stay exact
(issue 23).

The parallel-read timing (same user against different users) is measured by
``bench/session_readers.py``, not asserted here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .test_early_release import finished, wait_for_mark

LOGIN_APP = "tests.flask_session.login_app:create_app()"
#: how long the long read-only view takes (the issue's is 15 s; the point is the same)
SLOW = 2.0


@pytest.fixture
def server(app_server, store_env):
    return app_server(LOGIN_APP, env=store_env, workers=1, threads=8)


def logged_in(server, user="ada"):
    client = requests.Session()
    client.post(f"{server.url}/login/{user}", timeout=10).raise_for_status()
    return client


def test_a_long_read_leaves_the_users_reads_alone_and_posts_stay_exact(server, tmp_path):
    cookie = logged_in(server).cookies["session"]

    def call(method, path):
        with requests.Session() as client:
            client.cookies.set("session", cookie)
            return client.request(method, server.url + path, timeout=30)

    for path in ("/report", "/api/0"):  # each endpoint seen once by the worker
        assert call("GET", path).json()["user"] == "ada"
    mark = tmp_path / "started"
    with ThreadPoolExecutor(7) as pool:
        report = pool.submit(call, "GET", f"/report?delay={SLOW}&mark={mark}")
        wait_for_mark(mark)
        reads = list(pool.map(lambda part: call("GET", f"/api/{part}"), range(6)))
        overlapped = not finished(mark)
        assert report.result().json() == {"user": "ada"}
    assert [read.json() for read in reads] == [{"user": "ada", "part": part} for part in range(6)]
    assert overlapped, "the same user's reads waited for the long read"

    def add(_):
        return [call("POST", "/cart/add").json()["cart"] for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        answers = sorted(value for batch in pool.map(add, range(8)) for value in batch)
    assert answers == list(range(1, 81))
