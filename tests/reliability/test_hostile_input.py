"""Issue 4, point 4: hostile input never breaks the service or crosses sessions.

Property-based (hypothesis, Flask's test client: fast) and table-driven, on both stores:
arbitrary cookie values (any byte a raw request can carry, overlong, path traversal, NUL,
unicode, many session cookies in one header), odd methods and bodies on every route.
For every request: never a 5xx; a victim session's counter is neither shown nor changed
unless the request really carried the victim's id. Around the whole run: no file appears
outside the session directory, the store holds only ids the server issued (no entry, no
lock, for an id a client made up). A raw-socket table against a real gunicorn covers what
the test client cannot send.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_cookie

from tests.reliability import httpkit
from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.support.kits.filesystem import counter_file_name, file_name_for, session_files
from tests.support.store_contents import names_of, stored_lock_count, stored_session_names

VICTIM_COUNTER = 4242  # a number no hostile request can reach on its own
ROUTES = [
    "/", "/inc", "/dec", "/reset", "/counter", "/shared", "/shared/inc", "/shared/reset",
    "/healthz", "/static/app.js", "/static/style.css", "/nowhere",
]  # fmt: skip
ODD_PATHS = [
    "/static/../config.py", "/static/%2e%2e/config.py", "/..%2f..%2fetc/passwd",
    "/inc/", "//inc", "/inc?counter=999999", "/counter;session=x", "/%00", "/inc%00",
    "/\u00e9", "/" + "a" * 3000,
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]
URLSAFE = string.ascii_letters + string.digits + "-_"
TRAVERSAL = [
    "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "..\\..\\windows",
    "....//....//x", "%2e%2e%2f", "\\\\server\\share", "./.session", "../sessions/x.session",
]  # fmt: skip


@pytest.fixture
def service(store_config, store_type, tmp_path, redis_server, in_process_app):
    """The service on a fresh store, a victim session with a known counter, and checks."""
    needs_service()
    from sessionapp import create_app

    app = in_process_app(create_app, {"TESTING": True, **store_config})
    return HostileRun(app, store_type, tmp_path, redis_server)


class HostileRun:
    def __init__(self, app, store_type: str, tmp_path: Path, redis_server) -> None:
        self.app = app
        self.store_type = store_type
        self.tmp_path = tmp_path
        self.redis_server = redis_server
        self.session_dir = Path(app.config["SESSION_FILE_DIR"])
        # where the store writes: its directory, or a SQLite database's directory
        self.store_dirs = {self.session_dir}
        database_url = str(app.config.get("SESSION_SQLALCHEMY_URL") or "")
        if database_url.startswith("sqlite:///"):
            self.store_dirs.add(Path(database_url.removeprefix("sqlite:///")).parent)
        self.issued: set[str] = set()
        self.sent = 0
        client = app.test_client()
        first = client.post("/inc")
        self.victim = client.get_cookie("session").value
        self.issued.add(self.victim)
        assert first.json == {"counter": 1}
        store = app.session_interface.store
        store.incr(self.victim, "counter", VICTIM_COUNTER - 1, ttl=3600, create=False)
        assert self.victim_counter() == VICTIM_COUNTER
        self.outside_before = self.files_outside_session_dir()

    def victim_counter(self) -> int:
        client = self.app.test_client(use_cookies=False)
        return client.get("/counter", headers={"Cookie": f"session={self.victim}"}).json["counter"]

    def carries_victim(self, cookie_header: str) -> bool:
        try:
            values = parse_cookie(cookie_header).getlist("session")
        except UnicodeError:
            return False
        return self.victim in values

    def send(
        self,
        method: str,
        path: str,
        cookie: str | None,
        body: bytes = b"",
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> None:
        """One hostile request through the test client, checked on the spot."""
        headers = {"Accept": accept}
        if cookie is not None:
            # CR and LF end a header line on the wire, so no client can send them inside
            # one (the raw-socket table sends a bare CR); everything else goes as is.
            cookie = cookie.replace("\r", "").replace("\n", "")
            headers["Cookie"] = cookie
        if content_type:
            headers["Content-Type"] = content_type
        client = self.app.test_client(use_cookies=False)
        self.sent += 1
        with client.open(path, method=method, headers=headers, data=body) as response:
            status = response.status_code
            text = response.get_data(as_text=True) if method != "HEAD" else ""
            for header in response.headers.getlist("Set-Cookie"):
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if name == "session" and value:
                    self.issued.add(value)
        what = f"{method} {path!r} Cookie: {cookie!r:.200}"
        assert status < 500, f"{what} -> {status}: {text[:300]}"
        if cookie is None or not self.carries_victim(cookie):
            assert str(VICTIM_COUNTER) not in text, f"{what} showed the victim's counter"
            if status == 200 and path in ("/reset", "/inc", "/dec"):
                # it acted on some session: never the victim's
                assert self.victim_counter() == VICTIM_COUNTER, f"{what} changed the victim"

    # -- whole-run checks ----------------------------------------------------------------

    def files_outside_session_dir(self) -> dict[str, int]:
        found = {}
        for root, dirs, files in os.walk(self.tmp_path):
            dirs[:] = [d for d in dirs if Path(root, d) not in self.store_dirs]
            for name in files:
                path = Path(root, name)
                found[str(path)] = path.stat().st_size
        return found

    def check_store(self) -> None:
        assert self.victim_counter() == VICTIM_COUNTER
        assert self.files_outside_session_dir() == self.outside_before
        assert not list(Path("/tmp").glob("hostile-*")), "a traversal cookie wrote to /tmp"
        if self.store_type == "filesystem":
            names = set(os.listdir(self.session_dir))
            allowed = {file_name_for(sid) for sid in self.issued} | {counter_file_name()}
            assert names <= allowed, f"files for ids never issued: {sorted(names - allowed)}"
            assert session_files(self.session_dir)  # (the victim, at least)
            return
        stored = stored_session_names(self.app.config)
        issued = names_of(self.issued, self.app.config)
        assert stored <= issued, f"entries for ids never issued: {stored - issued}"
        assert stored_lock_count(self.app.config) == 0, "locks left behind"
        if self.store_type == "redis":
            with self.redis_server.client() as client:
                other = {
                    key.decode() for key in client.scan_iter("*") if not key.startswith(b"session:")
                }
            assert other <= {"sessionapp:shared-counter"}, other


# -- strategies ------------------------------------------------------------------------------


def _latin1(data: bytes) -> str:
    """Bytes as a WSGI server hands them to the app (ISO-8859-1 decoded)."""
    return data.decode("latin-1")


def near_misses(sid: str) -> list[str]:
    """Ids that look like ``sid`` but are not it."""
    swapped = sid.swapcase()
    flipped = ("B" if sid[0] != "B" else "C") + sid[1:]
    return [sid[:-1], sid + "A", sid + sid, swapped, flipped, sid[::-1], f"{sid}\x00",
            f"\x00{sid}", sid.replace("-", "+").replace("_", "/") + "="]  # fmt: skip


session_values = st.one_of(
    st.text(alphabet=URLSAFE, min_size=43, max_size=43),  # right shape, never issued
    st.text(alphabet=URLSAFE, min_size=0, max_size=200),
    st.sampled_from(TRAVERSAL),
    st.binary(max_size=120).map(_latin1),  # any byte at all, NUL included
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80).map(
        lambda t: _latin1(t.encode("utf-8"))
    ),  # unicode as a client would send it: UTF-8 bytes
    st.integers(min_value=44, max_value=20_000).map(lambda n: "A" * n),  # overlong
    st.just(base64.urlsafe_b64encode(b"\0" * 32).decode().rstrip("=")),
)

cookie_headers = st.one_of(
    st.none(),
    session_values.map(lambda value: f"session={value}"),
    st.lists(session_values, min_size=2, max_size=12).map(
        lambda values: "; ".join(f"session={value}" for value in values)
    ),  # many session cookies in one header
    st.binary(max_size=300).map(_latin1),  # not even name=value
)

requests_ = st.tuples(
    st.sampled_from(METHODS) | st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=12),
    st.sampled_from(ROUTES + ODD_PATHS),
    cookie_headers,
    st.binary(max_size=2000),
    st.sampled_from([None, "application/json", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "text/plain; charset=\u00ff"]),
    st.sampled_from(["application/json", "text/html", "*/*", "", "text/html;q=0.1, x/y"]),
)  # fmt: skip


EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "150"))


def test_hostile_requests_never_5xx_nor_cross_sessions(service):
    """Random requests (method, path, cookie header, body, content type, Accept).

    ``@given`` runs inside the test so every example shares one app and store, and the
    whole-run checks (files, store entries, locks) see what all of them left behind.
    """

    @settings(
        max_examples=EXAMPLES,
        deadline=3000,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(request=requests_)
    def run(request):
        method, path, cookie, body, content_type, accept = request
        service.send(method, path, cookie, body, content_type, accept)

    run()
    print(f"{service.sent} hostile requests")
    assert service.sent >= EXAMPLES  # (hypothesis may also replay a few)
    service.check_store()


def test_near_misses_of_a_real_id_reach_nothing(service):
    """Ids one edit away from the victim's (alone or among junk) are fresh sessions."""

    @settings(
        max_examples=EXAMPLES // 3,
        deadline=3000,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.data())
    def run(data):
        value = data.draw(st.sampled_from(near_misses(service.victim)))
        extra = data.draw(st.lists(session_values, max_size=3))
        values = data.draw(st.permutations([value, *extra]))
        cookie = "; ".join(f"session={v}" for v in values)
        path = data.draw(st.sampled_from(["/inc", "/dec", "/reset", "/counter", "/"]))
        service.send(data.draw(st.sampled_from(["GET", "POST"])), path, cookie)

    run()
    service.check_store()


def test_store_holds_only_issued_ids_after_hostile_runs(service):
    """The whole-run checks, after a table of hand-picked hostile cookies on every route."""
    marker = f"hostile-{secrets.token_hex(4)}"
    table = [
        *TRAVERSAL,
        f"../../../../../../tmp/{marker}",
        f"/tmp/{marker}",
        "A" * 43,
        "A" * 100_000,
        "\x00" * 43,
        "é" * 43,
        _latin1("é".encode()) * 22,
        "session",
        '"' + "A" * 41 + '"',
        *near_misses(service.victim),
    ]
    for value in table:
        for route in ROUTES:
            for method in ("GET", "POST"):
                service.send(method, route, f"session={value}")
    service.send("POST", "/inc", "; ".join(f"session={v}" for v in table[:20]))
    service.send("POST", "/inc", "; ".join(["session=" + "B" * 43] * 200))
    service.check_store()


# -- raw bytes against each real server (granian, gunicorn) --------------------------------

POST_INC = b"POST /inc HTTP/1.1\r\n"
POST_INC_COOKIE = POST_INC + b"Cookie: session="
RAW_TABLE = [
    # (label, raw request; Host and Connection headers are added)
    ("bytes 0x80-0xff in the cookie", POST_INC_COOKIE + bytes(range(128, 256)) + b"\r\n"),
    ("invalid UTF-8 in another cookie", b"POST /inc HTTP/1.1\r\nCookie: a=\xc3\x28; session=x\r\n"),
    ("NUL in the cookie", b"POST /inc HTTP/1.1\r\nCookie: session=AAAA\x00BBBB\r\n"),
    ("bare CR in the cookie", b"POST /inc HTTP/1.1\r\nCookie: session=AA\rBB\r\n"),
    ("200 Cookie headers", POST_INC + b"".join(b"Cookie: session=%d\r\n" % n for n in range(200))),
    ("overlong cookie header (20 KB)", POST_INC_COOKIE + b"A" * 20_000 + b"\r\n"),
    ("obs-fold continuation", b"POST /inc HTTP/1.1\r\nCookie: session=abc\r\n  def\r\n"),
    ("header without a colon", b"POST /inc HTTP/1.1\r\nCookie session=abc\r\n"),
    ("odd method", b"BREW /inc HTTP/1.1\r\n"),
    ("lower-case method", b"post /inc HTTP/1.1\r\n"),
    ("absolute-form target", b"POST http://evil.example/inc HTTP/1.1\r\n"),
    ("traversal in the path", b"GET /static/../../config.py HTTP/1.1\r\n"),
    ("encoded traversal", b"GET /static/%2e%2e/%2e%2e/config.py HTTP/1.1\r\n"),
    ("NUL in the path", b"GET /inc%00 HTTP/1.1\r\n"),
    ("overlong URL (10 KB)", b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n"),
    ("body shorter than Content-Length", b"POST /inc HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort"),
    ("negative Content-Length", b"POST /inc HTTP/1.1\r\nContent-Length: -1\r\n"),
    ("two Content-Lengths", b"POST /inc HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"),
    ("broken chunked body", b"POST /inc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("HTTP/0.9 request line", b"GET /\r\n"),
    ("garbage request line", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),  # a TLS hello
    ("unicode Host", b"POST /inc HTTP/1.1\r\nHost: \xc3\xa9.example\r\n"),
]  # fmt: skip


def raw_request(request: bytes) -> bytes:
    head, sep, body = request.partition(b"\r\n\r\n")
    if not head.startswith((b"GET /\r\n", b"\x16")):
        extra = b"Connection: close\r\n"
        if b"\r\nHost:" not in head:
            extra += b"Host: 127.0.0.1\r\n"
        head = head.rstrip(b"\r\n") + b"\r\n" + extra.rstrip(b"\r\n")
        return head + b"\r\n\r\n" + body
    return request


def test_raw_hostile_requests_against_each_server(app_server, store_config, store_env,
                                               store_type, session_dir):  # fmt: skip
    needs_service()
    server = app_server(SERVICE_APP, env=store_env, workers=2, threads=2)
    victim_reply = httpkit.request(server.url, "POST", "/inc")
    victim = victim_reply.cookie("session")
    issued = {victim}
    outcomes = []
    for label, request in RAW_TABLE:
        answer = httpkit.raw_exchange(server.url, raw_request(request))
        status = httpkit.raw_status(answer)
        # header names are case-insensitive (granian sends them in lower case)
        issued.update(re.findall(rb"(?i)set-cookie: session=([A-Za-z0-9_-]+)", answer))
        outcomes.append((label, status, answer[:120]))
    issued = {sid.decode() if isinstance(sid, bytes) else sid for sid in issued}
    report = "\n".join(f"{status:3}  {label}" for label, status, _ in outcomes)
    print("\n" + report)
    assert [o for o in outcomes if o[1] >= 500] == [], report
    assert httpkit.request(server.url, "GET", "/counter", cookie=f"session={victim}").json() == {
        "counter": 1
    }
    log = server.log_text()
    assert "Traceback" not in log and "Error handling request" not in log, server.log_tail(60)
    if store_type == "filesystem":
        allowed = {file_name_for(sid) for sid in issued} | {counter_file_name()}
        assert set(os.listdir(session_dir)) <= allowed
    else:
        assert stored_session_names(store_config) <= names_of(issued, store_config)
        assert stored_lock_count(store_config) == 0
