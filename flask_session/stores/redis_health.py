"""The Redis store's health and durability: what an error means, when an outage starts
and ends, what ``ping`` checks, whether the server may evict sessions, and waiting for
replicas before acknowledging a write (``SESSION_REDIS_MIN_REPLICAS``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TimeoutError,
    TryAgainError,
)
from redis.sentinel import SentinelConnectionPool

from ..errors import OutageLog, SessionConfigError, StoreUnavailable
from .redis_client import CLUSTER, SENTINEL, STANDALONE, Client, topology_of

logger = logging.getLogger(__name__)

# -- what an error means ------------------------------------------------------------------------

#: Redis error codes (the first word of an error reply) meaning "not now": the server
#: refuses to work, the data is fine. Each maps to (client-safe reason, Retry-After).
REFUSALS: dict[str, tuple[str, int]] = {
    "OOM": ("the session store is full", 5),
    "READONLY": ("the session store is read-only", 2),
    "MISCONF": ("the session store cannot save its data", 5),
    "BUSY": ("the session store is busy", 1),
    "LOADING": ("the session store is loading its data", 2),
    "MASTERDOWN": ("the session store has lost its primary server", 2),
    "NOREPLICAS": ("the session store has too few replicas to accept writes", 2),
    "CLUSTERDOWN": ("the session store cluster is down", 2),
    "TRYAGAIN": ("the session store is moving data", 1),
    "NOPERM": ("the session store denies this application access", 5),
}
#: Reason for any other refusal, and for a store that does not answer at all.
REFUSED = ("the session store refused the request", 1)
UNREACHABLE = ("the session store cannot be reached", 1)
_ERROR_CODE = re.compile(r"(?:^|[\s:-])(" + "|".join(REFUSALS) + r")\b")


def refusal(error: redis.exceptions.RedisError) -> tuple[str, int]:
    """(client-safe reason, Retry-After seconds) for a Redis error."""
    code = getattr(error, "status_code", None)
    if code in REFUSALS:
        return REFUSALS[code]
    if isinstance(error, redis.exceptions.BusyLoadingError):
        return REFUSALS["LOADING"]
    if isinstance(error, redis.exceptions.ReadOnlyError):
        return REFUSALS["READONLY"]
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        return REFUSALS["OOM"]
    # Errors without a class of their own keep their code in the text (an error raised
    # inside a script may carry the script's context in front of it).
    found = _ERROR_CODE.search(str(error))
    if found:
        return REFUSALS[found.group(1)]
    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return UNREACHABLE
    return REFUSED


def unavailable(error: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable a client error stands for (reason and Retry-After), or None
    for an error that is not the store's (a bug, a TypeError): let it through."""
    if isinstance(error, ReplicasBehind):
        return StoreUnavailable(
            str(error),
            reason="the session store could not confirm the write on a replica",
            retry_after=2,
        )
    if isinstance(error, RedisClusterException):
        # Not a RedisError: the client cannot use the cluster at all (no node reachable,
        # slots not covered, topology not agreed).
        return StoreUnavailable(
            f"redis cluster cannot be used: {error}",
            reason="the session store cluster is down",
            retry_after=2,
        )
    if isinstance(error, RedisError):
        reason, retry_after = refusal(error)
        return StoreUnavailable(
            f"redis is unavailable: {error}"
            if (reason, retry_after) == UNREACHABLE
            else f"redis refused a session command: {error}",
            reason=reason,
            retry_after=retry_after,
        )
    return None


class ReplicasBehind(RedisError):
    """WAIT returned before enough replicas confirmed a write (SESSION_REDIS_MIN_REPLICAS)."""


# -- the outage log ------------------------------------------------------------------------------

#: Seconds without a failure before a cluster or sentinel store counts as recovered.
QUIET_BEFORE_RECOVERY = 5.0


class SettlingOutageLog(OutageLog):
    """An OutageLog that calls an outage over only after ``quiet`` seconds without a failure.

    A cluster fails in part: while one shard is down, requests for the others succeed,
    and a plain OutageLog would log "unavailable" and "available again" by turns, per
    request. Here the outage starts at the first failure (one ERROR) and ends (one
    WARNING) at the first success that comes ``quiet`` seconds after the last failure.
    """

    def __init__(self, logger: logging.Logger, what: str, *, quiet: float) -> None:
        super().__init__(logger, what)
        self._quiet = quiet
        self._last_failure = 0.0

    def failed(self, error: BaseException) -> None:
        self._last_failure = time.monotonic()
        super().failed(error)

    def succeeded(self) -> None:
        if not self._down:  # the common path, as in OutageLog
            return
        if time.monotonic() - self._last_failure < self._quiet:
            return  # still the same (partial) outage
        super().succeeded()


def outage_log_for(
    client: Client, logger: logging.Logger, what: str, replica_wait: ReplicaWait | None
) -> OutageLog:
    """The outage log for a store on ``client``: settling for a cluster or sentinel, or
    when writes wait for replicas (a shard without a replica fails one write per WAIT
    timeout while the others succeed, so the quiet time covers two of those)."""
    kind = topology_of(client)
    if kind == STANDALONE and replica_wait is None:
        return OutageLog(logger, what)
    quiet = QUIET_BEFORE_RECOVERY
    if replica_wait is not None:
        quiet += 2 * replica_wait.timeout_ms / 1000
    label = what if kind == STANDALONE else f"{what} ({kind})"
    return SettlingOutageLog(logger, label, quiet=quiet)


# -- health -------------------------------------------------------------------------------------


def check_topology(
    client: Client, probe: Callable[[redis.Redis, str], None], probe_key: str
) -> None:
    """Raise (a redis error) unless requests would succeed.

    ``probe(server, key)`` is the one-server check ("would accept a write", e.g. a short
    SET of ``key``), run on every server that requests write to: the one server;
    sentinel's current master; every cluster primary, each with a key of its own slots
    (``probe_key`` plus a hash tag). Besides: a cluster must say ``cluster_state:ok``
    (else every request meets CLUSTERDOWN), and sentinel's master must be a master.
    """
    kind = topology_of(client)
    if kind == CLUSTER:
        assert isinstance(client, RedisCluster)
        try:
            _check_cluster(client, probe, probe_key)
        except (ConnectionError, TimeoutError, RedisClusterException):
            # The client's map may be stale (a primary failed over since): look again,
            # then judge the cluster as it now is.
            client.nodes_manager.initialize()
            _check_cluster(client, probe, probe_key)
        return
    assert isinstance(client, redis.Redis)
    if kind == SENTINEL:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        sentinel_pool: Any = pool
        sentinel_pool.get_master_address()  # asks the sentinels; MasterNotFoundError if none knows
        role = _command(client, "ROLE")
        if role[0] not in (b"master", "master"):
            raise ReadOnlyError("sentinel's master answers as a replica")
    probe(client, probe_key)


def _check_cluster(
    client: RedisCluster, probe: Callable[[redis.Redis, str], None], probe_key: str
) -> None:
    cluster: Any = client
    for node in cluster.get_primaries():
        server = client.get_redis_connection(node)
        if _cluster_state(server) != "ok":
            raise ClusterDownError(f"CLUSTERDOWN node {node.name} reports the cluster down")
        probe(server, _key_on(client, node.name, probe_key))


def _key_on(client: RedisCluster, node_name: str, base: str) -> str:
    """``base{tag}`` for a tag whose slot ``node_name`` serves (as the client's map says)."""
    slots = client.nodes_manager.slots_cache
    for tag in range(10 * len(slots) + 1000):
        key = f"{base}{{{tag}}}"
        owners = slots.get(key_slot(key.encode()))
        if owners and owners[0].name == node_name:
            return key
    raise RedisClusterException(f"no slot of node {node_name} found in the client's map")


def _command(server: redis.Redis, *args: Any) -> Any:
    """``server.execute_command`` (untyped in redis-py), for mypy --strict."""
    execute: Any = server.execute_command
    return execute(*args)


def _cluster_state(server: redis.Redis) -> str:
    info = _command(server, "CLUSTER INFO")  # redis-py parses it into a dict
    if isinstance(info, dict):
        return str(info.get("cluster_state", ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("cluster_state:"):
            return line.partition(":")[2].strip()
    return ""


# -- durability: WAIT after a write -------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaWait:
    """Acknowledge a write only once ``replicas`` replicas have it.

    Runs the write's script and ``WAIT replicas timeout`` on one connection (``WAIT``
    counts the replicas that have this connection's writes), as one pipeline, so the
    cost is replication latency, not an extra round trip. If fewer replicas confirm in
    time, the write is not acknowledged (StoreUnavailable): it happened on the master
    and may or may not survive a failover, exactly like a write whose reply was lost.
    """

    replicas: int
    timeout_ms: int

    def run(self, client: Client, sha: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """The script's reply, once ``replicas`` replicas have its effect."""
        if isinstance(client, RedisCluster):
            return self._run_on_cluster(client, sha, source, keys, args)
        return self._run_on(client, sha, source, keys, args)

    def _run_on_cluster(
        self, client: RedisCluster, sha: str, source: str, keys: list[str], args: list[Any]
    ) -> Any:
        cluster: Any = client
        node = cluster.get_node_from_key(keys[0])
        for attempt in range(2):
            server = client.get_redis_connection(node)
            try:
                return self._run_on(server, sha, source, keys, args)
            except MovedError as moved:
                # Not executed: the slot lives elsewhere now. Go again once, to the node
                # the redirect names, as the cluster client does for plain commands: the
                # map learned meanwhile (for the next writes) may not have it yet, as the
                # other nodes learn a moved slot by gossip.
                if attempt:
                    raise
                with contextlib.suppress(RedisError, RedisClusterException):
                    client.nodes_manager.initialize()
                named = cluster.get_node(host=moved.host or node.host, port=moved.port)
                node = named if named is not None else cluster.get_node_from_key(keys[0])
            except TryAgainError:
                # Not executed: the slot is being moved. Learn the map and go again once.
                client.nodes_manager.initialize()
                if attempt:
                    raise
                node = cluster.get_node_from_key(keys[0])
            except (ConnectionError, TimeoutError):
                with contextlib.suppress(RedisError, RedisClusterException):
                    client.nodes_manager.initialize()
                raise
        raise AssertionError("unreachable")

    def check_replicas(self, server: redis.Redis) -> None:
        """Raise ReplicasBehind unless ``server`` has enough replicas connected for a
        write to be acknowledged (what ``/healthz`` adds when the setting is on)."""
        role = _command(server, "ROLE")
        connected = len(role[2]) if role[0] in (b"master", "master") else 0
        if connected < self.replicas:
            raise ReplicasBehind(
                f"redis master has {connected} replicas connected; SESSION_REDIS_MIN_REPLICAS"
                f" is {self.replicas}, so writes cannot be acknowledged"
            )

    def _run_on(
        self, server: redis.Redis, sha: str, source: str, keys: list[str], args: list[Any]
    ) -> Any:
        reply, acked = self._pipeline(server, ("EVALSHA", sha), keys, args)
        if isinstance(reply, NoScriptError):
            # NOSCRIPT: nothing ran. EVAL sends the source, which also caches it there.
            reply, acked = self._pipeline(server, ("EVAL", source), keys, args)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self.replicas:
            raise ReplicasBehind(
                f"redis: only {acked} of {self.replicas} replicas confirmed a write within"
                f" {self.timeout_ms} ms (SESSION_REDIS_MIN_REPLICAS); not acknowledged"
            )
        return reply

    def _pipeline(
        self, server: redis.Redis, head: tuple[str, str], keys: list[str], args: list[Any]
    ) -> tuple[Any, Any]:
        pipe: Any
        with server.pipeline(transaction=False) as pipe:
            pipe.execute_command(*head, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            reply, acked = pipe.execute(raise_on_error=False)
        return reply, acked


# -- the server's eviction policy ---------------------------------------------------------------

#: The one eviction policy that never removes a live session or counter.
SAFE_EVICTION_POLICY = "noeviction"


class EvictionPolicyCheck:
    """Refuses (at start-up) or logs an ERROR for a server whose policy evicts live sessions.

    A server that cannot be reached at start-up is checked once it first answers
    (:meth:`check_if_pending`, called after each successful command: one attribute read
    once checked).
    """

    def __init__(self, client: Client, *, allow_eviction: bool) -> None:
        self._client = client
        self._allow = allow_eviction
        self.pending = False
        self._guard = threading.Lock()

    def check(self, *, at_start_up: bool) -> None:
        try:
            reply = self._client.config_get("maxmemory*")
        except (ConnectionError, TimeoutError):
            self.pending = True
            return
        except RedisError as error:  # CONFIG renamed or denied (managed)
            logger.warning(
                "could not read the redis server's maxmemory-policy (%s); make sure it is"
                " %r (CONFIG SET maxmemory-policy noeviction, or your provider's parameter"
                " group): any other policy evicts live sessions and counters when memory"
                " runs out",
                error,
                SAFE_EVICTION_POLICY,
            )
            return
        self.pending = False
        config = {_text(k): _text(v) for k, v in _as_mapping(reply).items()}
        policy = config.get("maxmemory-policy", SAFE_EVICTION_POLICY)
        if policy == SAFE_EVICTION_POLICY:
            return
        message = (
            f"the redis server's maxmemory-policy is {policy!r} (maxmemory"
            f" {config.get('maxmemory', '?')} bytes): when memory runs out it evicts live"
            " sessions and counters, logging users out and handing out shared numbers"
            f" twice. Set maxmemory-policy {SAFE_EVICTION_POLICY} (CONFIG SET"
            f" maxmemory-policy {SAFE_EVICTION_POLICY}, and in redis.conf); a full store then"
            " answers 503 and loses nothing"
        )
        if self._allow:
            logger.warning("%s. SESSION_REDIS_ALLOW_EVICTION is on: sessions may be lost", message)
        elif at_start_up:
            raise SessionConfigError(
                f"{message}; or set SESSION_REDIS_ALLOW_EVICTION = True to accept losing them"
            )
        else:
            logger.error("%s (or set SESSION_REDIS_ALLOW_EVICTION = True)", message)

    def check_if_pending(self) -> None:
        with self._guard:
            if not self.pending:
                return
            self.pending = False
            try:
                self.check(at_start_up=False)
            except RedisError as error:
                logger.warning("could not read the redis server's maxmemory-policy: %s", error)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_mapping(reply: Any) -> Mapping[Any, Any]:
    if isinstance(reply, Mapping):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


#: SESSION_REDIS_MIN_REPLICAS's upper bound
MAX_REPLICAS = 16


def replica_wait(replicas: int, timeout: float) -> ReplicaWait | None:
    """``SESSION_REDIS_MIN_REPLICAS`` and ``SESSION_REDIS_WAIT_TIMEOUT`` (seconds, checked)
    as a ReplicaWait, or None when off (0 replicas)."""
    if replicas == 0:
        return None
    return ReplicaWait(replicas=replicas, timeout_ms=max(1, int(timeout * 1000)))
