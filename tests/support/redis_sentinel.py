"""A real Sentinel set (master + replica + 3 sentinels) on free loopback ports, for tests.

Usage::

    with SentinelSet(lag=0.3) as topology:     # lag: the replica follows via a delaying proxy
        topology.url                  # redis+sentinel://127.0.0.1:s1,.../mymaster/0
        topology.master().kill()      # a crash; sentinels promote the replica in ~2 s
        topology.wait_failover(old)   # sentinels agree on a new master, which answers as one
        topology.restart_stopped()    # the old master comes back and is made a replica
"""

from __future__ import annotations

import time

import redis

from .ports import HOST
from .redis_server import REPLICATION_ARGS, RedisServer
from .tcp_proxy import TcpProxy

MASTER_NAME = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelSet:
    """``servers[0]`` starts as master, ``servers[1]`` replicates it (through a
    :class:`TcpProxy` when ``lag`` is given); three sentinels watch them."""

    def __init__(
        self, *, flavour: str = "redis", lag: float | None = None, ready_timeout: float = 30.0
    ) -> None:
        self.flavour = flavour
        self.ready_timeout = ready_timeout
        self.servers = [RedisServer(flavour=flavour, extra_args=REPLICATION_ARGS) for _ in range(2)]
        self.proxy: TcpProxy | None = None
        self._lag = lag
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self) -> SentinelSet:
        try:
            master, replica = self.servers
            master.start()
            replica.start()
            upstream = master.port
            if self._lag is not None:
                self.proxy = TcpProxy(master.port, lag=self._lag).start()
                upstream = self.proxy.port
            with replica.client() as client:
                client.execute_command("REPLICAOF", HOST, upstream)
            self.sentinels = [
                RedisServer(flavour=self.flavour, config=self._sentinel_config(master.port),
                            extra_args=("--sentinel",))
                for _ in range(3)
            ]  # fmt: skip
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_stable()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.close()
        if self.proxy is not None:
            self.proxy.close()

    def __enter__(self) -> SentinelSet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------

    def master_address(self, *, unanimous: bool = False) -> tuple[str, int] | None:
        """The master the sentinels agree on (a quorum of them, or with ``unanimous``
        every running one), or None."""
        votes: dict[tuple[str, int], int] = {}
        running = [sentinel for sentinel in self.sentinels if sentinel.running]
        for sentinel in running:
            try:
                with sentinel.client() as client:
                    host, port = client.execute_command(
                        "SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                    )
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, TypeError):
                continue
            address = (host.decode() if isinstance(host, bytes) else str(host), int(port))
            votes[address] = votes.get(address, 0) + 1
        needed = len(running) if unanimous else QUORUM
        agreed = [address for address, count in votes.items() if count >= needed]
        return agreed[0] if len(agreed) == 1 else None

    def master(self) -> RedisServer:
        """The server that is master now (as the sentinels say)."""
        address = self.master_address()
        for server in self.servers:
            if address is not None and server.port == address[1]:
                return server
        raise AssertionError(f"sentinels agree on no known master ({address})")

    def flushall(self) -> None:
        with self.master().client() as client:
            client.flushall()

    def restart_stopped(self) -> None:
        """Bring back servers a test killed (sentinels make an old master a replica)."""
        stopped = [server for server in self.servers if not server.running]
        for server in stopped:
            server.start()
        if stopped:
            self.wait_stable()

    def wait_failover(self, old: RedisServer) -> RedisServer:
        """Wait until the sentinels name a master other than ``old`` and it answers as one."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address is not None and address[1] != old.port and self._is_master(address[1]):
                return self.master()
            time.sleep(0.05)
        raise RuntimeError("sentinels did not fail over in time")

    def wait_stable(self) -> None:
        """Wait until the sentinels agree on a running master that every running server
        follows, and each sentinel knows the others and the replica."""
        deadline = time.monotonic() + self.ready_timeout
        problem = ""
        while time.monotonic() < deadline:
            problem = self._problem()
            if not problem:
                return
            time.sleep(0.1)
        raise RuntimeError(f"sentinel set not stable in time: {problem}")

    def _problem(self) -> str:
        address = self.master_address()
        if address is None:
            return "sentinels agree on no master"
        if not self._is_master(address[1]):
            return f"{address} does not answer as master"
        running = [server for server in self.servers if server.running]
        try:
            with self.master().client() as client:
                replicas = client.execute_command("ROLE")[2]
            if len(replicas) < len(running) - 1:
                return f"master has {len(replicas)} replicas"
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.execute_command("SENTINEL MASTER", MASTER_NAME)
                # redis-py parses the reply into a dict
                if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return f"sentinel {sentinel.port} knows too few sentinels"
                if int(state["num-slaves"]) < 1:
                    return f"sentinel {sentinel.port} knows no replica"
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
            return str(error)
        return ""

    def _is_master(self, port: int) -> bool:
        for server in self.servers:
            if server.port == port and server.running:
                try:
                    with server.client() as client:
                        return bool(client.execute_command("ROLE")[0] == b"master")
                except (redis.ConnectionError, redis.TimeoutError):
                    return False
        return False

    @staticmethod
    def _sentinel_config(master_port: int) -> str:
        return (
            f"sentinel monitor {MASTER_NAME} {HOST} {master_port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
