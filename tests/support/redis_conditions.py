"""Put a real redis-server into the states production Redis meets, and back.

Each condition is a context manager on a :class:`RedisServer` started with
:data:`CONDITION_ARGS` (``CONFIG SET dir`` is a protected setting in Redis 7). Inside the
``with`` block the server answers but refuses writes; leaving it restores normal service
with every key intact::

    with RedisServer(extra_args=CONDITION_ARGS) as server, CONDITIONS["oom"](server):
        ...   # writes answer OOM

* ``oom``: ``maxmemory`` just above what is used, policy ``noeviction``, filled up.
* ``readonly``: ``REPLICAOF`` a primary that is down; the old data stays readable
  (``replica-serve-stale-data``) and nothing is resynchronised, so nothing is lost.
* ``misconf``: ``save`` on, ``dir`` somewhere unwritable, a forced BGSAVE that fails;
  with ``stop-writes-on-bgsave-error yes`` writes then answer MISCONF.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import redis

from .ports import HOST
from .redis_server import RedisServer

#: redis-server options the conditions need
CONDITION_ARGS = ("--enable-protected-configs", "yes")

#: the reason a client is told for each condition (flask_session.stores.redis.REFUSALS)
REASONS = {
    "oom": "the session store is full",
    "readonly": "the session store is read-only",
    "misconf": "the session store cannot save its data",
}

FILLER_PREFIX = "test-filler:"
FILLER_VALUE = b"x" * 8192
MAX_FILLER_KEYS = 10_000  # bounds the fill: 80 MB at most
#: a directory no process can create files in, root included
UNWRITABLE_DIR = "/proc"


@contextlib.contextmanager
def out_of_memory(
    server: RedisServer, headroom: int = 256 * 1024, *, at_the_edge: bool = False
) -> Iterator[None]:
    """Writes answer OOM until the block ends (then the filler is removed).

    Redis is filled up to ``maxmemory``. Right at that edge memory moves with client
    buffers, so some small writes still pass (as in production when a server fills up);
    unless ``at_the_edge``, ``maxmemory`` is then lowered well below what is used so that
    every write is refused.
    """
    with server.client() as client:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", used + headroom)
        try:
            for number in range(MAX_FILLER_KEYS):
                try:
                    client.set(f"{FILLER_PREFIX}{number}", FILLER_VALUE)
                except redis.exceptions.OutOfMemoryError:
                    break
            else:
                raise RuntimeError("redis never ran out of memory")
            if not at_the_edge:
                client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)
            yield
        finally:
            client.config_set("maxmemory", 0)
            keys = list(client.scan_iter(f"{FILLER_PREFIX}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])


@contextlib.contextmanager
def read_only(server: RedisServer) -> Iterator[None]:
    """Writes answer READONLY: the server is a replica of a primary that is down."""
    # A port bound but not listening refuses connections, and nobody else can start a
    # server on it meanwhile (a real primary there would replace our data with its own).
    with socket.socket() as placeholder, server.client() as client:
        placeholder.bind((HOST, 0))
        client.execute_command("REPLICAOF", HOST, str(placeholder.getsockname()[1]))
        try:
            yield
        finally:
            client.execute_command("REPLICAOF", "NO", "ONE")


@contextlib.contextmanager
def failing_to_persist(server: RedisServer) -> Iterator[None]:
    """Writes answer MISCONF: the last background save failed."""
    with server.client() as client:
        directory = client.config_get("dir")["dir"]
        client.config_set("stop-writes-on-bgsave-error", "yes")
        client.config_set("save", "3600 1")
        client.config_set("dir", UNWRITABLE_DIR)
        try:
            _bgsave(client, expect="err")
            yield
        finally:
            client.config_set("dir", directory)
            _bgsave(client, expect="ok")
            client.config_set("save", "")


def _bgsave(client: redis.Redis, *, expect: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:  # a save may still be running (BGSAVE then answers an error)
        try:
            client.bgsave()
            break
        except redis.exceptions.ResponseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    while True:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == expect:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"BGSAVE did not end with status {expect!r}: {info}")
        time.sleep(0.02)


CONDITIONS: dict[str, Callable[[RedisServer], AbstractContextManager[None]]] = {
    "oom": out_of_memory,
    "readonly": read_only,
    "misconf": failing_to_persist,
}
