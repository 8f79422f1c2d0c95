"""What only the sqlalchemy and memcached stores have: their settings, their tables,
Flask-Session 0.8's sessions carried over, cleanup of expired rows, a busy SQLite file.

The store contract itself runs on them in test_store_contract.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
import sqlalchemy as sa
from pymemcache.client.base import Client as MemcachedClient

from flask_session import SessionConfigError, StoreUnavailable
from flask_session.ids import new_session_id
from flask_session.stores.common import at_rest_name
from tests.flask_session.demo_app import create_app

TTL = 60.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- settings refused at start-up, naming the key ----------------------------------------------


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({}, "SESSION_SQLALCHEMY_URL"),
        ({"SESSION_SQLALCHEMY_URL": "not a url"}, "SESSION_SQLALCHEMY_URL"),
        ({"SESSION_SQLALCHEMY_URL": "mysql://u@127.0.0.1/app"}, "SESSION_SQLALCHEMY_URL"),
        ({"SESSION_SQLALCHEMY": object()}, "SESSION_SQLALCHEMY"),
        (
            {"SESSION_SQLALCHEMY_URL": "sqlite:////tmp/x.db", "SESSION_SQLALCHEMY_TABLE": "a b"},
            "SESSION_SQLALCHEMY_TABLE",
        ),
        (
            {"SESSION_SQLALCHEMY_URL": "sqlite:////tmp/x.db", "SESSION_SQLALCHEMY_SEQUENCE": "a b"},
            "SESSION_SQLALCHEMY_SEQUENCE",
        ),
    ],
)
def test_bad_sqlalchemy_settings_are_refused_naming_the_key(config, named):
    with pytest.raises(SessionConfigError, match=named):
        create_app({"SESSION_TYPE": "sqlalchemy", **config})


# -- in-memory SQLite: one database per process, shared by its threads ------------------------

IN_MEMORY_WARNING = "lives in this process only"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_one_database_shared_by_the_process_threads(url, caplog):
    app = create_app({"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY_URL": url})
    try:
        assert IN_MEMORY_WARNING in caplog.text
        first = app.test_client()
        assert first.post("/rmw/n").get_json() == {"value": 1}
        cookie = first.get_cookie("session").value
        threads, each = 8, 15

        def hammer() -> None:
            client = app.test_client()
            client.set_cookie("session", cookie)
            for _ in range(each):
                assert client.post("/rmw/n").status_code == 200
            fresh = app.test_client()  # a session of its own, seen by the other threads
            fresh.post("/set/mine?value=yes")
            assert fresh.get("/get").get_json() == {"mine": "yes"}

        workers = [threading.Thread(target=hammer) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert first.get("/get").get_json() == {"n": 1 + threads * each}
        with app.session_interface.store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one()
        assert rows == 1 + threads
    finally:
        app.session_interface.store.close()


def test_the_apps_in_memory_engine_holds_the_sessions_and_stays_open():
    """An Engine on an in-memory database (as Flask-SQLAlchemy makes one): that database
    is only in the engine's connection, so the sessions live there, and closing the store
    leaves the app's engine working."""
    engine = sa.create_engine(
        "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
    )
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE app_rows (x INTEGER)"))
    app = create_app({"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY": engine})
    client = app.test_client()
    assert client.post("/incr/n?by=5").get_json() == {"value": 5}
    app.session_interface.store.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM app_rows")).scalar_one() == 0
    engine.dispose()


def test_an_in_memory_engine_with_a_database_per_thread_is_refused():
    engine = sa.create_engine("sqlite://")  # SQLAlchemy's default: one database per thread
    try:
        with pytest.raises(SessionConfigError, match="SESSION_SQLALCHEMY.*StaticPool"):
            create_app({"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY": engine})
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"SESSION_MEMCACHED_SERVERS": "127.0.0.1:http"}, "SESSION_MEMCACHED_SERVERS"),
        ({"SESSION_MEMCACHED_SERVERS": "127.0.0.1:0"}, "SESSION_MEMCACHED_SERVERS"),
        ({"SESSION_MEMCACHED": "127.0.0.1:11211"}, "SESSION_MEMCACHED"),
        # the store writes its keys into commands itself: none may hold a space or non-ASCII
        ({"SESSION_KEY_PREFIX": "my app:"}, "SESSION_KEY_PREFIX"),
        ({"SESSION_KEY_PREFIX": "sessión:"}, "SESSION_KEY_PREFIX"),
    ],
)
def test_bad_memcached_settings_are_refused_naming_the_key(config, named):
    with pytest.raises(SessionConfigError, match=named):
        create_app({"SESSION_TYPE": "memcached", **config})


def test_memcached_without_servers_uses_localhost_as_0_8_did_and_says_so(caplog):
    app = create_app({"SESSION_TYPE": "memcached"})
    assert app.session_interface.store.servers == [("127.0.0.1", 11211)]
    assert "SESSION_MEMCACHED_SERVERS" in caplog.text


@pytest.mark.parametrize("store_type", ["sqlite", "memcached"])
def test_ids_too_long_for_the_store_are_refused_at_start_up(store_config):
    with pytest.raises(SessionConfigError, match="SESSION_ID_LENGTH"):
        create_app({**store_config, "SESSION_ID_LENGTH": 200})


# -- the tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("store_type", ["sqlite", "postgresql"])
def test_the_tables_are_made_with_the_configured_name(make_app):
    store = make_app(SESSION_SQLALCHEMY_TABLE="web_sessions").session_interface.store
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"web_sessions", "web_sessions_locks", "web_sessions_counters"} <= names
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
    with store.engine.connect() as conn:
        columns = store.tables.sessions.c
        assert store.tables.sessions.name == "web_sessions"
        (row,) = conn.execute(sa.select(columns.session_id, columns.expiry)).all()
    assert row.session_id == "session:" + at_rest_name("session:", sid)
    assert timedelta(seconds=50) < row.expiry - utcnow() < timedelta(seconds=70)


@pytest.mark.parametrize("store_type", ["sqlite"])
def test_sqlite_runs_in_wal_mode_in_one_file(app, store_config, tmp_path):
    app.test_client().post("/incr/n")
    path = store_config["SESSION_SQLALCHEMY_URL"].removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (1,)


def test_an_engine_can_be_given_as_in_flask_session_0_8(app_builder, postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        config = {"SESSION_TYPE": "sqlalchemy", "SESSION_SQLALCHEMY": engine}
        client = app_builder(create_app, config).test_client()
        assert client.post("/incr/n").json == {"value": 1}
        assert client.post("/incr/n").json == {"value": 2}
    finally:
        engine.dispose()


# -- cleanup -------------------------------------------------------------------------------------


@pytest.mark.parametrize("store_type", ["sqlite", "postgresql"])
def test_cleanup_deletes_only_expired_rows(app, store):
    expired = [new_session_id(32) for _ in range(3)]
    live = [new_session_id(32) for _ in range(2)]
    for sid in expired:
        store.save(sid, {"a": store.codec.encode(1)}, [], ttl=0.2, create=True)
    for sid in live:
        store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
    time.sleep(0.4)
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0, result.output
    assert "Removed 3 expired session(s)" in result.output
    assert "kept 2 live session(s)" in result.output
    for sid in live:
        assert store.load(sid, lock=False, refresh_ttl=None) is not None
    with store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(store.tables.sessions))
        assert count.scalar_one() == 2


# -- Flask-Session 0.8's sessions carry over -------------------------------------------------


def flask_session_08_document(data: dict) -> bytes:
    """What Flask-Session 0.8 stores for a session (its default format, msgpack)."""
    return msgspec.msgpack.encode(data)


@pytest.mark.parametrize("store_type", ["sqlite", "postgresql"])
def test_a_flask_session_0_8_table_is_used_as_it_is(make_app, store_config):
    """0.8 made the table (its columns, its rows); this store reads and extends it."""
    sid = new_session_id(32)
    engine = sa.create_engine(store_config["SESSION_SQLALCHEMY_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE sessions (id INTEGER PRIMARY KEY, session_id VARCHAR(255)"
                    " UNIQUE, data BYTEA, expiry TIMESTAMP)".replace(
                        "BYTEA", "BLOB" if engine.dialect.name == "sqlite" else "BYTEA"
                    )
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO sessions (id, session_id, data, expiry) VALUES (1, :s, :d, :e)"
                ),
                {
                    "s": "session:" + sid,
                    "d": flask_session_08_document({"n": 41, "user": "ann"}),
                    "e": utcnow() + timedelta(hours=1),
                },
            )
    finally:
        engine.dispose()
    app = make_app()  # JSON, this package's default: 0.8's msgpack is read all the same
    client = app.test_client()
    client.set_cookie("session", sid)
    assert client.get("/get").json == {"n": 41, "user": "ann"}
    assert client.post("/incr/n").json == {"value": 42}
    store = app.session_interface.store
    with store.engine.connect() as conn:
        (data,) = conn.execute(sa.select(store.tables.sessions.c.data)).scalars()
    assert msgspec.json.decode(data) == {"n": 42, "user": "ann"}  # rewritten as JSON


@pytest.mark.parametrize("store_type", ["memcached"])
def test_flask_session_0_8_memcached_sessions_carry_over(make_app, memcached_server):
    sid = new_session_id(32)
    with closing(memcached_server.client()) as client:
        client.set("session:" + sid, flask_session_08_document({"n": 41}), expire=3600)
    app = make_app()
    http = app.test_client()
    http.set_cookie("session", sid)
    assert http.get("/get").json == {"n": 41}
    assert http.post("/incr/n").json == {"value": 42}


@pytest.mark.parametrize("store_type", ["memcached"])
def test_memcached_replies_in_many_pieces_holding_protocol_words_are_read_whole(make_app):
    """The store reads memcached's replies itself (stores/memcachewire.py): a session of
    msgpack bytes holding the protocol's own lines, far larger than one read, comes back
    whole through load, save and incr, and the connection serves the next command."""
    store = make_app(SESSION_SERIALIZATION_FORMAT="msgpack").session_interface.store
    blob = store.codec.encode(b"x\r\nEND\r\nVALUE s 0 1 1\r\nSTORED\r\n" * 20_000)  # ~700 kB
    sid = new_session_id(32)
    assert store.save(sid, {"blob": blob}, [], ttl=TTL, create=True)
    for expected in (1, 2):
        assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == expected
    loaded = store.load(sid, lock=False, refresh_ttl=TTL)
    assert loaded.values == {"blob": blob, "n": store.codec.encode(2)}
    assert store.save(sid, {}, ["blob"], ttl=TTL, create=False)
    assert store.load(sid, lock=False, refresh_ttl=None).values == {"n": store.codec.encode(2)}


def test_a_flask_session_0_8_memcached_client_is_accepted(app_builder, memcached_servers):
    host, port = memcached_servers.rsplit(":", 1)
    given = MemcachedClient((host, int(port)))
    try:
        app = app_builder(create_app, {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED": given})
        assert app.session_interface.store.servers == [(host, int(port))]
        assert app.test_client().post("/incr/n").json == {"value": 1}
    finally:
        given.close()


# -- a busy SQLite file is a 503, and passes ------------------------------------------------------


@pytest.mark.parametrize("store_type", ["sqlite"])
def test_a_sqlite_file_locked_by_another_process_is_503_busy_then_recovers(make_app, store_config):
    app = make_app(SESSION_LOCK_TIMEOUT=0.5)
    client = app.test_client()
    assert client.post("/incr/n").json == {"value": 1}
    path = store_config["SESSION_SQLALCHEMY_URL"].removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
        response = client.post("/incr/n")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "busy" in response.text
        with pytest.raises(StoreUnavailable, match="locked"):
            app.session_interface.store.ping()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.post("/incr/n").json == {"value": 2}  # the failed one never counted


@pytest.mark.parametrize("store_type", ["sqlite"])
def test_sqlite_serves_many_threads_without_losing_an_increment(app):
    """Many writers on one file queue on SQLite's lock (busy timeout), none fails."""
    store = app.session_interface.store
    sid = new_session_id(32)
    store.incr(sid, "n", 0, ttl=TTL, create=True)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                store.incr(sid, "n", 1, ttl=TTL, create=False)
                store.counter_incr("tickets")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.codec.decode(store.load(sid, lock=False, refresh_ttl=None).values["n"]) == 200
    assert store.counter_value("tickets") == 200
