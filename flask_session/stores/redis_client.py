"""Building and checking the Redis store's client: standalone Redis, Redis Cluster, Sentinel.

The one place a client is made (:func:`client_from_settings`): ``SESSION_REDIS`` as given,
or one built from ``SESSION_REDIS_URL``, whose forms are (``rediss`` for TLS wherever
``redis`` is accepted)::

    redis://[[user]:password@]host[:port][/db][?options]          one server (redis-py's own forms,
    unix:///path/to/redis.sock[?db=0]                              unix sockets included)
    redis+cluster://[[user]:password@]host:port[,host:port...][?options]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db][?options]

A cluster URL lists a few nodes to discover the cluster from; a sentinel URL lists the
sentinels and names the master they watch (the user and password are the Redis
servers', ``?sentinel_password=`` is the sentinels'). ``options`` are
``socket_timeout`` and ``socket_connect_timeout`` (seconds) and, for sentinel,
``sentinel_username``/``sentinel_password``.

One retry rule for every client built here, whatever the form: one retry, on a broken
connection only (a server restart, an idle connection dropped by a firewall, a failed-over
primary), never on a timeout (a hung server costs one timeout, not two). Every verb of the
store is safe to repeat (an increment carries an id, see :mod:`flask_session.stores.redis`),
so a given ``SESSION_REDIS`` may retry as it likes too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis._parsers.encoders import Encoder
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import PythonRespSerializer
from redis.exceptions import ConnectionError, RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..errors import SessionConfigError
from ..readers import config_number

hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as hiredis_pack
except ImportError:  # an optional extra (flask_session[hiredis])
    hiredis_pack = None

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

#: Retries of every client built here: one, on a broken connection (module docstring).
URL_CLIENT_RETRIES = 1

#: Clients accepted as SESSION_REDIS.
Client = redis.Redis | RedisCluster


def url_client_retry() -> Retry:
    """The retry policy of every client built from a URL (the module's one rule)."""
    return Retry(
        ExponentialBackoff(cap=0.1, base=0.01),
        URL_CLIENT_RETRIES,
        supported_errors=(ConnectionError,),
    )


def client_from_settings(client: Any, url: str | None) -> Client:
    """The Redis client for the store: ``SESSION_REDIS`` as given (checked), or one made
    from ``SESSION_REDIS_URL``. Raises SessionConfigError naming the key; never guesses
    a server (Flask-Session 0.8's localhost default is applied, with a warning, by its
    compatibility layer before this is called)."""
    if client is not None and url:
        raise SessionConfigError("set SESSION_REDIS or SESSION_REDIS_URL, not both")
    if client is not None:
        check_client(client)
        return client  # type: ignore[no-any-return]
    if not url:
        raise SessionConfigError(
            "SESSION_TYPE is 'redis' but neither SESSION_REDIS (a redis.Redis client) nor"
            " SESSION_REDIS_URL (for example redis://127.0.0.1:6379/0) is set"
        )
    return client_from_url(url)


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
        return _packing_leanly(
            redis.Redis.from_url(
                url,
                retry=url_client_retry(),
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
            )
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
            retry=url_client_retry(),
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
        retry=url_client_retry(),
        username=parsed.username,
        password=parsed.password,
    )
    return _packing_leanly(client)


class SentinelClient(redis.Redis):
    """A Sentinel-managed master client that also closes its connections to the sentinels."""

    def close(self) -> None:
        super().close()
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                sentinel.close()


#: redis-py's defaults, the only encoding hiredis' own packing matches
_DEFAULT_ENCODING = ("utf-8", "strict")
#: redis-py's default size above which its Python packer sends an argument on its own
_BUFFER_CUTOFF = 6000


class LeanPacker:
    """Packs a command with one call to hiredis, for arguments that need no conversion.

    redis-py's hiredis packer first passes every argument through its encoder in Python
    (type checks, ``str.encode``), which for a script call of a dozen arguments was about
    7 µs of a request's CPU; hiredis itself packs ``str`` (as UTF-8), ``bytes``, ``int``
    and ``float`` (as ``repr``, like the encoder) with the same result. An argument
    hiredis does not take (``bool``, ``None``, ...) or a command name of several words
    goes to redis-py's own Python packer, which converts or refuses it exactly as redis-py
    does. Used only on clients whose encoding is redis-py's default (UTF-8, strict).
    """

    def __init__(self) -> None:
        # redis-py's Python packer (the same bytes as its hiredis one, in every redis-py
        # version this package supports); its constructors are untyped: called through
        # Any for mypy --strict.
        make_encoder: Any = Encoder
        encoder = make_encoder(*_DEFAULT_ENCODING, decode_responses=False)
        self._fallback: Any = PythonRespSerializer(_BUFFER_CUTOFF, encoder.encode)

    def pack(self, *args: Any) -> list[bytes]:
        name = args[0]
        if hiredis_pack is not None and type(name) is str and " " not in name:
            try:
                return [hiredis_pack(args)]
            except TypeError:
                pass  # an argument hiredis does not take: redis-py's packer decides
        packed: list[bytes] = self._fallback.pack(*args)
        return packed


def _packing_leanly(client: redis.Redis) -> redis.Redis:
    """``client`` with its connections packing commands by :class:`LeanPacker`, when
    hiredis is installed and the client uses redis-py's default encoding; else as it is.
    Connections are made lazily, so none exists yet to miss the setting."""
    kwargs = client.connection_pool.connection_kwargs
    encoding = (kwargs.get("encoding", "utf-8"), kwargs.get("encoding_errors", "strict"))
    if hiredis_pack is not None and encoding == _DEFAULT_ENCODING:
        kwargs["command_packer"] = LeanPacker()
    return client


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
