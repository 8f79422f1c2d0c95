"""Switching from Flask-Session 0.8 logs nobody out.

A real Flask-Session 0.8 app, run from its own virtual environment, creates sessions;
the same store is then served by this package, and every cookie still sees its data.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import flask
import pytest
import requests
from markupsafe import Markup

from flask_session import Session, current_session
from tests.support.flask_session_08 import run_08

SECRET = "migration-test-secret"

#: what the 0.8 app puts in each session (i is the session's number)
WRITE_08 = """
import json, sys
import flask
from markupsafe import Markup
from flask_session import Session

app = flask.Flask(__name__)
app.config.update(SECRET_KEY=%(secret)r, **CONFIG)
Session(app)

@app.route("/write/<int:i>")
def write(i):
    flask.session["counter"] = i
    flask.session["name"] = "user-%%d" %% i
    flask.session["pair"] = (i, "x")
    flask.session["nested"] = {"a": [1, {"b": None}], "f": 1.5}
    flask.flash(%(flash)s, "info")
    return "ok"

cookies = []
for i in range(%(count)d):
    client = app.test_client()
    response = client.get("/write/%%d" %% i)
    assert response.status_code == 200, response.status
    cookies.append(client.get_cookie("session").value)
print(json.dumps(cookies))
"""

SESSIONS = 5


#: what the 0.8 app flashes: Markup, except where 0.8 serializes with msgspec (Redis),
#: which cannot encode Markup (0.8 itself fails on it)
FLASH_MARKUP = 'Markup("<b>welcome %d</b>" % i)'
FLASH_TEXT = '"<b>welcome %d</b>" % i'


def write_with_08(
    python: Path,
    cwd: Path,
    config_source: str,
    *,
    signed: bool = False,
    flash: str = FLASH_MARKUP,
) -> list[str]:
    """Sessions created by Flask-Session 0.8 with ``config_source`` (Python defining CONFIG)."""
    config = config_source + ("\nCONFIG['SESSION_USE_SIGNER'] = True" if signed else "")
    script = config + "\n" + WRITE_08 % {"secret": SECRET, "count": SESSIONS, "flash": flash}
    return list(json.loads(run_08(python, script, cwd=cwd)))


def reader_app(config: dict[str, Any]) -> flask.Flask:
    app = flask.Flask(__name__)
    # A cutover: no 0.8 server is left, so the transition is off from the start (the
    # default, 'auto', would find 0.8's sessions and keep them for 0.8's servers:
    # tests/flask_session/test_upgrade08_auto.py, tests/dropin/test_rolling_upgrade.py).
    app.config.update({"SECRET_KEY": SECRET, "SESSION_08_SERVERS": False, **config})
    Session(app)

    @app.get("/read")
    def read() -> Any:
        messages = flask.get_flashed_messages(with_categories=True)
        return {
            "counter": flask.session.get("counter"),
            "name": flask.session.get("name"),
            "pair_is_tuple": type(flask.session.get("pair")) is tuple,
            "pair": list(flask.session.get("pair", ())),
            "nested": flask.session.get("nested"),
            "flashes": [
                [category, str(message), type(message) is Markup] for category, message in messages
            ],
        }

    @app.post("/incr")
    def incr() -> Any:
        return {"counter": current_session.incr("counter", 10)}

    return app


def check_read(app: flask.Flask, cookies: list[str], *, msgspec_08: bool = False) -> None:
    """Every 0.8 session reads back. ``msgspec_08``: 0.8 stored it with msgspec (Redis),
    which keeps a tuple as a list and cannot hold Markup, so neither comes back."""
    for i, cookie in enumerate(cookies):
        client = app.test_client()
        client.set_cookie("session", cookie)
        if i % 2:  # the first touch is an increment: it must carry the session over too
            assert client.post("/incr").get_json() == {"counter": i + 10}
            expected_counter = i + 10
        else:
            expected_counter = i
        data = client.get("/read").get_json()
        assert data["counter"] == expected_counter
        assert data["name"] == f"user-{i}"
        assert data["pair_is_tuple"] is not msgspec_08 and data["pair"] == [i, "x"]
        assert data["nested"] == {"a": [1, {"b": None}], "f": 1.5}
        if i % 2 == 0:
            assert data["flashes"] == [["info", f"<b>welcome {i}</b>", not msgspec_08]]
        again = client.get("/read").get_json()  # now from our own layout
        assert again["name"] == f"user-{i}" and again["flashes"] == []


@pytest.mark.parametrize("signed", [False, True], ids=["plain-cookie", "signed-cookie"])
def test_filesystem_sessions_survive_the_switch(
    fs08_python: Path, tmp_path: Path, signed: bool
) -> None:
    directory = tmp_path / "sessions"
    cookies = write_with_08(
        fs08_python,
        tmp_path,
        f"CONFIG = dict(SESSION_TYPE='filesystem', SESSION_FILE_DIR={str(directory)!r})",
        signed=signed,
    )
    legacy_files = set(os.listdir(directory))
    app = reader_app(
        {
            "SESSION_TYPE": "filesystem",
            "SESSION_FILE_DIR": str(directory),
            "SESSION_USE_SIGNER": signed,
        }
    )
    check_read(app, cookies)
    # carried-over files are gone (cachelib's few-byte count file is no session: it stays)
    left = {
        name
        for name in set(os.listdir(directory)) & legacy_files
        if os.path.getsize(directory / name) > 16
    }
    assert not left


def test_signed_0_8_cookies_survive_a_key_rotation(fs08_python: Path, tmp_path: Path) -> None:
    """0.8 signed with SECRET; the key is rotated (SECRET moved to Flask 3.1's
    SECRET_KEY_FALLBACKS): every cookie still reads, as with Flask's own session. Without
    the old key among the fallbacks, none does (the signature is really checked)."""
    directory = tmp_path / "sessions"
    cookies = write_with_08(
        fs08_python,
        tmp_path,
        f"CONFIG = dict(SESSION_TYPE='filesystem', SESSION_FILE_DIR={str(directory)!r})",
        signed=True,
    )
    base = {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(directory)}
    unrelated = reader_app(
        {**base, "SESSION_USE_SIGNER": True, "SECRET_KEY": "new", "SECRET_KEY_FALLBACKS": ["x"]}
    )
    for cookie in cookies:
        client = unrelated.test_client()
        client.set_cookie("session", cookie)
        assert client.get("/read").get_json()["name"] is None
    rotated = reader_app(
        {
            **base,
            "SESSION_USE_SIGNER": True,
            "SECRET_KEY": "new",
            "SECRET_KEY_FALLBACKS": ["older", SECRET],
        }
    )
    check_read(rotated, cookies)


def test_cachelib_sessions_survive_the_switch(fs08_python: Path, tmp_path: Path) -> None:
    from cachelib.file import FileSystemCache

    directory = tmp_path / "cachelib"
    cookies = write_with_08(
        fs08_python,
        tmp_path,
        "from cachelib.file import FileSystemCache\n"
        f"CONFIG = dict(SESSION_TYPE='cachelib',"
        f" SESSION_CACHELIB=FileSystemCache({str(directory)!r}, threshold=500))",
    )
    app = reader_app(
        {
            "SESSION_TYPE": "cachelib",
            "SESSION_CACHELIB": FileSystemCache(str(directory), threshold=500),
        }
    )
    check_read(app, cookies)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_redis_sessions_survive_the_switch(
    fs08_python: Path, tmp_path: Path, redis_url: str, fmt: str
) -> None:
    from tests.support.redis_server import no_retry

    cookies = write_with_08(
        fs08_python,
        tmp_path,
        "import redis\n"
        f"CONFIG = dict(SESSION_TYPE='redis', SESSION_REDIS=redis.Redis.from_url({redis_url!r}),"
        f" SESSION_SERIALIZATION_FORMAT={fmt!r})",
        flash=FLASH_TEXT,
    )
    import redis

    client = redis.Redis.from_url(redis_url, retry=no_retry())
    try:
        app = reader_app(
            {"SESSION_TYPE": "redis", "SESSION_REDIS": client, "SESSION_SERIALIZATION_FORMAT": fmt}
        )
        check_read(app, cookies, msgspec_08=True)
    finally:
        client.close()


def test_concurrent_first_requests_carry_a_session_over_once(
    fs08_python: Path, tmp_path: Path, granian_server: Any
) -> None:
    """Many requests racing on one 0.8 cookie, on several worker processes: the session is
    carried over once, and no increment or locked update is lost or doubled."""
    directory = tmp_path / "sessions"
    cookies = write_with_08(
        fs08_python,
        tmp_path,
        f"CONFIG = dict(SESSION_TYPE='filesystem', SESSION_FILE_DIR={str(directory)!r})",
    )
    server = granian_server(
        "tests.dropin.migration_app:app",
        env={
            "FLASK_SESSION_TYPE": "filesystem",
            "FLASK_SESSION_FILE_DIR": str(directory),
            "FLASK_SESSION_08_SERVERS": "false",  # a cutover (see reader_app)
        },
        workers=3,
        threads=4,
    )
    per_thread, threads = 10, 6

    def hammer(cookie: str, path: str) -> list[int]:
        with requests.Session() as http:
            http.cookies.set("session", cookie)
            return [
                http.post(f"{server.url}{path}", timeout=30).status_code for _ in range(per_thread)
            ]

    with ThreadPoolExecutor(max_workers=threads * 2) as pool:
        futures = [
            pool.submit(hammer, cookie, path)
            for cookie in cookies[:2]
            for path in ("/incr", "/rmw")
            for _ in range(threads // 2)
        ]
        statuses = [status for future in futures for status in future.result()]
    assert statuses == [200] * len(statuses)
    for i, cookie in enumerate(cookies[:2]):
        with requests.Session() as http:
            http.cookies.set("session", cookie)
            data = http.get(f"{server.url}/read", timeout=30).json()
        assert data == {
            "counter": i + per_thread * (threads // 2),
            "rmw": per_thread * (threads // 2),
            "name": f"user-{i}",
        }


def test_a_claim_left_by_a_dead_request_is_taken_over(tmp_path: Path) -> None:
    from flask_session.stores.legacy import CLAIM_SUFFIX, LegacyCacheLibFiles
    from tests.dropin.test_api import cachelib_file

    legacy = LegacyCacheLibFiles(str(tmp_path), "session:")
    sid = "A" * 43
    path = legacy.paths(sid)[0]
    Path(path + CLAIM_SUFFIX).write_bytes(cachelib_file({"name": "kept"}))  # claimed, then died
    app = reader_app({"SESSION_FILE_DIR": str(tmp_path), "SESSION_LOCK_TIMEOUT": 0.2})
    client = app.test_client()
    client.set_cookie("session", sid)
    # waits out SESSION_LOCK_TIMEOUT for the claimer, then takes the session over
    assert client.get("/read").get_json()["name"] == "kept"
    assert not any(CLAIM_SUFFIX in name for name in os.listdir(tmp_path))
    assert not os.path.exists(path)


def test_cleanup_removes_expired_0_8_files_only(tmp_path: Path) -> None:
    import time

    from tests.dropin.test_api import cachelib_file

    expired = tmp_path / ("a" * 64)
    live = tmp_path / ("b" * 64)
    other = tmp_path / "notes.txt"
    expired.write_bytes(cachelib_file({"n": 1}, expires=int(time.time()) - 10))
    live.write_bytes(cachelib_file({"n": 1}, expires=int(time.time()) + 600))
    other.write_bytes(b"\x00\x00\x00\x01 not a session")
    app = reader_app({"SESSION_FILE_DIR": str(tmp_path)})
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 expired session(s)" in result.output
    assert not expired.exists() and live.exists() and other.exists()
