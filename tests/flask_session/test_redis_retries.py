"""Issue 8, item 2: any redis-py client, default retries included; nothing counts twice.

A TCP proxy (tests/support/tcp_proxy.py) delivers a command to Redis, throws its reply
away and closes the connection, as a network failure after the send would. redis-py
(default client: 10 retries) sends the command again on a new connection; the store must
recognise the repeat.
"""

from __future__ import annotations

import hashlib

import pytest
import redis

from flask_session.ids import new_session_id
from flask_session.stores.redis_scripts import COUNTER_INCR, INCR, LOAD, SAVE
from tests.flask_session.redis_stores import FORMATS, TTL
from tests.support.tcp_proxy import TcpProxy


def sha(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()


@pytest.fixture
def proxy(redis_url, redis_server):
    with TcpProxy(redis_server.port) as started:
        yield started


@pytest.fixture
def retrying_store(proxy, redis_store):
    """``retrying_store(fmt)``: a store on a default redis.Redis (it retries) via the proxy."""

    def make(fmt: str = "json"):
        client = redis.Redis(host="127.0.0.1", port=proxy.port)
        assert client.get_retry().get_retries() >= 1
        store = redis_store(client, fmt)
        store.ping()  # scripts are loaded on first use; load them before dropping replies
        for script in (LOAD, SAVE, INCR, COUNTER_INCR):
            client.script_load(script)
        return store

    return make


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_increment_whose_reply_was_lost_counts_once(proxy, retrying_store, fmt):
    store = retrying_store(fmt)
    sid = new_session_id(32)
    assert store.incr(sid, "n", 1, ttl=TTL, create=True).value == 1
    proxy.drop_reply(sha(INCR))
    assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 2  # answered by the repeat
    assert proxy.dropped == 1
    assert store.incr(sid, "n", 1, ttl=TTL, create=False).value == 3  # counted once


def test_a_counter_increment_whose_reply_was_lost_counts_once(proxy, retrying_store):
    store = retrying_store()
    assert store.counter_incr("shared") == 1
    proxy.drop_reply(sha(COUNTER_INCR))
    assert store.counter_incr("shared") == 2
    assert proxy.dropped == 1
    assert store.counter_incr("shared") == 3
    assert store.counter_value("shared") == 3


def test_a_load_whose_reply_was_lost_keeps_its_own_lock(proxy, retrying_store):
    store = retrying_store()
    store.lock_timeout = 1.0
    sid = new_session_id(32)
    store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
    proxy.drop_reply(sha(LOAD))
    loaded = store.load(sid, lock=True, refresh_ttl=None)  # no wait for its own lease
    assert proxy.dropped == 1
    assert loaded is not None and loaded.lock is not None
    proxy.drop_reply(sha(SAVE))  # a repeated save is harmless too
    assert store.save(
        sid, {"a": store.codec.encode(2)}, [], ttl=TTL, create=False, lock=loaded.lock
    )
    assert proxy.dropped == 2
    again = store.load(sid, lock=True, refresh_ttl=None)  # the lock was released
    assert again is not None and store.codec.decode(again.values["a"]) == 2
    store.release(sid, again.lock)


def test_a_client_built_from_the_url_retries_once_on_a_broken_connection(redis_url):
    from flask_session.stores.redis_client import URL_CLIENT_RETRIES, client_from_settings

    client = client_from_settings(None, redis_url)
    try:
        assert client.get_retry().get_retries() == URL_CLIENT_RETRIES
    finally:
        client.close()
