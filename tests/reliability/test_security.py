"""Issue 4, point 8: cookie flags, session ids, regenerate, security headers.

Cookie and id checks run on the service (Flask's test client and a real granian); the
regenerate checks on the flask_session demo app (the service has no login to regenerate
at); the headers on the service's every kind of answer, and in a real browser, whose
console must show no Content-Security-Policy violation while the page's script works.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest
from flask import Flask, jsonify

from flask_session import SessionConfigError
from sessionapp import security
from tests.flask_session.demo_app import create_app as create_demo_app
from tests.reliability import httpkit
from tests.reliability.conftest import DEMO_APP, SERVICE_APP, needs_service
from tests.support.store_contents import opened_store

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
# 256 bits = 42 base64 characters of 6 bits + 4 bits: the last character of an unpadded
# URL-safe encoding of 32 bytes is one of these 16.
LAST_CHARACTER_OF_256_BITS = set("AEIMQUYcgkosw048")

EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@pytest.fixture
def service(store_config, in_process_app):
    needs_service()
    from sessionapp import create_app

    return in_process_app(create_app, {"TESTING": True, **store_config})


def set_cookie_header(response, name: str = "session") -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return headers[0]


def attributes(header: str) -> dict[str, str]:
    """Set-Cookie attributes, lower-cased names -> value ("" for flags)."""
    result = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        result[name.lower()] = value
    return result


# -- cookie flags -----------------------------------------------------------------------


def test_session_cookie_is_httponly_samesite_lax_and_not_secure_by_default(service):
    header = set_cookie_header(service.test_client().post("/inc"))
    attrs = attributes(header)
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"
    assert "secure" not in attrs  # plain-HTTP clients on localhost keep working
    assert attrs["path"] == "/"
    assert "domain" not in attrs


def test_secure_is_switched_on_by_config(store_config, in_process_app):
    needs_service()
    from sessionapp import create_app

    config = {"TESTING": True, **store_config, "SESSION_COOKIE_SECURE": True}
    app = in_process_app(create_app, config)
    client = app.test_client()
    response = client.post("/inc", base_url="https://localhost")
    assert "secure" in attributes(set_cookie_header(response))
    assert client.post("/inc", base_url="https://localhost").json == {"counter": 2}


def test_host_prefixed_cookie_works_with_secure_under_granian(granian_server, store_env):
    """``__Host-session`` + Secure from FLASK_* variables: set correctly and accepted back."""
    needs_service()
    env = {
        **store_env,
        "FLASK_SESSION_COOKIE_SECURE": "true",
        "FLASK_SESSION_COOKIE_NAME": "__Host-session",
    }
    server = granian_server(SERVICE_APP, env=env, workers=1, threads=2)
    first = httpkit.request(server.url, "POST", "/inc")
    header = first.cookie_attributes("__Host-session")
    assert header is not None, first.set_cookies
    attrs = attributes(header)
    assert "secure" in attrs and "httponly" in attrs and attrs["path"] == "/"
    assert "domain" not in attrs  # a __Host- cookie must not carry one
    cookie = f"__Host-session={first.cookie('__Host-session')}"
    assert httpkit.request(server.url, "POST", "/inc", cookie=cookie).json() == {"counter": 2}


def test_host_prefixed_cookie_without_secure_is_refused_at_start_up(store_config):
    needs_service()
    from sessionapp import create_app

    with pytest.raises(SessionConfigError, match="SESSION_COOKIE_NAME"):
        create_app({**store_config, "SESSION_COOKIE_NAME": "__Host-session"})


def test_servers_refuse_to_start_with_host_prefix_and_no_secure(app_server, store_env):
    needs_service()
    env = {**store_env, "FLASK_SESSION_COOKIE_NAME": "__Host-session"}
    with pytest.raises(RuntimeError) as failure:
        app_server(SERVICE_APP, env=env, workers=1, threads=1, ready_timeout=15)
    assert "SESSION_COOKIE_NAME" in str(failure.value)
    assert "SESSION_COOKIE_SECURE" in str(failure.value)


# -- session ids --------------------------------------------------------------------------


def test_ids_are_43_url_safe_characters_carrying_256_bits(service):
    ids = []
    for _ in range(200):
        client = service.test_client()
        header = set_cookie_header(client.post("/inc"))
        ids.append(header.split(";", 1)[0].split("=", 1)[1])
    assert len(set(ids)) == len(ids)
    for sid in ids:
        assert ID_PATTERN.fullmatch(sid), sid
        assert len(base64.urlsafe_b64decode(sid + "=")) == 32
        assert sid[-1] in LAST_CHARACTER_OF_256_BITS, sid
    # 200 ids of 42 full characters each: every one of the 64 symbols shows up (a
    # generator with less entropy per character, e.g. hex, would not).
    assert len(set("".join(sid[:-1] for sid in ids))) == 64
    assert {sid[-1] for sid in ids} <= LAST_CHARACTER_OF_256_BITS


def test_regenerate_kills_the_old_id(store_config, in_process_app):
    # with no grace window: the old id ends at once (the window: test_lifetimes.py)
    config = {"TESTING": True, **store_config, "SESSION_REGENERATE_GRACE": 0}
    app = in_process_app(create_demo_app, config)
    client = app.test_client()
    client.post("/set/x?value=secret")
    old = client.get_cookie("session").value
    regenerated = client.post("/regenerate")
    new = client.get_cookie("session").value
    assert regenerated.json == {"x": "secret"}
    assert new != old and ID_PATTERN.fullmatch(new)
    assert client.get("/get").json == {"x": "secret"}  # the data moved to the new id

    attacker = app.test_client()  # someone who learned the old id (session fixation)
    attacker.set_cookie("session", old)
    assert attacker.get("/get").json == {}
    assert attacker.post("/incr/x2").json == {"value": 1}  # a fresh session, not the old one
    assert attacker.get_cookie("session").value not in (old, new)
    with opened_store(store_config) as (kit, store):  # looked up in the store itself
        assert not kit.holds(store, old) and kit.holds(store, new)


def test_regenerate_over_http_under_granian(granian_server, store_env):
    env = {**store_env, "FLASK_SESSION_REGENERATE_GRACE": "0"}
    server = granian_server(DEMO_APP, env=env, workers=2, threads=2)
    first = httpkit.request(server.url, "POST", "/set/x?value=1")
    old = first.cookie("session")
    regenerated = httpkit.request(server.url, "POST", "/regenerate", cookie=f"session={old}")
    new = regenerated.cookie("session")
    assert new and new != old
    assert httpkit.request(server.url, "GET", "/get", cookie=f"session={old}").json() == {}
    assert httpkit.request(server.url, "GET", "/get", cookie=f"session={new}").json() == {"x": "1"}


# -- security headers -----------------------------------------------------------------------


def assert_security_headers(headers, what: str) -> None:
    headers = {name.lower(): value for name, value in dict(headers).items()}
    for name, value in EXPECTED_HEADERS.items():
        name = name.lower()
        assert headers.get(name) == value, f"{what}: {name} is {headers.get(name)!r}"
    csp = headers.get("content-security-policy") or ""
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp, f"{what}: CSP {csp!r} lacks {directive!r}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_init_app_adds_headers_to_every_response_and_keeps_a_views_own():
    app = Flask(__name__)
    security.init_app(app)

    @app.get("/")
    def index():
        return "hi"

    @app.get("/framable")
    def framable():
        response = jsonify(ok=True)
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    client = app.test_client()
    for path in ("/", "/missing", "/boom"):
        assert_security_headers(client.get(path).headers, path)
    assert client.get("/framable").headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_hsts_only_when_configured():
    app = Flask(__name__)
    app.config["SECURITY_HSTS_SECONDS"] = 31536000
    security.init_app(app)
    app.get("/")(lambda: "hi")
    assert app.test_client().get("/").headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/", {"Accept": "text/html"}),
        ("POST", "/inc", {}),
        ("POST", "/inc", {"Accept": "text/html"}),  # the 303 back to the page
        ("GET", "/counter", {}),
        ("POST", "/shared/inc", {}),
        ("GET", "/healthz", {}),
        ("GET", "/static/style.css", {}),
        ("GET", "/static/app.js", {}),
        ("GET", "/no-such-page", {}),
        ("DELETE", "/inc", {}),
    ],
)
def test_service_sends_security_headers_on_every_answer(service, method, path, headers):
    with service.test_client().open(path, method=method, headers=headers) as response:
        assert response.status_code < 500
        assert_security_headers(response.headers, f"{method} {path} -> {response.status_code}")


@pytest.mark.parametrize("store_type", ["redis"])  # the outage: redis-server stopped
def test_service_sends_security_headers_on_a_503(
    store_config, store_type, redis_server, in_process_app
):
    """A store outage during the view: the app's 503 still carries the headers."""
    needs_service()
    from sessionapp import create_app

    app = in_process_app(create_app, {"TESTING": True, **store_config})
    redis_server.stop()
    try:
        response = app.test_client().post("/inc")
    finally:
        redis_server.start()
    assert response.status_code == 503
    assert_security_headers(response.headers, "503 raised in the view")


@pytest.mark.parametrize("store_type", ["redis"])  # the outage: redis-server stopped
def test_service_sends_security_headers_on_a_503_raised_while_saving(
    store_config, store_type, redis_server, in_process_app
):
    """POST /reset loads the session (locked), then the store dies before the save."""
    needs_service()
    from sessionapp import create_app

    app = in_process_app(create_app, {"TESTING": True, **store_config})
    client = app.test_client()
    client.post("/inc")

    def outage_before_save(response):
        redis_server.stop()
        return response

    app.after_request_funcs.setdefault(None, []).insert(0, outage_before_save)
    try:
        response = client.post("/reset")
    finally:
        redis_server.start()
    assert response.status_code == 503
    assert_security_headers(response.headers, "503 raised while saving")


class _PageAudit(HTMLParser):
    """Finds what a strict CSP would block: inline scripts, styles, handlers, foreign URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if not attrs.get("src"):
                self.problems.append("inline <script>")
            elif not attrs["src"].startswith("/"):
                self.problems.append(f"script from {attrs['src']}")
        if tag == "style":
            self.problems.append("<style> block")
        if tag == "link" and not (attrs.get("href") or "/").startswith("/"):
            self.problems.append(f"link to {attrs['href']}")
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{name}= attribute on <{tag}>")


def test_the_page_fits_the_content_security_policy(service):
    html = service.test_client().get("/", headers={"Accept": "text/html"}).text
    audit = _PageAudit()
    audit.feed(html)
    assert audit.problems == []


def test_the_page_works_in_a_real_browser_without_csp_violations(
    granian_server, browser, tmp_path
):
    from playwright.sync_api import expect

    needs_service()
    env = {"FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions")}
    server = granian_server(SERVICE_APP, env=env, workers=1, threads=2)
    context = browser.new_context()
    try:
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda message: messages.append(message.text))
        response = page.goto(server.url + "/")
        assert_security_headers(response.all_headers(), "GET / in Chromium")
        page.get_by_role("button", name="Increment").click()
        # (expect() polls from Playwright's own script: a wait_for_function string would
        # be an eval, which this very policy forbids.)
        expect(page.locator("#counter")).to_have_text("1", timeout=15_000)
        assert page.url.rstrip("/") == server.url  # updated in place by the script
        cookies = context.cookies()
        session_cookie = next(c for c in cookies if c["name"] == "session")
        assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    finally:
        context.close()
    violations = [m for m in messages if "Content Security Policy" in m]
    assert violations == []
