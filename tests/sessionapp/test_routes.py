"""Every route through Flask's test client, on both stores (see conftest.py)."""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack

import pytest

from tests.support.kits import kit_of

from .conftest import page_numbers, stored_items

#: also on a Redis Cluster, a Sentinel set and Valkey (tests/conftest.py)
pytestmark = pytest.mark.redis_topologies

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BROWSER = {"Accept": BROWSER_ACCEPT}
JSON = {"Accept": "application/json"}


def set_cookies(response) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


# -- a new client changes nothing ------------------------------------------------------------


def test_a_new_client_gets_the_page_with_zeros_and_the_store_name(app, client, store_name):
    response = client.get("/", headers=BROWSER)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.text
    assert page_numbers(html) == (0, 0)
    assert f'id="store">{store_name}<' in html
    for label in ("Increment", "Decrement", "Reset", "Take a shared number"):
        assert re.search(rf"<button type=\"submit\"[^>]*>{label}</button>", html), label
    assert html.count('<form method="post"') == 4  # three own, one shared: no JS needed
    assert "Traceback" not in html


@pytest.mark.parametrize("path", ["/", "/counter", "/healthz", "/shared"])
def test_reading_creates_nothing_in_the_store_and_sets_no_cookie(app, client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert stored_items(app) == []


def test_counter_is_zero_for_a_new_client(client):
    response = client.get("/counter")
    assert response.get_json() == {"counter": 0}
    assert response.mimetype == "application/json"


def test_reset_by_a_new_client_answers_zero_and_creates_nothing(app, client):
    response = client.post("/reset")
    assert response.get_json() == {"counter": 0}
    assert set_cookies(response) == []
    assert stored_items(app) == []


def test_healthz_names_the_store(client, store_name):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "store": store_name}


# -- the caller's own counter ----------------------------------------------------------------


def test_inc_dec_reset_answer_the_new_value_by_post_and_by_get(client):
    steps = [
        ("post", "/inc", 1),
        ("get", "/inc", 2),
        ("post", "/inc", 3),
        ("post", "/dec", 2),
        ("get", "/dec", 1),
        ("post", "/dec", 0),
        ("post", "/dec", -1),
        ("post", "/reset", 0),
        ("post", "/inc", 1),
        ("get", "/reset", 0),
        ("get", "/dec", -1),
    ]
    for method, path, expected in steps:
        response = getattr(client, method)(path)
        assert response.status_code == 200, (method, path)
        assert response.mimetype == "application/json"
        assert response.get_json() == {"counter": expected}, (method, path)
        assert client.get("/counter").get_json() == {"counter": expected}


def test_the_first_increment_sets_a_strict_session_cookie_and_stores_one_session(app, client):
    response = client.post("/inc")
    cookies = set_cookies(response)
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # off by default so plain-HTTP localhost works
    assert len(stored_items(app)) == 1
    # Later increments keep the same id.
    sid = session_cookie(client)
    client.post("/inc")
    assert session_cookie(client) == sid
    assert len(stored_items(app)) == 1


def test_secure_cookies_can_be_switched_on(make_app):
    client = make_app(SESSION_COOKIE_SECURE=True).test_client()
    assert "Secure" in client.post("/inc").headers["Set-Cookie"]


def test_each_client_has_its_own_counter(app):
    alice, bob, carol = app.test_client(), app.test_client(), app.test_client()
    for _ in range(3):
        alice.post("/inc")
    bob.post("/inc")
    bob.post("/dec")
    bob.post("/dec")
    assert alice.get("/counter").get_json() == {"counter": 3}
    assert bob.get("/counter").get_json() == {"counter": -1}
    assert carol.get("/counter").get_json() == {"counter": 0}
    alice.post("/reset")
    assert alice.get("/counter").get_json() == {"counter": 0}
    assert bob.get("/counter").get_json() == {"counter": -1}
    assert session_cookie(alice) != session_cookie(bob)


def test_a_cookie_naming_no_session_starts_a_fresh_counter(app, client):
    client.set_cookie("session", "A" * 43)  # well-formed, never issued
    assert client.get("/counter").get_json() == {"counter": 0}
    assert stored_items(app) == []
    assert client.post("/inc").get_json() == {"counter": 1}
    assert session_cookie(client) != "A" * 43


def test_the_page_shows_the_callers_own_counter(app):
    alice, bob = app.test_client(), app.test_client()
    alice.post("/inc")
    alice.post("/inc")
    bob.post("/dec")
    assert page_numbers(alice.get("/").text)[0] == 2
    assert page_numbers(bob.get("/").text)[0] == -1


# -- browsers' form posts --------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [("/inc", 1), ("/dec", -1), ("/reset", 0)])
def test_a_browser_form_post_is_sent_back_to_the_page_with_303(client, path, expected):
    response = client.post(path, headers=BROWSER)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert client.get("/counter").get_json() == {"counter": expected}


def test_following_the_redirect_shows_the_new_count(client):
    client.post("/inc", headers=BROWSER)
    response = client.post("/inc", headers=BROWSER, follow_redirects=True)
    assert response.status_code == 200
    assert page_numbers(response.text)[0] == 2


def test_json_and_any_type_clients_get_json(client):
    for headers in (JSON, {"Accept": "*/*"}, {}):
        response = client.post("/inc", headers=headers)
        assert response.status_code == 200
        assert response.mimetype == "application/json"


def test_taking_a_shared_number_in_a_form_shows_the_number_taken(client):
    client.post("/shared/inc")
    response = client.post("/shared/inc", headers=BROWSER)
    assert response.status_code == 303
    assert response.headers["Location"] == "/?taken=2"
    page = client.get(response.headers["Location"], headers=BROWSER).text
    assert 'id="taken-number">2<' in page
    assert page_numbers(page) == (0, 2)
    response = client.post("/shared/reset", headers=BROWSER)
    assert (response.status_code, response.headers["Location"]) == (303, "/")


# -- the shared counter ----------------------------------------------------------------------


def test_the_shared_counter_hands_out_numbers_to_everyone_in_turn(app):
    alice, bob = app.test_client(), app.test_client()
    assert alice.get("/shared").get_json() == {"counter": 0}
    assert alice.post("/shared/inc").get_json() == {"counter": 1}
    assert bob.post("/shared/inc").get_json() == {"counter": 2}
    assert alice.post("/shared/inc").get_json() == {"counter": 3}
    assert bob.get("/shared").get_json() == {"counter": 3}
    assert page_numbers(bob.get("/").text) == (0, 3)
    assert bob.post("/shared/reset").get_json() == {"counter": 0}
    assert alice.get("/shared").get_json() == {"counter": 0}
    assert alice.post("/shared/inc").get_json() == {"counter": 1}


def test_shared_counter_routes_do_not_touch_the_session(app, client):
    for response in (
        client.post("/shared/inc"),
        client.get("/shared"),
        client.post("/shared/reset"),
    ):
        assert response.status_code == 200
        assert set_cookies(response) == []
    assert session_cookie(client) is None


def test_the_shared_counter_lives_in_the_store_not_in_the_process(app, make_app, store_type):
    client = app.test_client()
    for _ in range(3):
        client.post("/shared/inc")
    store = app.session_interface.store
    assert store.counter_value("shared") == 3
    if store_type == "filesystem":
        with open(store.counter_path("shared"), "rb") as file:
            assert file.read() == b"%020d\n" % 3
    # A second app (another worker process, another server) on the same store agrees.
    other = make_app().test_client()
    assert other.get("/shared").get_json() == {"counter": 3}
    assert other.post("/shared/inc").get_json() == {"counter": 4}
    assert client.get("/shared").get_json() == {"counter": 4}


def test_one_session_seen_by_two_apps_is_one_counter(app, make_app):
    first = app.test_client()
    first.post("/inc")
    second = make_app().test_client()
    second.set_cookie("session", session_cookie(first))
    assert second.post("/inc").get_json() == {"counter": 2}
    assert first.post("/inc").get_json() == {"counter": 3}


# -- methods, unknown routes, headers --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/shared/inc"),
        ("get", "/shared/reset"),
        ("post", "/shared"),
        ("post", "/counter"),
        ("post", "/healthz"),
        ("put", "/inc"),
        ("delete", "/reset"),
        ("patch", "/dec"),
        ("delete", "/"),
    ],
)
def test_wrong_methods_answer_405_as_json_with_allow(app, client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    assert response.headers["Allow"]
    assert response.headers["Cache-Control"] == "no-store"
    assert stored_items(app) == []


@pytest.mark.parametrize("path", ["/inc", "/dec", "/reset"])
def test_head_never_changes_a_counter(client, path):
    client.post("/inc")
    response = client.head(path)
    assert response.status_code == 405
    assert "HEAD" not in response.headers["Allow"]
    assert client.get("/counter").get_json() == {"counter": 1}


@pytest.mark.parametrize("path", ["/nope", "/inc/", "/static/missing.js", "/shared/inc/x"])
def test_unknown_routes_answer_404_as_json(app, client, path):
    response = client.post(path) if path.startswith("/shared") else client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert list(response.get_json()) == ["error"]
    assert stored_items(app) == []


def test_errors_are_short_pages_for_browsers(client):
    response = client.get("/nope", headers=BROWSER)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<h1>404 Not Found</h1>" in response.text
    response = client.put("/inc", headers=BROWSER)
    assert response.status_code == 405
    assert response.mimetype == "text/html"


def test_an_unexpected_error_is_a_500_without_traceback(make_app):
    app = make_app(TESTING=False)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    client = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    assert list(response.get_json()) == ["error"]
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    page = client.get("/boom", headers=BROWSER)
    assert page.status_code == 500
    assert "Traceback" not in page.text and "secret internals" not in page.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", "/counter"),
        ("post", "/inc"),
        ("get", "/inc"),
        ("post", "/dec"),
        ("post", "/reset"),
        ("post", "/shared/inc"),
        ("get", "/shared"),
        ("post", "/shared/reset"),
        ("get", "/healthz"),
    ],
)
def test_dynamic_answers_are_never_cached(client, method, path):
    client.post("/inc")  # with a session, so session-dependent answers really depend on it
    for headers in (JSON, BROWSER):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code in (200, 303)
        assert response.headers["Cache-Control"] == "no-store", (method, path, headers)


def test_session_answers_vary_on_the_cookie(client):
    client.post("/inc")
    for response in (client.get("/"), client.get("/counter"), client.post("/inc")):
        assert "Cookie" in response.headers.get("Vary", "")


def test_static_files_are_served_and_cacheable(client):
    for name, mimetype in [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.mimetype == mimetype
        assert "no-store" not in response.headers.get("Cache-Control", "")
        assert response.headers.get("Set-Cookie") is None
        response.close()


# -- store outages ---------------------------------------------------------------------------


def test_a_store_outage_answers_503_with_retry_after_and_recovers(
    app, store_type, store_name, redis_server, request
):
    if store_type == "sqlite":
        pytest.skip("a SQLite file has no server to stop; see test_sql_and_memcached_stores.py")
    client = app.test_client()
    client.post("/inc")
    store = app.session_interface.store
    outage = ExitStack()  # the kit's outage: the server stopped, or the directory gone
    request.addfinalizer(outage.close)  # the store back even if an assertion fails
    outage.enter_context(kit_of(store).outage(request, store))

    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["store"]) == ("unavailable", store_name)
    assert body["reason"].startswith("the session store "), body  # why, in client-safe words
    assert health.headers["Retry-After"] == "1"

    for method, path in [
        ("post", "/inc"),
        ("get", "/dec"),
        ("post", "/reset"),
        ("get", "/counter"),
        ("post", "/shared/inc"),
        ("get", "/shared"),
        ("post", "/shared/reset"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 503, (method, path)
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert list(body) == ["error"] and "session store" in body["error"]
        assert body["error"].endswith("Try again shortly.")
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["Cache-Control"] == "no-store"
        # No internals: neither the Redis address nor the directory.
        assert str(redis_server.port) not in response.text
        assert app.session_interface.store.name == store_name
        if store_type == "filesystem":
            assert app.session_interface.store.directory not in response.text

    page = client.get("/", headers=BROWSER)
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    assert "unavailable" in page.text and "Traceback" not in page.text
    assert int(page.headers["Retry-After"]) >= 1

    outage.close()
    assert client.get("/healthz").status_code == 200
    assert client.post("/inc").status_code == 200  # the same app, no restart
    assert client.post("/shared/inc").status_code == 200


def test_a_session_held_past_the_lock_timeout_answers_503_busy(make_app):
    app = make_app(SESSION_LOCK_TIMEOUT=0.3)
    client = app.test_client()
    client.post("/inc")
    # Held by another app server whose Redis lock lease (its lock timeout) is longer
    # than this app's wait, so the lease cannot run out while this app waits.
    store = make_app(SESSION_LOCK_TIMEOUT=10).session_interface.store
    held = store.load(session_cookie(client), lock=True, refresh_ttl=None)
    try:
        response = client.post("/reset")  # reads and writes: needs the lock
        assert response.status_code == 503
        assert "busy" in response.get_json()["error"]
        assert response.headers["Retry-After"]
        # Reading views never wait for the lock: the last saved value, at once.
        started = time.monotonic()
        assert client.get("/counter").get_json() == {"counter": 1}
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 200
        assert time.monotonic() - started < 0.25
    finally:
        store.release(session_cookie(client), held.lock)
    assert client.post("/reset").get_json() == {"counter": 0}


def test_increments_wait_for_a_reset_holding_the_session(make_app):
    """A reset takes the session's lock; an increment racing it lands after it, never lost."""
    app = make_app()
    client = app.test_client()
    client.post("/inc")
    sid = session_cookie(client)
    store = app.session_interface.store
    held = store.load(sid, lock=True, refresh_ttl=None)  # stands in for a slow reset
    answers: list[int] = []

    def increment() -> None:
        other = app.test_client()
        other.set_cookie("session", sid)
        answers.append(other.post("/inc").get_json()["counter"])

    worker = threading.Thread(target=increment)
    worker.start()
    worker.join(0.2)
    assert worker.is_alive()  # waiting for the lock
    store.release(sid, held.lock)
    worker.join(5)
    assert answers == [2]
