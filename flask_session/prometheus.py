"""``SESSION_METRICS = "prometheus"``: the sessions' metrics in ``prometheus_client``.

Imported only when that setting names it (``pip install 'sessionapp[metrics]'``). The
metrics are made once per process in ``prometheus_client``'s default registry, whatever
the number of apps; with ``PROMETHEUS_MULTIPROC_DIR`` set (before the first import of
``prometheus_client``), each worker writes them to its own files there and one exporter
sums them (``prometheus_client.multiprocess.MultiProcessCollector``; the counter
service's ``sessionapp/metrics_server.py`` does).

Every name below is documented in docs/metrics.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram
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


class PrometheusMetrics:
    """The :class:`~flask_session.metrics.SessionMetrics` of ``prometheus_client``.

    Labelled children are looked up once per label set and kept: ``labels()`` takes a
    lock and builds a tuple, on every request otherwise.
    """

    def __init__(self) -> None:
        self.store_seconds = Histogram(
            "flask_session_store_seconds",
            "Duration of session store verbs (load, save, delete, incr, release, cleanup),"
            " failed ones included",
            ("store", "verb"),
            buckets=LATENCY_BUCKETS,
        )
        self.lock_wait_seconds = Histogram(
            "flask_session_lock_wait_seconds",
            "Duration of loads that took a session's lock: the wait plus the read",
            ("store",),
            buckets=LATENCY_BUCKETS,
        )
        self.lock_timeouts = Counter(
            "flask_session_lock_timeouts",
            "Requests that gave up waiting for a session's lock (SESSION_LOCK_TIMEOUT)",
            ("store",),
        )
        self.unavailable = Counter(
            "flask_session_store_unavailable",
            "Store verbs that failed with StoreUnavailable (a 503), lock timeouts included,"
            " by reason",
            ("store", "reason"),
        )
        self.created = Counter(
            "flask_session_sessions_created", "Sessions first written", ("store",)
        )
        self.regenerated = Counter(
            "flask_session_sessions_regenerated", "Sessions moved to a new id", ("store",)
        )
        self.cleaned = Counter(
            "flask_session_sessions_cleaned",
            "Expired sessions removed by cleanup",
            ("store",),
        )
        self.size_bytes = Histogram(
            "flask_session_session_size_bytes",
            "Encoded size of each session saved (keys and values)",
            ("store",),
            buckets=SIZE_BUCKETS,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._guard = threading.Lock()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            with self._guard:
                child = self._children[key] = metric.labels(*labels)
        return child

    def store_call(self, store: str, verb: str, seconds: float) -> None:
        self._child(self.store_seconds, store, verb).observe(seconds)

    def lock_wait(self, store: str, seconds: float) -> None:
        self._child(self.lock_wait_seconds, store).observe(seconds)

    def lock_timeout(self, store: str) -> None:
        self._child(self.lock_timeouts, store).inc()

    def store_unavailable(self, store: str, reason: str) -> None:
        self._child(self.unavailable, store, reason).inc()

    def session_created(self, store: str) -> None:
        self._child(self.created, store).inc()

    def session_regenerated(self, store: str) -> None:
        self._child(self.regenerated, store).inc()

    def sessions_cleaned(self, store: str, removed: int) -> None:
        self._child(self.cleaned, store).inc(removed)

    def session_saved(self, store: str, size: int) -> None:
        self._child(self.size_bytes, store).observe(size)


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
