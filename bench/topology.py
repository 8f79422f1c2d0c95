"""What SESSION_REDIS_MIN_REPLICAS costs, and what a Redis failover costs, measured.

    .venv/bin/python bench/topology.py [--seconds 8] [--clients 8] [--skip-failover]

Starts real topologies on free loopback ports with the test fixtures (tests/support): a
Sentinel set (master + replica + 3 sentinels) and a Redis Cluster (3 primaries + 3
replicas), and the service under gunicorn (2 workers x 4 threads) configured by FLASK_*
variables alone. Then prints two tables:

1. cost: POST /inc and POST /shared/inc for ``--seconds`` from ``--clients`` threads (one
   new connection per request), with SESSION_REDIS_MIN_REPLICAS 0 and 1: requests/s and
   latency percentiles;
2. failover: a master killed with SIGKILL under the same load (tests/reliability/
   failover_load.py): seconds of 503s, acknowledged increments lost, counter values told
   twice, shared numbers handed out twice; on a Sentinel set whose replica lags 0.5 s
   behind (a delaying TCP proxy), and on the cluster, each with the setting off and on.
   With the setting on and one replica per master, the killed server is restarted as a
   replica once the failover is done (as a supervisor would); its rejoining is part of
   the 503 window.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability import httpkit  # noqa: E402
from tests.reliability.failover_load import run_failover  # noqa: E402
from tests.support.app_servers import GunicornServer  # noqa: E402
from tests.support.ports import HOST  # noqa: E402
from tests.support.redis_cluster import RedisClusterSet  # noqa: E402
from tests.support.redis_sentinel import SentinelSet  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

LAG = 0.5
MAX_REQUESTS = 50_000


@contextmanager
def service(url: str, replicas: int) -> Iterator[GunicornServer]:
    env = {
        "FLASK_SESSION_TYPE": "redis",
        "FLASK_SESSION_REDIS_URL": url,
        "FLASK_SESSION_REDIS_MIN_REPLICAS": str(replicas),
        "FLASK_SESSION_REDIS_WAIT_TIMEOUT": "1",
        "FLASK_SESSION_LOCK_TIMEOUT": "2",
    }
    server = GunicornServer("app:app", env=env, workers=2, threads=4).start()
    try:
        yield server
    finally:
        server.close()


def load(url: str, path: str, seconds: float, clients: int) -> tuple[float, list[float], int]:
    """(requests/s, latencies of 200s in ms, non-200 count) for ``path`` from ``clients``."""
    cookies = []
    for _ in range(clients):
        reply = httpkit.request(url, "POST", "/inc")
        cookies.append(f"session={reply.cookie('session')}")
    latencies: list[float] = []
    failures = [0]
    guard = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(cookie: str) -> None:
        while time.monotonic() < deadline and len(latencies) < MAX_REQUESTS:
            reply = httpkit.request(url, "POST", path, cookie=cookie)
            with guard:
                if reply.status == 200:
                    latencies.append(reply.elapsed * 1000)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in cookies]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.monotonic() - started), latencies, failures[0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def cost_table(seconds: float, clients: int) -> None:
    print(f"\n## Cost of SESSION_REDIS_MIN_REPLICAS ({clients} clients, {seconds:g} s each)\n")
    print("| topology | path | min replicas | req/s | p50 ms | p90 ms | p99 ms | non-200 |")
    print("|---|---|---|---|---|---|---|---|")
    topologies: list[tuple[str, Callable[[], SentinelSet | RedisClusterSet]]] = [
        ("master + replica (sentinel)", SentinelSet),
        ("cluster 3+3", RedisClusterSet),
    ]
    for name, make in topologies:
        with make() as topology:
            for path in ("/inc", "/shared/inc"):
                for replicas in (0, 1):
                    with service(topology.url, replicas) as server:
                        load(server.url, path, 1.0, clients)  # warm-up
                        rate, latencies, bad = load(server.url, path, seconds, clients)
                    print(
                        f"| {name} | POST {path} | {replicas} | {rate:.0f} |"
                        f" {statistics.median(latencies):.1f} | {percentile(latencies, 0.9):.1f} |"
                        f" {percentile(latencies, 0.99):.1f} | {bad} |",
                        flush=True,
                    )


def store_table(calls: int) -> None:
    """The store's own cost, without HTTP: ``incr`` from one thread, in microseconds.

    The two settings are measured interleaved (one call each, in turn), so drift in the
    machine's load affects both alike.
    """
    from flask_session.codecs import CODECS
    from flask_session.stores.redis import RedisStore
    from flask_session.stores.redis_client import client_from_url, close_client
    from flask_session.stores.redis_health import ReplicaWait

    print(f"\n## store.incr alone, one thread, {calls} calls each, interleaved (microseconds)\n")
    print("| topology | min replicas | p50 µs | p90 µs | p99 µs |")
    print("|---|---|---|---|---|")
    topologies: list[tuple[str, Callable[[], SentinelSet | RedisClusterSet]]] = [
        ("master + replica (sentinel)", SentinelSet),
        ("cluster 3+3", RedisClusterSet),
    ]
    for name, make in topologies:
        with make() as topology:
            clients = [client_from_url(topology.url) for _ in range(2)]
            stores = [
                RedisStore(
                    client=client,
                    replica_wait=ReplicaWait(replicas=1, timeout_ms=1000) if replicas else None,
                    codec=CODECS["json"],
                    key_prefix=f"bench{replicas}:",
                    lock_timeout=10,
                )
                for replicas, client in enumerate(clients)
            ]
            timings: list[list[float]] = [[], []]
            for n in range(calls):
                for replicas, store in enumerate(stores):
                    t0 = time.perf_counter()
                    store.incr(f"s{n % 50}", "counter", 1, ttl=60, create=True)
                    timings[replicas].append((time.perf_counter() - t0) * 1e6)
            for client in clients:
                close_client(client)
            for replicas, values in enumerate(timings):
                print(
                    f"| {name} | {replicas} | {statistics.median(values):.0f} |"
                    f" {percentile(values, 0.9):.0f} | {percentile(values, 0.99):.0f} |",
                    flush=True,
                )


def _restart_as_replica(topology: SentinelSet, old: RedisServer) -> None:
    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            address = topology.master_address()
            if address is not None and address[1] != old.port:
                break
            time.sleep(0.05)
        old.start()
        with old.client() as client:
            client.execute_command("REPLICAOF", HOST, topology.master_address()[1])  # type: ignore[index]

    threading.Thread(target=run, daemon=True).start()


def _restart_in_cluster(cluster: RedisClusterSet, old: RedisServer) -> None:
    def run() -> None:
        deadline = time.monotonic() + 30
        while len(cluster.current_primaries()) < cluster.primaries and time.monotonic() < deadline:
            time.sleep(0.05)
        old.start()

    threading.Thread(target=run, daemon=True).start()


def failover_table(clients: int) -> None:
    print(f"\n## A master killed (SIGKILL) under load ({clients} clients)\n")
    print(
        "| topology | min replicas | requests | 503s | 503 window s | acked increments |"
        " lost acked | values told twice | shared numbers | shared repeated | req/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs: list[tuple[str, int]] = [
        (f"sentinel, replica {LAG:g} s behind", 0),
        (f"sentinel, replica {LAG:g} s behind", 1),
        ("sentinel, no lag", 0),
        ("cluster 3+3", 0),
        ("cluster 3+3", 1),
    ]
    for name, replicas in runs:
        if name.startswith("sentinel"):
            lag = LAG if "behind" in name else None
            with SentinelSet(lag=lag) as topology, service(topology.url, replicas) as server:

                def fail(topology: SentinelSet = topology, replicas: int = replicas) -> None:
                    old = topology.master()
                    old.kill()
                    if replicas:
                        _restart_as_replica(topology, old)

                report = run_failover(server.url, fail, clients=clients, before=3.0, time_limit=60)
        else:
            with RedisClusterSet() as cluster, service(cluster.url, replicas) as server:

                def fail(cluster: RedisClusterSet = cluster, replicas: int = replicas) -> None:
                    old = cluster.primary_for("sessionapp")  # any primary will do
                    old.kill()
                    if replicas:
                        _restart_in_cluster(cluster, old)

                report = run_failover(server.url, fail, clients=clients, before=3.0, time_limit=60)
        window = "n/a" if report.window is None else f"{report.window:.2f}"
        print(
            f"| {name} | {replicas} | {report.requests} | {report.statuses[503]} | {window} |"
            f" {report.acked_increments} | {report.lost_acked} | {report.repeated_values} |"
            f" {report.shared_taken} | {report.shared_repeats} | {report.throughput:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--store-calls", type=int, default=5000)
    args = parser.parse_args()
    store_table(args.store_calls)
    if not args.skip_cost:
        cost_table(args.seconds, args.clients)
    if not args.skip_failover:
        failover_table(args.clients)


if __name__ == "__main__":
    main()
