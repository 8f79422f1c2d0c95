"""Issue 9: the Redis store on a Redis Cluster and a Sentinel set, configured from settings.

Real servers only (tests/support): the run's shared cluster (3 primaries + 3 replicas)
and Sentinel set (master, replica, 3 sentinels), plus topologies of their own for tests
that take servers down. The contract suite itself runs on every topology
(the `redis_topologies` marker, tests/conftest.py); this file covers what is particular to them:
URL forms, accepted clients, cluster and failover errors as clean 503s, health as
requests meet it, and SESSION_REDIS_MIN_REPLICAS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from flask_session import Session, SessionConfigError, StoreUnavailable
from flask_session.stores.redis_client import (
    CLUSTER,
    SENTINEL,
    STANDALONE,
    LeanPacker,
    client_from_url,
    close_client,
    topology_of,
)
from sessionapp import create_app
from tests.support.ports import HOST
from tests.support.redis_cluster import RedisClusterSet
from tests.support.redis_sentinel import MASTER_NAME
from tests.support.redis_server import no_retry


def _app(config: dict) -> Flask:
    app = Flask(__name__)
    app.config.update(SESSION_TYPE="redis", **config)
    Session(app)
    return app


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis+sentinel://127.0.0.1:1", "names the master"),
        ("redis+sentinel://127.0.0.1:1/mymaster/zero", "must be a number"),
        ("redis+sentinel://127.0.0.1:1/mymaster/0?retries=3", "unknown option 'retries'"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "is not host:port"),
        ("redis+cluster://127.0.0.1:1/0", "has no path"),
        ("redis+cluster://127.0.0.1:1?socket_timeout=-1", "socket_timeout"),
        ("http://127.0.0.1:1", "is not usable"),
    ],
)
def test_an_unusable_url_is_refused_at_start_up_naming_the_setting(url, words):
    with pytest.raises(SessionConfigError) as refused:
        _app({"SESSION_REDIS_URL": url})
    assert "SESSION_REDIS_URL" in str(refused.value) and words in str(refused.value)


def test_a_cluster_nobody_answers_for_is_refused_at_start_up():
    # redis-py discovers a cluster when the client is made: no node, no client.
    with pytest.raises(SessionConfigError, match="no cluster could be discovered"):
        _app({"SESSION_REDIS_URL": f"redis+cluster://{HOST}:1,{HOST}:2"})


@pytest.mark.parametrize(
    ("value", "words"),
    [("-1", "at least 0"), ("two", "whole number"), (1.5, "whole number"), (True, "whole number")],
)
def test_a_bad_min_replicas_is_refused_naming_it(redis_url, value, words):
    with pytest.raises(SessionConfigError) as refused:
        _app({"SESSION_REDIS_URL": redis_url, "SESSION_REDIS_MIN_REPLICAS": value})
    assert "SESSION_REDIS_MIN_REPLICAS" in str(refused.value) and words in str(refused.value)


def test_a_bad_wait_timeout_is_refused_naming_it(redis_url):
    with pytest.raises(SessionConfigError, match="SESSION_REDIS_WAIT_TIMEOUT"):
        _app({"SESSION_REDIS_URL": redis_url, "SESSION_REDIS_MIN_REPLICAS": 1,
              "SESSION_REDIS_WAIT_TIMEOUT": 0})  # fmt: skip


def test_urls_build_the_topology_they_name(redis_url, redis_cluster, redis_sentinel):
    for url, kind in [
        (redis_url, STANDALONE),
        (redis_cluster.url, CLUSTER),
        (redis_sentinel.url, SENTINEL),
        (redis_sentinel.url + "?socket_timeout=2&socket_connect_timeout=1", SENTINEL),
    ]:
        client = client_from_url(url)
        try:
            assert topology_of(client) == kind
            client.set("probe{x}", b"1")
            assert client.get("probe{x}") == b"1"
        finally:
            close_client(client)


#: arguments of every type redis-py packs, the str ones not all ASCII
PACKED = [
    ("EVALSHA", b"f" * 40, 3, "s:{é}", "s:{é}:lock", "n", b"1", -(2**70), 0.1, 1e20),
    ("SET", memoryview(b"k"), bytearray(b"v"), "PX", 10),
    ("CONFIG GET", "maxmemory"),  # a command name of two words
    (b"GET", "k"),
]


@pytest.mark.parametrize("args", PACKED)
def test_the_lean_packer_packs_exactly_as_redis_py_does(args):
    reference = redis.Connection()._command_packer  # redis-py's own, for its default encoding
    assert b"".join(LeanPacker().pack(*args)) == b"".join(reference.pack(*args))


def test_the_lean_packer_refuses_what_redis_py_refuses():
    with pytest.raises(redis.DataError):
        LeanPacker().pack("SET", "k", True)


def test_url_clients_pack_leanly_unless_they_use_another_encoding(redis_url, redis_sentinel):
    for url, lean in [
        (redis_url, True),
        (redis_sentinel.url, True),
        (redis_url + "?encoding=latin-1", False),
    ]:
        client = client_from_url(url)
        try:
            packer = client.connection_pool.connection_kwargs.get("command_packer")
            assert isinstance(packer, LeanPacker) is lean
            client.set("packed", "é")
            assert client.get("packed") == ("é".encode() if lean else b"\xe9")
            assert client.config_get("maxmemory")  # two words: redis-py's packer sends it
        finally:
            client.delete("packed")
            close_client(client)


def test_session_redis_accepts_a_cluster_client_and_a_sentinel_client(
    redis_cluster, redis_sentinel, app_builder
):
    nodes = [ClusterNode(HOST, node.port) for node in redis_cluster.nodes[:2]]
    cluster = RedisCluster(startup_nodes=nodes, retry=no_retry())
    sentinel = Sentinel([(HOST, s.port) for s in redis_sentinel.sentinels])
    master = sentinel.master_for(MASTER_NAME, retry=no_retry())
    try:
        for client in (cluster, master):
            app = app_builder(_app, {"SESSION_REDIS": client})
            with app.test_request_context():
                from flask import session

                assert session.incr("n", 2) == 2
                assert session.incr("n", 3) == 5
            app.session_interface.store.ping()
    finally:
        cluster.close()
        master.close()
        for client in sentinel.sentinels:
            client.close()


def test_session_redis_refuses_a_decoding_cluster_client(redis_cluster):
    node = redis_cluster.nodes[0]
    client = RedisCluster(host=HOST, port=node.port, decode_responses=True, retry=no_retry())
    try:
        with pytest.raises(SessionConfigError, match="decode_responses"):
            _app({"SESSION_REDIS": client})
    finally:
        client.close()


# -- failures are clean 503s with the right reason -----------------------------------------


def _service(app_builder, url: str, **extra: object) -> Flask:
    return app_builder(
        create_app, {"TESTING": True, "SESSION_TYPE": "redis", "SESSION_REDIS_URL": url, **extra}
    )


def _assert_503(reply, reason_words: str) -> None:
    assert reply.status_code == 503, (reply.status_code, reply.get_data(as_text=True)[:300])
    assert reply.headers.get("Retry-After")
    body = reply.get_data(as_text=True)
    assert "Traceback" not in body and "not a number" not in body
    if reason_words:
        assert reason_words in body, body[:300]


def test_a_whole_cluster_down_is_503_everywhere_and_recovers(app_builder):
    with RedisClusterSet() as cluster:
        app = _service(app_builder, cluster.url)
        client = app.test_client()
        assert client.post("/inc").status_code == 200
        assert client.post("/shared/inc").status_code == 200
        for node in cluster.nodes:
            node.kill()
        for method, path in [("POST", "/inc"), ("POST", "/shared/inc"), ("GET", "/shared")]:
            _assert_503(
                client.open(path, method=method, headers={"Accept": "application/json"}), ""
            )
        assert client.get("/healthz").status_code == 503
        for node in cluster.nodes:
            node.start()
        cluster.wait_healthy()
        assert client.get("/healthz").status_code == 200
        assert client.post("/inc").status_code == 200


def test_a_shard_without_primary_or_replica_makes_healthz_503(app_builder):
    # Every request for that shard's slots fails (and once the cluster marks it failed,
    # every request): /healthz must say so, not PING one healthy node and answer 200.
    with RedisClusterSet() as cluster:
        app = _service(app_builder, cluster.url)
        client = app.test_client()
        assert client.post("/inc").status_code == 200
        assert client.get("/healthz").status_code == 200
        store = app.session_interface.store
        key = next(k for k in store.redis.scan_iter("session:{*") if not k.endswith(b":lock"))
        primary = cluster.primary_for(key.decode())
        with primary.client() as direct:
            replica_port = int(direct.execute_command("ROLE")[2][0][1])
        primary.kill()
        next(node for node in cluster.nodes if node.port == replica_port).kill()
        assert client.get("/healthz").status_code == 503
        _assert_503(client.post("/inc", headers={"Accept": "application/json"}), "")


def test_a_sentinel_that_knows_no_such_master_is_503_not_500(redis_sentinel, app_builder):
    url = redis_sentinel.url.replace(f"/{MASTER_NAME}/", "/nosuchmaster/")
    app = _service(app_builder, url)
    client = app.test_client()
    _assert_503(client.post("/inc", headers={"Accept": "application/json"}), "")
    assert client.get("/healthz").status_code == 503


# -- durability: SESSION_REDIS_MIN_REPLICAS ------------------------------------------------


def test_without_a_replica_writes_are_not_acknowledged_and_healthz_says_so(redis_url, app_builder):
    app = _service(app_builder, redis_url, SESSION_REDIS_MIN_REPLICAS=1,
                   SESSION_REDIS_WAIT_TIMEOUT=0.2)  # fmt: skip
    client = app.test_client()
    _assert_503(
        client.post("/inc", headers={"Accept": "application/json"}),
        "could not confirm the write on a replica",
    )
    assert client.get("/healthz").status_code == 503
    store = app.session_interface.store
    writes = {
        "incr": lambda: store.incr("abc", "n", 1, ttl=60, create=True),
        "save": lambda: store.save("abc", {"n": b"1"}, [], ttl=60, create=True),
        "delete": lambda: store.delete("abc"),
        "counter_incr": lambda: store.counter_incr("tickets"),
    }
    for verb, write in writes.items():
        with pytest.raises(StoreUnavailable) as unconfirmed:
            write()
        assert "replica" in unconfirmed.value.reason, verb
    assert store.load("nosuch", lock=False, refresh_ttl=None) is None  # reads still work


def test_with_a_replica_writes_wait_for_it_and_are_there(redis_sentinel, app_builder):
    redis_sentinel.flushall()
    app = _service(app_builder, redis_sentinel.url, SESSION_REDIS_MIN_REPLICAS=1)
    client = app.test_client()
    for expected in (1, 2, 3):
        reply = client.post("/inc", headers={"Accept": "application/json"})
        assert reply.status_code == 200 and reply.get_json() == {"counter": expected}
    assert client.get("/healthz").status_code == 200
    # Acknowledged means the replica has it now, not eventually.
    replica = next(s for s in redis_sentinel.servers if s is not redis_sentinel.master())
    with replica.client() as direct:
        hashes = [key for key in direct.scan_iter("session:{*") if not key.endswith(b":lock")]
        assert len(hashes) == 1
        assert direct.hget(hashes[0], "counter") == b"3"


def test_more_replicas_than_exist_is_refused_per_write(redis_cluster, app_builder):
    app = _service(app_builder, redis_cluster.url, SESSION_REDIS_MIN_REPLICAS=2,
                   SESSION_REDIS_WAIT_TIMEOUT=0.1)  # fmt: skip
    client = app.test_client()
    _assert_503(
        client.post("/inc", headers={"Accept": "application/json"}),
        "could not confirm the write on a replica",
    )
    assert client.get("/healthz").status_code == 503


def test_cluster_scripts_come_back_after_a_node_forgets_them(redis_cluster, app_builder):
    # One primary's script cache flushed (a restart, a failover to a fresh replica): the
    # next call there reloads with EVAL on that node alone.
    app = _service(app_builder, redis_cluster.url)
    client = app.test_client()
    assert client.post("/inc").status_code == 200
    for node in redis_cluster.current_primaries():
        with node.client() as direct:
            direct.script_flush()
    reply = client.post("/inc", headers={"Accept": "application/json"})
    assert reply.status_code == 200 and reply.get_json() == {"counter": 2}


@pytest.mark.parametrize("replicas", [0, 1])
def test_a_stale_cluster_client_is_told_about_moved_slots(redis_cluster, app_builder, replicas):
    # A session's slot moves to another primary (as in resharding): the client follows
    # MOVED (with SESSION_REDIS_MIN_REPLICAS, the store's own pipeline to the node learns
    # the new map and goes again); nothing is read as bad data.
    redis_cluster.flushall()
    app = _service(app_builder, redis_cluster.url, SESSION_REDIS_MIN_REPLICAS=replicas)
    client = app.test_client()
    first = client.post("/inc", headers={"Accept": "application/json"})
    assert first.status_code == 200
    with _session_slot_moved(redis_cluster, app.session_interface.store):
        reply = client.post("/inc", headers={"Accept": "application/json"})
    assert reply.status_code == 200 and reply.get_json() == {"counter": 2}


def test_a_write_waiting_for_replicas_follows_moved_even_while_the_map_is_stale(
    redis_cluster, app_builder, monkeypatch
):
    # The node a cluster client asks for the map may not have learned a moved slot yet
    # (nodes learn it by gossip; a full run once hit this): the map the client refreshes
    # stays as it was here, and the write goes where the redirect says anyway.
    redis_cluster.flushall()
    app = _service(app_builder, redis_cluster.url, SESSION_REDIS_MIN_REPLICAS=1)
    client = app.test_client()
    assert client.post("/inc", headers={"Accept": "application/json"}).status_code == 200
    store = app.session_interface.store
    with _session_slot_moved(redis_cluster, store):
        monkeypatch.setattr(store.redis.nodes_manager, "initialize", lambda *a, **k: None)
        try:
            reply = client.post("/inc", headers={"Accept": "application/json"})
        finally:
            monkeypatch.undo()
    assert reply.status_code == 200 and reply.get_json() == {"counter": 2}


@contextlib.contextmanager
def _session_slot_moved(cluster, store) -> Iterator[None]:
    """Move the slot of the one session in ``cluster`` to another primary; back after."""
    key = next(k for k in store.redis.scan_iter("session:{*") if not k.endswith(b":lock"))
    owner = cluster.primary_for(key.decode())
    other = next(n for n in cluster.current_primaries() if n is not owner)
    slot = redis.cluster.key_slot(key)
    _move_slot(owner, other, slot)
    try:
        yield
    finally:
        _move_slot(other, owner, slot)


def _move_slot(source, target, slot: int) -> None:
    """Migrate one slot with its keys (CLUSTER SETSLOT / MIGRATE), as redis-cli does."""
    with source.client() as src, target.client() as dst:
        src_id = src.execute_command("CLUSTER MYID").decode()
        dst_id = dst.execute_command("CLUSTER MYID").decode()
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
        for node in (dst, src):
            node.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
