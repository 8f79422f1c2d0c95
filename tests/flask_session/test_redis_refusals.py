"""Issue 11, items 1 and 2 (Redis side): a Redis that answers but refuses to work.

Against a real redis-server put into each state (tests/support/redis_conditions.py):
every verb that writes raises StoreUnavailable with the reason for that state, on both
formats; ping (what /healthz reports) does too; reads still work; nothing is lost once the
server recovers. Only a value that is genuinely not an integer is a TypeError.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from flask_session import StoreUnavailable
from flask_session.ids import new_session_id
from flask_session.stores.redis_health import REFUSALS, refusal
from tests.flask_session.redis_stores import FORMATS, TTL
from tests.support.redis_conditions import CONDITION_ARGS, CONDITIONS, REASONS
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def server():
    with RedisServer(extra_args=CONDITION_ARGS) as started:
        yield started


@pytest.fixture
def clean(server):
    server.flushall()
    return server


#: verbs that only remove data, which a full Redis still accepts (that is how it empties)
REMOVING = {"delete", "counter_reset"}


def write_verbs(store, sid, fresh, condition):
    """Every store verb refused in ``condition``, as (name, call)."""
    enc = store.codec.encode
    verbs = [
        ("load+lock", lambda: store.load(sid, lock=True, refresh_ttl=None)),
        ("save", lambda: store.save(sid, {"s": enc("y")}, [], ttl=TTL, create=False)),
        ("save new", lambda: store.save(fresh, {"s": enc("y")}, [], ttl=TTL, create=True)),
        ("incr", lambda: store.incr(sid, "n", 1, ttl=TTL, create=False)),
        ("incr new", lambda: store.incr(fresh, "n", 1, ttl=TTL, create=True)),
        ("delete", lambda: store.delete(sid)),
        ("counter_incr", lambda: store.counter_incr("shared")),
        ("counter_reset", lambda: store.counter_reset("shared")),
        ("ping", store.ping),
    ]
    return [(name, call) for name, call in verbs if condition != "oom" or name not in REMOVING]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_a_refusing_redis_is_an_outage_with_its_reason_on_every_verb(
    clean, redis_store, condition, fmt, caplog
):
    store = redis_store(clean, fmt)
    sid, fresh = new_session_id(32), new_session_id(32)
    store.save(sid, {"n": store.codec.encode(5), "s": store.codec.encode("x")}, [], ttl=TTL,
               create=True)  # fmt: skip
    assert [store.counter_incr("shared") for _ in range(3)] == [1, 2, 3]

    with caplog.at_level(logging.WARNING, logger="flask_session"), CONDITIONS[condition](clean):
        for name, call in write_verbs(store, sid, fresh, condition):
            try:
                call()
            except StoreUnavailable as error:
                assert error.reason == REASONS[condition], name
                assert error.retry_after >= 1, name
            else:
                pytest.fail(f"{name} was not refused")
        # Reads need no write (pushing the expiry out is best effort), and the data is intact.
        loaded = store.load(sid, lock=False, refresh_ttl=TTL)
        assert loaded is not None and store.codec.decode(loaded.values["n"]) == 5
        assert store.counter_value("shared") == 3

    # One line when the refusals began, one when they ended.
    assert [r.levelname for r in caplog.records if "redis session store" in r.getMessage()] == [
        "ERROR",
        "WARNING",
    ]
    # Nothing was applied, nothing lost.
    assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 6
    assert store.counter_incr("shared") == 4
    assert store.load(fresh, lock=False, refresh_ttl=None) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_a_real_non_integer_is_a_type_error(clean, redis_store, fmt):
    store = redis_store(clean, fmt)
    sid = new_session_id(32)
    store.save(sid, {"s": store.codec.encode("text"), "f": store.codec.encode(1.5)}, [],
               ttl=TTL, create=True)  # fmt: skip
    for key in ("s", "f"):
        with pytest.raises(TypeError, match="not an int"):
            store.incr(sid, key, 1, ttl=TTL, create=False)
    store.redis.set("session:#counter{shared}", b"not a number")
    with pytest.raises(StoreUnavailable, match="not a counter") as raised:
        store.counter_incr("shared")
    assert raised.value.reason == "the shared counter holds something that is not a number"
    with pytest.raises(StoreUnavailable) as raised:
        store.counter_value("shared")
    assert raised.value.reason == "the shared counter holds something that is not a number"


def test_too_few_replicas_and_a_lost_primary_have_their_reasons(clean, redis_store):
    store = redis_store(clean)
    sid = new_session_id(32)
    store.save(sid, {"n": store.codec.encode(1)}, [], ttl=TTL, create=True)
    with clean.client() as admin:
        admin.config_set("min-replicas-to-write", 1)  # and there are none
        try:
            with pytest.raises(StoreUnavailable) as raised:
                store.incr(sid, "n", 1, ttl=TTL, create=False)
            assert raised.value.reason == REFUSALS["NOREPLICAS"][0]
        finally:
            admin.config_set("min-replicas-to-write", 0)
        admin.config_set("replica-serve-stale-data", "no")
        with CONDITIONS["readonly"](clean):  # a replica whose primary is down
            with pytest.raises(StoreUnavailable) as raised:
                store.load(sid, lock=False, refresh_ttl=None)
            assert raised.value.reason == REFUSALS["MASTERDOWN"][0]
        admin.config_set("replica-serve-stale-data", "yes")
    assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 2


def test_a_server_busy_with_a_script_is_busy(clean, redis_store):
    store = redis_store(clean)
    with clean.client() as admin, clean.client(socket_timeout=10) as runner:
        admin.config_set("busy-reply-threshold", 50)
        # A script that runs ~1.5 s: meanwhile every other client is answered BUSY.
        spin = (
            "local t = redis.call('TIME') local stop = t[1] * 1e6 + t[2] + 1500000"
            " repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] > stop return 1"
        )
        thread = threading.Thread(target=runner.eval, args=(spin, 0), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 1.0
            while True:
                try:
                    store.ping()
                except StoreUnavailable as error:
                    assert error.reason == REFUSALS["BUSY"][0]
                    break
                assert time.monotonic() < deadline, "never busy"
                time.sleep(0.1)
        finally:
            thread.join(timeout=5)
            admin.config_set("busy-reply-threshold", 5000)
    store.ping()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), "LOADING"),
        (redis.exceptions.ResponseError("MISCONF Redis is configured to save..."), "MISCONF"),
        (redis.exceptions.ResponseError("MASTERDOWN Link with MASTER is down"), "MASTERDOWN"),
        (redis.exceptions.ResponseError("CLUSTERDOWN The cluster is down"), "CLUSTERDOWN"),
        (redis.exceptions.ResponseError("ERR Error running script: -OOM command"), "OOM"),
    ],
)
def test_error_codes_map_to_reasons(error, reason):
    # The texts are redis-server's; the live cases above cover the common ones end to end.
    assert refusal(error) == REFUSALS[reason]


def test_unknown_errors_and_connection_errors_keep_generic_reasons():
    assert refusal(redis.exceptions.ResponseError("ERR something new"))[0] == (
        "the session store refused the request"
    )
    assert refusal(redis.exceptions.ConnectionError("refused"))[0] == (
        "the session store cannot be reached"
    )
