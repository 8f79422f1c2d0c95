"""Target D, the floor: plain Flask plus exactly one round trip to the store per request.

Same routes and JSON as the service (``POST /inc``, ``GET /counter``, ``POST /shared/inc``
answer ``{"counter": n}``), the same store, and the same client library configured as the
service configures it, but no session layer: each request makes the one store call it
needs and nothing else. A session layer that needs one round trip per request cannot go
faster than this. Run from the project's .venv (redis-py with hiredis, SQLAlchemy with
psycopg, pymemcache), with bench/apps as the working directory.

Each client is a random id in a ``floor`` cookie, set on its first request. Per store:

- redis: one ``INCR`` (``GET`` for /counter) through redis-py;
- filesystem: one file per client: open, ``flock``, read, write in place, close;
- sqlite, postgresql: one ``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` (a ``SELECT``
  for /counter) through SQLAlchemy Core, in one transaction;
- memcached: one ``incr`` through a pymemcache ``PooledClient`` (a new client's first
  request also needs an ``add``).

``create_app(store, url, directory)`` builds one (bench/request_cpu.py calls it in
process). Served as ``floor:app``, it is configured by the environment:
    FLOOR_STORE  filesystem | redis | sqlite | postgresql | memcached
    FLOOR_DIR    the directory of the filesystem store
    FLOOR_URL    the Redis URL, the SQLAlchemy URL, or memcached's host:port
"""

import contextlib
import fcntl
import os
import re
import secrets

from flask import Flask, jsonify, request

COOKIE = "floor"
SHARED = "shared"
_VALID_ID = re.compile(r"[A-Za-z0-9_-]{20,64}\Z")
WIDTH = 20  # digits in a counter file: rewritten in place, always the same length


class RedisFloor:
    def __init__(self, url: str, directory: str) -> None:
        from flask_session.stores.redis_client import client_from_settings

        # The very client the service builds from SESSION_REDIS_URL (hiredis when installed).
        self.client = client_from_settings(None, url)

    def incr(self, key: str) -> int:
        return int(self.client.incr("floor:" + key))

    def value(self, key: str) -> int:
        return int(self.client.get("floor:" + key) or 0)


class FileFloor:
    def __init__(self, url: str, directory: str) -> None:
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key + ".floor")

    def incr(self, key: str) -> int:
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            value = int(os.pread(fd, WIDTH + 1, 0) or 0) + 1
            os.pwrite(fd, b"%020d\n" % value, 0)
            return value
        finally:
            os.close(fd)  # drops the flock

    def value(self, key: str) -> int:
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return int(os.pread(fd, WIDTH + 1, 0) or 0)
        finally:
            os.close(fd)


class SqlFloor:
    def __init__(self, url: str, directory: str) -> None:
        import sqlalchemy as sa

        self.sa = sa
        if url.startswith("sqlite"):
            # As the service's SQLite engine: WAL, synchronous NORMAL, writers take the
            # write lock at BEGIN.
            self.engine = sa.create_engine(
                url, pool_size=10, max_overflow=40,
                connect_args={"timeout": 10, "check_same_thread": False},
            )  # fmt: skip
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(
                self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE")
            )
        else:
            self.engine = sa.create_engine(
                url.replace("postgresql://", "postgresql+psycopg://", 1),
                pool_pre_ping=True, pool_size=10, max_overflow=40,
            )  # fmt: skip
        self.table = sa.Table(
            "floor_counters",
            sa.MetaData(),
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("counter", sa.BigInteger, nullable=False),
        )
        # Another worker may create it at the same moment.
        with contextlib.suppress(sa.exc.DatabaseError):
            self.table.create(self.engine, checkfirst=True)
        self._incr = sa.text(
            "INSERT INTO floor_counters (id, counter) VALUES (:id, 1)"
            " ON CONFLICT (id) DO UPDATE SET counter = floor_counters.counter + 1"
            " RETURNING counter"
        )
        self._value = sa.text("SELECT counter FROM floor_counters WHERE id = :id")

    def incr(self, key: str) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(self._incr, {"id": key}).scalar_one())

    def value(self, key: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(self._value, {"id": key}).scalar() or 0)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # transactions start in the "begin" hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class MemcachedFloor:
    def __init__(self, url: str, directory: str) -> None:
        from pymemcache.client.base import PooledClient

        host, _, port = url.rpartition(":")
        # As the service's memcached store builds its pools.
        self.client = PooledClient(
            (host, int(port)), connect_timeout=2.0, timeout=5.0, no_delay=True,
            default_noreply=False,
        )  # fmt: skip

    def incr(self, key: str) -> int:
        key = "floor:" + key
        value = self.client.incr(key, 1)
        if value is None:  # a new client: create the key, unless another request just did
            if self.client.add(key, b"1", noreply=False):
                return 1
            value = self.client.incr(key, 1)
        return int(value)

    def value(self, key: str) -> int:
        return int(self.client.get("floor:" + key) or 0)


FLOORS = {
    "redis": RedisFloor,
    "filesystem": FileFloor,
    "sqlite": SqlFloor,
    "postgresql": SqlFloor,
    "memcached": MemcachedFloor,
}


def client_id() -> tuple[str, bool]:
    """The client's id from its cookie, or a new one (and whether it is new)."""
    cookie = request.cookies.get(COOKIE, "")
    if _VALID_ID.match(cookie):
        return cookie, False
    return secrets.token_urlsafe(32), True


def answer(value: int, new_id: str | None = None):
    response = jsonify(counter=value)
    if new_id:
        response.set_cookie(COOKIE, new_id, httponly=True, samesite="Lax")
    return response


def create_app(store: str, url: str = "", directory: str = "") -> Flask:
    """Target D on ``store`` (a key of FLOORS), its server at ``url`` or its files in
    ``directory``."""
    floor = FLOORS[store](url, directory)
    app = Flask(__name__)

    @app.post("/inc")
    def inc():
        key, new = client_id()
        return answer(floor.incr(key), key if new else None)

    @app.get("/counter")
    def counter():
        key, new = client_id()
        return answer(0 if new else floor.value(key))

    @app.post("/shared/inc")
    def shared_inc():
        return answer(floor.incr(SHARED))

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True, target="D", store=store)

    return app


# Served by name (floor:app) under granian or gunicorn, configured by the environment;
# imported without FLOOR_STORE (bench/request_cpu.py), it only offers create_app.
if "FLOOR_STORE" in os.environ:
    app = create_app(
        os.environ["FLOOR_STORE"], os.environ.get("FLOOR_URL", ""), os.environ.get("FLOOR_DIR", "")
    )
