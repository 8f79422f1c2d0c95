"""Flask-Session 0.8's public API and config keys, served with this package's guarantees."""

from __future__ import annotations

import logging
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import flask
import pytest
from itsdangerous import Signer

import flask_session
from flask_session import Session, SessionConfigError, current_session
from flask_session.stores.legacy import parse_cachelib_file
from flask_session.stores.plain_pickle import UnsafePickle, load_plain_pickle

REPO_ROOT = Path(__file__).resolve().parents[2]


def counter_app(app: flask.Flask) -> flask.Flask:
    @app.post("/inc")
    def inc() -> Any:
        return {"n": current_session.incr("n")}

    @app.get("/get")
    def get() -> Any:
        return {"n": flask.session.get("n", 0)}

    return app


def test_interface_classes_live_at_0_8_module_paths() -> None:
    from flask_session.base import ServerSideSession, ServerSideSessionInterface
    from flask_session.cachelib import CacheLibSession, CacheLibSessionInterface
    from flask_session.filesystem import FileSystemSession, FileSystemSessionInterface
    from flask_session.redis import RedisSession, RedisSessionInterface

    for interface in (CacheLibSessionInterface, FileSystemSessionInterface, RedisSessionInterface):
        assert issubclass(interface, ServerSideSessionInterface)
    for session in (CacheLibSession, FileSystemSession, RedisSession):
        assert issubclass(session, ServerSideSession)
    assert flask_session.Session is Session


def test_redis_interface_built_directly_keeps_increments_exact(redis_url: str) -> None:
    import redis

    from flask_session.redis import RedisSessionInterface
    from tests.support.redis_server import no_retry

    client = redis.Redis.from_url(redis_url, retry=no_retry())
    try:
        app = counter_app(flask.Flask(__name__))
        app.session_interface = RedisSessionInterface(app, client=client, key_prefix="myapp:")
        web = app.test_client()
        assert [web.post("/inc").get_json()["n"] for _ in range(3)] == [1, 2, 3]
        assert web.get("/get").get_json() == {"n": 3}
        assert any(key.startswith(b"myapp:") for key in client.scan_iter())
        assert isinstance(app.session_interface.store, flask_session.stores.base.Store)
    finally:
        client.close()


def test_filesystem_interface_built_directly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_session.filesystem import FileSystemSession, FileSystemSessionInterface

    app = counter_app(flask.Flask(__name__))
    with caplog.at_level(logging.WARNING):
        app.session_interface = FileSystemSessionInterface(
            app, cache_dir=str(tmp_path), threshold=10, serialization_format="json"
        )
    assert "SESSION_FILE_THRESHOLD is ignored" in caplog.text
    web = app.test_client()
    assert web.post("/inc").get_json() == {"n": 1}
    with app.test_request_context():
        assert isinstance(app.session_interface.open_session(app, flask.request), FileSystemSession)
    # 0.8's `interface.cache.get(key_prefix + sid)` view of a stored session
    sid = web.get_cookie("session").value
    assert app.session_interface.cache.get(f"session:{sid}") == {"n": 1}


def test_cachelib_filesystem_cache_is_served_by_the_filesystem_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cachelib.file import FileSystemCache

    app = counter_app(flask.Flask(__name__))
    app.config.update(
        SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(str(tmp_path), threshold=3)
    )
    with caplog.at_level(logging.WARNING):
        Session(app)
    assert "threshold=3 would evict live sessions" in caplog.text
    assert app.session_interface.store.name == "filesystem"
    clients = [app.test_client() for _ in range(6)]  # past cachelib's threshold: none evicted
    for web in clients:
        web.post("/inc")
    assert [web.get("/get").get_json()["n"] for web in clients] == [1] * 6


def test_cachelib_simple_cache_is_not_kept_in_one_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cachelib import SimpleCache

    app = flask.Flask(__name__)
    app.config.update(
        SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache(), SESSION_FILE_DIR=str(tmp_path)
    )
    with caplog.at_level(logging.WARNING):
        Session(app)
    assert "SimpleCache, which lives inside one process" in caplog.text
    assert app.session_interface.store.name == "filesystem"


def test_cachelib_backend_that_cannot_lock_is_refused() -> None:
    from cachelib import NullCache

    app = flask.Flask(__name__)
    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=NullCache())
    with pytest.raises(SessionConfigError, match="SESSION_CACHELIB is a cachelib.*NullCache"):
        Session(app)


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("SESSION_CLEANUP_N_REQUESTS", 100, "flask session cleanup"),
        ("SESSION_MONGODB", object(), "no MongoDB store"),
        ("SESSION_DYNAMODB_TABLE", "Sessions", "no DynamoDB store"),
        ("SESSION_FILE_MODE", 0o600, "0600"),
        ("SESSION_USE_SIGNER", True, "still accepted"),
    ],
)
def test_every_0_8_key_is_accepted_with_one_warning_saying_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str, value: Any, why: str
) -> None:
    app = flask.Flask(__name__)
    app.config.update({key: value, "SESSION_FILE_DIR": str(tmp_path), "SECRET_KEY": "k"})
    with caplog.at_level(logging.WARNING):
        Session(app)
    warnings = [record.getMessage() for record in caplog.records if key in record.getMessage()]
    assert len(warnings) == 1 and why in warnings[0]


def test_signed_0_8_cookie_is_accepted(tmp_path: Path) -> None:
    app = counter_app(flask.Flask(__name__))
    app.config.update(SECRET_KEY="s3", SESSION_FILE_DIR=str(tmp_path), SESSION_USE_SIGNER=True)
    Session(app)
    first = app.test_client()
    first.post("/inc")
    sid = first.get_cookie("session").value
    signed = Signer("s3", salt="flask-session", key_derivation="hmac").sign(sid.encode()).decode()
    second = app.test_client()
    second.set_cookie("session", signed)
    assert second.post("/inc").get_json() == {"n": 2}
    forged = app.test_client()
    forged.set_cookie("session", sid + ".forgedsignature")
    assert forged.post("/inc").get_json() == {"n": 1}


def test_session_cleanup_alias(tmp_path: Path) -> None:
    app = counter_app(flask.Flask(__name__))
    app.config.update(SESSION_FILE_DIR=str(tmp_path), PERMANENT_SESSION_LIFETIME=1)
    Session(app)
    app.test_client().post("/inc")
    time.sleep(1.1)
    result = app.test_cli_runner().invoke(args=["session_cleanup"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 expired session(s)" in result.output


def test_importing_needs_neither_fcntl_nor_redis() -> None:
    # Flask is imported first: what it imports is not ours (on Python 3.10 that includes
    # fcntl, through uuid, platform and subprocess)
    code = (
        "import sys, flask\n"
        "before = set(sys.modules)\n"
        "import flask_session, flask_session.redis, flask_session.filesystem,"
        " flask_session.cachelib, flask_session.base\n"
        "print(sorted(m for m in ('fcntl', 'redis') if m in sys.modules and m not in before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# -- reading 0.8's cachelib files without unpickling ----------------------------------


def cachelib_file(value: Any, expires: int = 0) -> bytes:
    return struct.pack("I", expires) + pickle.dumps(value, protocol=5)


@pytest.mark.parametrize("protocol", [4, 5])  # cachelib writes pickle.HIGHEST_PROTOCOL
def test_plain_pickles_are_read_by_the_opcode_reader(protocol: int) -> None:
    from markupsafe import Markup

    value = {
        "a": [1, 2.5, None, True, "x", b"y", (1, 2)],
        "_flashes": [("info", Markup("<b>"))],
        "big": 2**70,
    }
    assert load_plain_pickle(pickle.dumps(value, protocol=protocol)) == value


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, ("open('/tmp/pwned-by-legacy-session','w').write('x')",))


@pytest.mark.parametrize("payload", [Boom(), {"ok": Boom()}, {1, 2}, flask.Flask])
def test_anything_but_plain_data_is_refused_without_running_it(
    payload: Any, tmp_path: Path
) -> None:
    with pytest.raises(UnsafePickle):
        parse_cachelib_file(cachelib_file(payload))
    assert not Path("/tmp/pwned-by-legacy-session").exists()


def test_msgspec_bytes_inside_the_pickle_are_decoded() -> None:
    import msgspec

    data = cachelib_file(msgspec.msgpack.encode({"n": 3}), expires=int(time.time()) + 60)
    parsed = parse_cachelib_file(data)
    assert parsed is not None and parsed[0] == {"n": 3} and 0 < (parsed[1] or 0) <= 60
    assert parse_cachelib_file(cachelib_file({"n": 1}, expires=int(time.time()) - 1)) is None


def test_cachelib_redis_cache_is_served_by_the_redis_store(
    redis_server: Any, redis_url: str
) -> None:
    from cachelib import RedisCache

    cache = RedisCache(host="127.0.0.1", port=redis_server.port)
    try:
        app = counter_app(flask.Flask(__name__))
        app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=cache)
        Session(app)
        assert app.session_interface.store.name == "redis"
        web = app.test_client()
        assert [web.post("/inc").get_json()["n"] for _ in range(2)] == [1, 2]
    finally:
        cache._write_client.close()
        cache._read_client.close()


def test_interface_built_without_app_still_answers_outages_with_503(tmp_path: Path) -> None:
    # 0.8's docs build interfaces without the app: `RedisSessionInterface(client=redis)`.
    from flask_session import StoreUnavailable
    from flask_session.filesystem import FileSystemSessionInterface

    app = counter_app(flask.Flask(__name__))
    app.session_interface = FileSystemSessionInterface(cache_dir=str(tmp_path))

    @app.get("/down")
    def down() -> str:
        raise StoreUnavailable("test outage", reason="the session store is down for a test")

    web = app.test_client()
    assert web.post("/inc").get_json() == {"n": 1}
    answer = web.get("/down")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert b"down for a test" in answer.data


def test_0_8_default_directory_with_sessions_is_pointed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 0.8 kept sessions in ./flask_session; this package's default is the instance folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flask_session").mkdir()
    (tmp_path / "flask_session" / ("c" * 64)).write_bytes(cachelib_file({"n": 1}))
    app = flask.Flask(__name__, instance_path=str(tmp_path / "instance"))
    with caplog.at_level(logging.WARNING):
        Session(app)
    expected = f"set SESSION_FILE_DIR = {str(tmp_path / 'flask_session')!r}"
    assert expected in caplog.text
