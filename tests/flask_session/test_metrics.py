"""Issue 21, the library's side: SESSION_METRICS, what the sessions report, counting sessions.

An observer that records what it is told (a real :class:`SessionMetrics`, not a stand-in
for a store) watches the demo app on every store; the Prometheus adapter is checked
through ``prometheus_client``'s own registry. The service's /metrics over real worker
processes is tests/reliability/test_metrics.py.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from flask_session import SessionConfigError, SessionLockTimeout
from flask_session.metrics import MeasuredStore, NoMetrics, SessionMetrics
from flask_session.prometheus import LATENCY_BUCKETS, LiveSessionsCollector, PrometheusMetrics
from flask_session.session import session_size
from flask_session.stores.sessioncount import SessionCount

LOCK_BUSY = "the session is busy with another request"


class Recorder(NoMetrics):
    """Every event, in order, as (method, store, detail)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []
        self._guard = threading.Lock()

    def _add(self, *event: object) -> None:
        with self._guard:
            self.events.append(event)  # type: ignore[arg-type]

    def store_call(self, store: str, verb: str, seconds: float) -> None:
        assert seconds >= 0
        self._add("store_call", store, verb)

    def lock_wait(self, store: str, seconds: float) -> None:
        self._add("lock_wait", store, round(seconds >= 0))

    def lock_timeout(self, store: str) -> None:
        self._add("lock_timeout", store, None)

    def store_unavailable(self, store: str, reason: str) -> None:
        self._add("store_unavailable", store, reason)

    def session_created(self, store: str) -> None:
        self._add("session_created", store, None)

    def session_regenerated(self, store: str) -> None:
        self._add("session_regenerated", store, None)

    def sessions_cleaned(self, store: str, removed: int) -> None:
        self._add("sessions_cleaned", store, removed)

    def session_saved(self, store: str, size: int) -> None:
        self._add("session_saved", store, size)

    def count(self, kind: str, detail: object = None) -> int:
        return sum(1 for event in self.events if event[0] == kind and detail in (None, event[2]))


def test_off_by_default_the_store_is_called_as_is(make_app):
    app = make_app()
    interface = app.session_interface
    assert interface.settings.metrics is None
    assert interface.session_store is interface.store
    assert app.test_client().post("/incr/n").json == {"value": 1}


def test_a_value_that_is_no_observer_is_refused_naming_the_key(make_app):
    for bad in ("statsd", 5, object()):
        with pytest.raises(SessionConfigError, match="SESSION_METRICS"):
            make_app(SESSION_METRICS=bad)
    assert isinstance(Recorder(), SessionMetrics)


def test_a_missing_prometheus_client_is_refused_naming_the_extra(make_app, monkeypatch):
    monkeypatch.delitem(sys.modules, "flask_session.prometheus", raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an absent package is
    with pytest.raises(
        SessionConfigError, match=r"SESSION_METRICS.*Flask-Session-Atomic\[metrics\]"
    ):
        make_app(SESSION_METRICS="prometheus")


def test_the_sessions_report_every_event_on_every_store(make_app, store_name):
    recorder = Recorder()
    app = make_app(SESSION_METRICS=recorder)
    assert isinstance(app.session_interface.session_store, MeasuredStore)
    client = app.test_client()
    for expected in (1, 2, 3):
        assert client.post("/incr/n").json == {"value": expected}
    assert recorder.count("session_created") == 1
    assert recorder.count("store_call", "incr") == 3

    assert client.post("/set/k?value=abc").status_code == 200  # load (locked), then save
    assert recorder.count("store_call", "load") == 1
    assert recorder.count("lock_wait") == 1
    saved = [event for event in recorder.events if event[0] == "session_saved"]
    codec = app.session_interface.codec
    stored = {"n": codec.encode(3), "k": codec.encode("abc")}
    assert [size for _, _, size in saved] == [session_size(stored)]

    assert client.post("/regenerate").status_code == 200
    assert recorder.count("session_regenerated") == 1
    assert recorder.count("session_created") == 1  # a new id, but not a new session
    assert recorder.count("store_call", "delete") == 1
    assert recorder.count("store_unavailable") == recorder.count("lock_timeout") == 0
    assert {event[1] for event in recorder.events} == {store_name}


# The filesystem's lock is held until released; on the other stores it is a lease of
# SESSION_LOCK_TIMEOUT, which a waiter (waiting a second longer) always outlasts.
@pytest.mark.parametrize("store_type", ["filesystem"])
def test_a_lock_timeout_is_reported_as_a_timeout_and_a_refusal(make_app, store_name):
    recorder = Recorder()
    app = make_app(SESSION_METRICS=recorder, SESSION_LOCK_TIMEOUT=0.2)
    client = app.test_client()
    client.post("/incr/n")
    sid = client.get_cookie("session").value
    store = app.session_interface.session_store
    held = store.load(sid, lock=True, refresh_ttl=None)
    try:
        with pytest.raises(SessionLockTimeout):
            store.load(sid, lock=True, refresh_ttl=None)
    finally:
        store.release(sid, held.lock)
    assert recorder.count("lock_timeout") == 1
    assert recorder.count("store_unavailable", LOCK_BUSY) == 1
    assert recorder.count("store_call", "load") == 2  # the failed one too
    assert recorder.count("lock_wait") == 1  # only the load that got the lock


@pytest.mark.parametrize("store_type", ["filesystem", "sqlite"])
def test_cleanup_reports_what_it_removed(make_app):
    recorder = Recorder()
    app = make_app(SESSION_METRICS=recorder, PERMANENT_SESSION_LIFETIME=1)
    for _ in range(2):
        app.test_client().post("/incr/n")
    time.sleep(1.1)
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0, result.output
    assert ("sessions_cleaned", app.session_interface.store.name, 2) in recorder.events


def test_stores_count_their_live_sessions(make_app, store_type, store_name):
    app = make_app()
    store = app.session_interface.store
    if store_type == "memcached":  # it cannot list its keys: it does not claim to
        assert not isinstance(store, SessionCount)
        assert list(LiveSessionsCollector(store).collect())[0].samples == []
        return
    assert isinstance(store, SessionCount)
    short = make_app(PERMANENT_SESSION_LIFETIME=1)
    short.test_client().post("/incr/n")
    short.test_client().post("/incr/n")
    time.sleep(1.1)  # both expired
    for _ in range(3):
        app.test_client().post("/incr/n")
    app.test_client().get("/get")  # looks, creates nothing
    app.session_interface.store.counter_incr("shared")  # a counter is not a session
    assert store.count_sessions(time.monotonic() + 5) == 3
    assert store.count_sessions(time.monotonic() - 1) is None  # past its deadline: unknown
    [family] = LiveSessionsCollector(store).collect()
    assert [(sample.labels, sample.value) for sample in family.samples] == [
        ({"store": store_name}, 3)
    ]


@pytest.mark.parametrize("store_type", ["redis", "sqlite"])
def test_counting_leaves_other_prefixes_out(make_app):
    app = make_app()
    other = make_app(SESSION_KEY_PREFIX="other[*]:")  # glob and LIKE characters, literally
    app.test_client().post("/incr/n")
    for _ in range(2):
        other.test_client().post("/incr/n")
    assert app.session_interface.store.count_sessions(time.monotonic() + 5) == 1
    assert other.session_interface.store.count_sessions(time.monotonic() + 5) == 2


@pytest.mark.parametrize("store_type", ["filesystem"])
def test_prometheus_adapter_counts_in_prometheus_client(make_app):
    app = make_app(SESSION_METRICS="prometheus")
    labels = {"store": "filesystem", "verb": "incr"}
    before = REGISTRY.get_sample_value("flask_session_store_seconds_count", labels) or 0
    created = (
        REGISTRY.get_sample_value("flask_session_sessions_created_total", {"store": "filesystem"})
        or 0
    )
    client = app.test_client()
    for _ in range(5):
        client.post("/incr/n")
    app.session_interface.settings.metrics.publish()  # else within PUBLISH_INTERVAL_S
    assert REGISTRY.get_sample_value("flask_session_store_seconds_count", labels) == before + 5
    assert (
        REGISTRY.get_sample_value("flask_session_sessions_created_total", {"store": "filesystem"})
        == created + 1
    )
    # a second app in the same process shares the metrics (registered once)
    assert make_app(SESSION_METRICS="prometheus").session_interface.settings.metrics is (
        app.session_interface.settings.metrics
    )


def test_published_tallies_read_as_prometheus_clients_own_observe():
    """Tallies handed over in bulk read exactly as observe() one by one would have."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    direct = Histogram("direct", "observed one by one", ("store", "verb"), registry=registry,
                       buckets=LATENCY_BUCKETS)  # fmt: skip
    for value in (0.00005, 0.0001, 0.0003, 0.004, 0.2, 7.0, 11.0, 0.0001, 10.0):
        direct.labels("redis", "incr").observe(value)
        metrics.store_call("redis", "incr", value)
    metrics.store_unavailable("redis", "the session store cannot be reached")
    metrics.publish()
    labels = {"store": "redis", "verb": "incr"}
    for suffix in ("_count", "_sum"):
        ours = registry.get_sample_value("flask_session_store_seconds" + suffix, labels)
        assert ours == pytest.approx(registry.get_sample_value("direct" + suffix, labels))
    for bound in (*(str(b) for b in LATENCY_BUCKETS), "+Inf"):
        le = {**labels, "le": bound}
        ours = registry.get_sample_value("flask_session_store_seconds_bucket", le)
        assert ours == registry.get_sample_value("direct_bucket", le), le
    reason = {"store": "redis", "reason": "the session store cannot be reached"}
    assert registry.get_sample_value("flask_session_store_unavailable_total", reason) == 1
    metrics.publish()  # nothing new: nothing added twice
    assert registry.get_sample_value("flask_session_store_unavailable_total", reason) == 1
