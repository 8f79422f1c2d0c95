"""Redis past one server: building and checking clients for standalone Redis, Redis
Cluster and Sentinel; health as requests will meet it; waiting for replicas.

``SESSION_REDIS_URL`` forms (``rediss`` for TLS wherever ``redis`` is accepted)::

    redis://[[user]:password@]host[:port][/db][?options]          one server (redis-py's own forms,
    unix:///path/to/redis.sock[?db=0]                              unix sockets included)
    redis+cluster://[[user]:password@]host:port[,host:port...][?options]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db][?options]

A cluster URL lists a few nodes to discover the cluster from; a sentinel URL lists the
sentinels and names the master they watch (the user and password are the Redis
servers', ``?sentinel_password=`` is the sentinels'). ``options`` are
``socket_timeout`` and ``socket_connect_timeout`` (seconds) and, for sentinel,
``sentinel_username``/``sentinel_password``.

Every client built here, and every client accepted as ``SESSION_REDIS``, never retries a
command by itself: a retried increment whose reply was lost would count twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
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
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..errors import OutageLog, SessionConfigError, StoreUnavailable
from ..settings import config_number

#: Topology names, as reported by :func:`topology_of` and in logs.
STANDALONE = "standalone"
CLUSTER = "cluster"
SENTINEL = "sentinel"

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

#: Connection defaults for clients built from a URL (the query string overrides them).
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
_NUMBER_OPTIONS = ("socket_timeout", "socket_connect_timeout")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")

#: Settings read by :func:`replica_wait_from_config`.
MIN_REPLICAS_KEY = "SESSION_REDIS_MIN_REPLICAS"
WAIT_TIMEOUT_KEY = "SESSION_REDIS_WAIT_TIMEOUT"
DEFAULT_WAIT_TIMEOUT = 1.0
MAX_REPLICAS = 16

#: Clients accepted as SESSION_REDIS.
Client = redis.Redis | RedisCluster


def no_retry() -> Retry:
    """A Retry that never retries (redis-py retries by default)."""
    return Retry(NoBackoff(), 0)


# -- building a client from SESSION_REDIS_URL -----------------------------------------------


@dataclass
class _ParsedUrl:
    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None
    path: list[str]
    options: dict[str, Any] = field(default_factory=dict)


def client_from_url(url: str) -> Client:
    """The client ``SESSION_REDIS_URL`` describes (see the module docstring for forms).

    Raises SessionConfigError naming the key when the URL cannot be used. Connecting
    happens lazily, so a server that is down at start-up costs 503s, not a crash.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in CLUSTER_SCHEMES:
        return _cluster_from_url(url, CLUSTER_SCHEMES[scheme])
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_from_url(url, SENTINEL_SCHEMES[scheme])
    try:
        # redis-py's own forms; options in the query string override these.
        return redis.Redis.from_url(
            url,
            retry=no_retry(),
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
        )
    except ValueError as error:
        raise SessionConfigError(
            f"SESSION_REDIS_URL {url!r} is not usable: {error}. Use redis://host:port/db,"
            " redis+cluster://host:port,host:port or"
            " redis+sentinel://host:port,host:port/master-name/db"
        ) from error


def _cluster_from_url(url: str, tls: bool) -> RedisCluster:
    parsed = _parse(url, default_port=DEFAULT_PORT, extra_options=())
    if parsed.path:
        raise SessionConfigError(
            f"SESSION_REDIS_URL {url!r}: a cluster URL has no path (a cluster has only"
            " database 0); write redis+cluster://host:port,host:port"
        )
    try:
        # redis-py's constructors are untyped: called through Any for mypy --strict.
        make: Any = RedisCluster
        node: Any = ClusterNode
        cluster: RedisCluster = make(
            startup_nodes=[node(host, port) for host, port in parsed.nodes],
            retry=no_retry(),
            username=parsed.username,
            password=parsed.password,
            ssl=tls,
            **_timeouts(parsed.options),
        )
        return cluster
    except (RedisClusterException, RedisError) as error:
        # Discovery failed: every listed node is down or is not a cluster node. Refused
        # at start-up rather than guessed at later.
        raise SessionConfigError(
            f"SESSION_REDIS_URL {url!r}: no cluster could be discovered from these nodes"
            f" ({error}); check that they are up and run with cluster-enabled yes"
        ) from error


def _sentinel_from_url(url: str, tls: bool) -> redis.Redis:
    parsed = _parse(url, default_port=DEFAULT_SENTINEL_PORT, extra_options=_SENTINEL_OPTIONS)
    if not 1 <= len(parsed.path) <= 2 or not parsed.path[0]:
        raise SessionConfigError(
            f"SESSION_REDIS_URL {url!r}: a sentinel URL names the master after the"
            " sentinels: redis+sentinel://host:26379,host:26379/master-name[/db]"
        )
    db = 0
    if len(parsed.path) == 2:
        if not parsed.path[1].isdigit():
            raise SessionConfigError(
                f"SESSION_REDIS_URL {url!r}: the database after the master name must be a"
                f" number, not {parsed.path[1]!r}"
            )
        db = int(parsed.path[1])
    timeouts = _timeouts(parsed.options)
    sentinel_kwargs: dict[str, Any] = dict(timeouts)
    for option in _SENTINEL_OPTIONS:
        if option in parsed.options:
            sentinel_kwargs[option.removeprefix("sentinel_")] = parsed.options[option]
    make: Any = Sentinel
    sentinel: Any = make(parsed.nodes, sentinel_kwargs=sentinel_kwargs, ssl=tls, **timeouts)
    client: redis.Redis = sentinel.master_for(
        parsed.path[0],
        redis_class=SentinelClient,
        db=db,
        retry=no_retry(),
        username=parsed.username,
        password=parsed.password,
    )
    return client


class SentinelClient(redis.Redis):
    """A Sentinel-managed master client that also closes its connections to the sentinels."""

    def close(self) -> None:
        super().close()
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                sentinel.close()


def _parse(url: str, *, default_port: int, extra_options: Sequence[str]) -> _ParsedUrl:
    split = urlsplit(url)
    credentials, _, hosts = split.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), ""
        if not host or (port and not port.isdigit()):
            raise SessionConfigError(
                f"SESSION_REDIS_URL {url!r}: {item!r} is not host:port"
                " (list nodes separated by commas)"
            )
        nodes.append((host, int(port) if port else default_port))
    options: dict[str, Any] = {}
    for name, values in parse_qs(split.query, keep_blank_values=True).items():
        if name in _NUMBER_OPTIONS:
            options[name] = config_number(
                {f"SESSION_REDIS_URL ?{name}": values[-1]},
                f"SESSION_REDIS_URL ?{name}",
                minimum=0,
                minimum_inclusive=False,
                what="seconds",
            )
        elif name in extra_options:
            options[name] = values[-1]
        else:
            known = ", ".join((*_NUMBER_OPTIONS, *extra_options))
            raise SessionConfigError(
                f"SESSION_REDIS_URL {url!r}: unknown option {name!r}; options are {known}"
            )
    return _ParsedUrl(
        nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        path=[unquote(part) for part in split.path.strip("/").split("/") if part],
        options=options,
    )


def _timeouts(options: dict[str, Any]) -> dict[str, float]:
    return {
        "socket_connect_timeout": options.get("socket_connect_timeout", CONNECT_TIMEOUT),
        "socket_timeout": options.get("socket_timeout", SOCKET_TIMEOUT),
    }


# -- checking a given client ----------------------------------------------------------------


def topology_of(client: Client) -> str:
    """:data:`CLUSTER`, :data:`SENTINEL` or :data:`STANDALONE`."""
    if isinstance(client, RedisCluster):
        return CLUSTER
    if isinstance(client.connection_pool, SentinelConnectionPool):
        return SENTINEL
    return STANDALONE


def check_client(client: Any) -> None:
    """Refuse (SessionConfigError) a SESSION_REDIS the store cannot use.

    Accepted: ``redis.Redis`` (also as made by ``Sentinel(...).master_for(...)``) and
    ``redis.cluster.RedisCluster``, created without ``decode_responses``. Retries are
    fine: every verb of the store is safe to repeat.
    """
    if not isinstance(client, (redis.Redis, RedisCluster)):
        raise SessionConfigError(
            "SESSION_REDIS must be a redis.Redis, a redis.cluster.RedisCluster or a"
            f" Sentinel(...).master_for(...) client, not {type(client).__name__}"
        )
    if isinstance(client, RedisCluster):
        cluster: Any = client
        decode = cluster.get_encoder().decode_responses
    else:
        decode = client.get_connection_kwargs().get("decode_responses")
    if decode:
        raise SessionConfigError(
            "SESSION_REDIS was created with decode_responses=True; session values are"
            " bytes, so create it without that option"
        )


def client_retries(client: Client) -> Retry | None:
    """The client's retry policy (``RedisCluster`` keeps it in ``retry``)."""
    if isinstance(client, RedisCluster):
        return client.retry
    return client.get_retry()


def is_topology_url(url: str) -> bool:
    """Whether ``url`` names a cluster or a sentinel set (built here, not by redis-py)."""
    return url.partition("://")[0].lower() in {*CLUSTER_SCHEMES, *SENTINEL_SCHEMES}


def close_client(client: Client) -> None:
    """Close every connection the client holds (cluster nodes and sentinels included)."""
    if isinstance(client, RedisCluster):
        client.close()
        return
    client.connection_pool.disconnect()
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect()


# -- errors -------------------------------------------------------------------------------------


class ReplicasBehind(RedisError):
    """WAIT returned before enough replicas confirmed a write (SESSION_REDIS_MIN_REPLICAS)."""


#: Errors the store's own classification (``refusal`` in redis.py: CLUSTERDOWN,
#: TRYAGAIN, READONLY, MASTERDOWN, ... by their codes) does not cover.
TOPOLOGY_ERRORS: tuple[type[BaseException], ...] = (ReplicasBehind, RedisClusterException)


def topology_error(error: BaseException) -> StoreUnavailable:
    """The StoreUnavailable for one of :data:`TOPOLOGY_ERRORS`.

    ``RedisClusterException`` (not a ``RedisError``) means the client cannot use the
    cluster at all: no node reachable, slots not covered, topology not agreed.
    """
    if isinstance(error, ReplicasBehind):
        return StoreUnavailable(
            str(error),
            reason="the session store could not confirm the write on a replica",
            retry_after=2,
        )
    return StoreUnavailable(
        f"redis cluster cannot be used: {error}",
        reason="the session store cluster is down",
        retry_after=2,
    )


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
        for attempt in range(2):
            cluster: Any = client
            server = client.get_redis_connection(cluster.get_node_from_key(keys[0]))
            try:
                return self._run_on(server, sha, source, keys, args)
            except (MovedError, TryAgainError):
                # Not executed: the slot lives elsewhere now. Learn the new map and go
                # again once; the cluster client does the same for plain commands.
                client.nodes_manager.initialize()
                if attempt:
                    raise
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


def replica_wait_from_config(config: Any) -> ReplicaWait | None:
    """``SESSION_REDIS_MIN_REPLICAS`` (default 0: off) and ``SESSION_REDIS_WAIT_TIMEOUT``
    (seconds, default 1) as a ReplicaWait, or None when off."""
    values = {
        MIN_REPLICAS_KEY: config.get(MIN_REPLICAS_KEY, 0),
        WAIT_TIMEOUT_KEY: config.get(WAIT_TIMEOUT_KEY, DEFAULT_WAIT_TIMEOUT),
    }
    replicas = int(
        config_number(
            values, MIN_REPLICAS_KEY, minimum=0, maximum=MAX_REPLICAS, integer=True,
            what="replicas",
        )
    )  # fmt: skip
    timeout = config_number(
        values, WAIT_TIMEOUT_KEY, minimum=0, minimum_inclusive=False, maximum=60,
        what="seconds",
    )  # fmt: skip
    if isinstance(config, MutableMapping):
        # Checked values written back in their types (text from the environment becomes
        # numbers), as the other store settings are.
        for key, value in ((MIN_REPLICAS_KEY, replicas), (WAIT_TIMEOUT_KEY, timeout)):
            if key in config:
                config[key] = value
    if replicas == 0:
        return None
    return ReplicaWait(replicas=replicas, timeout_ms=max(1, int(timeout * 1000)))
