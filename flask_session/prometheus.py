"""``SESSION_METRICS = "prometheus"``: the sessions' metrics in ``prometheus_client``.

Imported only when that setting names it (``pip install 'Flask-Session-Atomic[metrics]'``). The
metrics are made once per process in ``prometheus_client``'s default registry, whatever
the number of apps; with ``PROMETHEUS_MULTIPROC_DIR`` set (before the first import of
``prometheus_client``), each worker writes them to its own files there and one exporter
sums them (``prometheus_client.multiprocess.MultiProcessCollector``; the counter
service's ``sessionapp/metrics_server.py`` does).

Every name below is documented in docs/metrics.md.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import StoreUnavailable
from .stores.sessioncount import SessionCount

if TYPE_CHECKING:
    from .stores.base import Store

#: Store verbs and lock waits, in seconds: a Redis or file verb takes ~0.1-1 ms; a lock
#: wait may last up to SESSION_LOCK_TIMEOUT (10 s by default)
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Session sizes in bytes: a counter's session is ~50 bytes; a 4 KiB session is what a
#: cookie could have held
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
#: seconds the live-session count may take at each scrape (the store stops at it)
LIVE_COUNT_BUDGET_S = 2.0
#: seconds between a worker's hand-overs of its tallies to prometheus_client
PUBLISH_INTERVAL_S = 1.0

_getpid = os.getpid
logger = logging.getLogger(__name__)


class PrometheusMetrics:
    """The :class:`~flask_session.metrics.SessionMetrics` of ``prometheus_client``.

    A request only adds to a tally in this process's memory (a lock, a bucket found by
    bisection, two additions: about a microsecond); a thread publishes the tallies to
    ``prometheus_client`` every :data:`PUBLISH_INTERVAL_S` (and at exit). Writing each
    observation straight through ``prometheus_client`` (a lock and a write to the
    memory-mapped file per bucket and sum, in multiprocess mode) cost 7-13 µs per
    request in ``bench/request_cpu.py``, with the caches cold from the request's own
    work. So a scrape sees what happened up to a second ago, and a worker killed by
    ``kill -9`` loses at most its last second of counts (what it published stays).
    """

    def __init__(
        self, publish_interval: float = PUBLISH_INTERVAL_S, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.publish_interval = publish_interval
        self.store_seconds = Histogram(
            "flask_session_store_seconds",
            "Duration of session store verbs (load, save, delete, incr, release, cleanup),"
            " failed ones included",
            ("store", "verb"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lock_wait_seconds = Histogram(
            "flask_session_lock_wait_seconds",
            "Duration of loads that took a session's lock: the wait plus the read",
            ("store",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lock_timeouts = Counter(
            "flask_session_lock_timeouts",
            "Requests that gave up waiting for a session's lock (SESSION_LOCK_TIMEOUT)",
            ("store",),
            registry=registry,
        )
        self.unavailable = Counter(
            "flask_session_store_unavailable",
            "Store verbs that failed with StoreUnavailable (a 503), lock timeouts included,"
            " by reason",
            ("store", "reason"),
            registry=registry,
        )
        self.created = Counter(
            "flask_session_sessions_created",
            "Sessions first written",
            ("store",),
            registry=registry,
        )
        self.regenerated = Counter(
            "flask_session_sessions_regenerated",
            "Sessions moved to a new id",
            ("store",),
            registry=registry,
        )
        self.cleaned = Counter(
            "flask_session_sessions_cleaned",
            "Expired sessions removed by cleanup",
            ("store",),
            registry=registry,
        )
        self.size_bytes = Histogram(
            "flask_session_session_size_bytes",
            "Encoded size of each session saved (keys and values)",
            ("store",),
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        # (metric, *labels) -> [sum, count in bucket 0, 1, ..., +Inf] / added amount
        self._observed: dict[tuple[Any, ...], list[float]] = {}
        self._counted: dict[tuple[Any, ...], float] = {}
        self._guard = threading.Lock()
        self._publisher_pid = 0  # the process whose thread publishes (0: none yet)
        atexit.register(self.publish)

    # -- what a request calls ----------------------------------------------------------

    def _observe(self, key: tuple[Any, ...], bounds: tuple[float, ...], value: float) -> None:
        bucket = bisect_left(bounds, value) + 1  # the first bound >= value ("le")
        with self._guard:
            tally = self._observed.get(key)
            if tally is None:
                tally = self._observed[key] = [0.0] * (len(bounds) + 2)
            tally[0] += value
            tally[bucket] += 1
        if self._publisher_pid != _getpid():
            self._start_publisher()

    def _count(self, key: tuple[Any, ...], amount: float = 1) -> None:
        with self._guard:
            self._counted[key] = self._counted.get(key, 0) + amount
        if self._publisher_pid != _getpid():
            self._start_publisher()

    def store_call(self, store: str, verb: str, seconds: float) -> None:
        self._observe((self.store_seconds, store, verb), LATENCY_BUCKETS, seconds)

    def lock_wait(self, store: str, seconds: float) -> None:
        self._observe((self.lock_wait_seconds, store), LATENCY_BUCKETS, seconds)

    def lock_timeout(self, store: str) -> None:
        self._count((self.lock_timeouts, store))

    def store_unavailable(self, store: str, reason: str) -> None:
        self._count((self.unavailable, store, reason))

    def session_created(self, store: str) -> None:
        self._count((self.created, store))

    def session_regenerated(self, store: str) -> None:
        self._count((self.regenerated, store))

    def sessions_cleaned(self, store: str, removed: int) -> None:
        self._count((self.cleaned, store), removed)

    def session_saved(self, store: str, size: int) -> None:
        self._observe((self.size_bytes, store), SIZE_BUCKETS, size)

    # -- publishing --------------------------------------------------------------------

    def publish(self) -> None:
        """Hand the tallies to ``prometheus_client`` (in multiprocess mode: to this
        process's files, which the exporter reads)."""
        with self._guard:
            observed, self._observed = self._observed, {}
            counted, self._counted = self._counted, {}
        for (metric, *labels), tally in observed.items():
            child = metric.labels(*labels)
            # prometheus_client's own parts of a histogram: its sum and one counter per
            # bucket (not cumulative; it adds them up when collected), as observe() does.
            child._sum.inc(tally[0])
            for bucket, count in zip(child._buckets, tally[1:], strict=True):
                if count:
                    bucket.inc(count)
        for (metric, *labels), amount in counted.items():
            metric.labels(*labels).inc(amount)

    def _start_publisher(self) -> None:
        """Start this process's publishing thread (again in a forked child: threads do
        not survive a fork, and a gunicorn worker may be one)."""
        with self._guard:
            pid = _getpid()
            if self._publisher_pid == pid:
                return
            self._publisher_pid = pid
        threading.Thread(target=self._publish_forever, name="session-metrics", daemon=True).start()

    def _publish_forever(self) -> None:
        while True:
            time.sleep(self.publish_interval)
            try:
                self.publish()
            except Exception:  # keep publishing: one failed hand-over is logged, not fatal
                logger.exception("session metrics could not be handed to prometheus_client")


_made: PrometheusMetrics | None = None
_making = threading.Lock()


def prometheus_metrics() -> PrometheusMetrics:
    """The process's one :class:`PrometheusMetrics` (a metric is registered only once)."""
    global _made
    with _making:
        if _made is None:
            _made = PrometheusMetrics()
        return _made


class LiveSessionsCollector(Collector):
    """``flask_session_live_sessions``: the store's count, asked at each scrape.

    Register it in the exporter's registry (one process), not in each worker. The count
    is left out of the scrape when the store cannot count (memcached: see
    :mod:`flask_session.stores.sessioncount`), cannot finish within ``budget`` seconds
    or is unavailable: a missing sample, never a wrong number.
    """

    def __init__(self, store: Store, budget: float = LIVE_COUNT_BUDGET_S) -> None:
        self.store = store
        self.budget = budget

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "flask_session_live_sessions",
            "Sessions in the store that have not expired, counted at scrape time",
            labels=("store",),
        )
        store = self.store
        if isinstance(store, SessionCount):
            try:
                count = store.count_sessions(time.monotonic() + self.budget)
            except StoreUnavailable:
                count = None
            if count is not None:
                family.add_metric((store.name,), count)
        yield family
