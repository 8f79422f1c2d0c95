"""Metrics: what the sessions report to an observer the app chooses; off by default.

The core knows no metrics library. It reports to a :class:`SessionMetrics`, a small
protocol with one method per event, named by ``SESSION_METRICS``:

* ``None`` (the default): nothing is measured, and nothing is wrapped: the store verbs
  are called exactly as without this module, so metrics cost nothing when off.
* ``"prometheus"``: :mod:`flask_session.prometheus`, which imports ``prometheus_client``
  (``pip install 'Flask-Session-Atomic[metrics]'``) only when chosen.
* any object implementing :class:`SessionMetrics` (subclass :class:`NoMetrics` and
  override what you need).

The store verbs are measured in one place, :class:`MeasuredStore`, a store that wraps
the configured one; the session interface hands it to the sessions instead of the store
when metrics are on (:func:`measured`). What it reports:

* every verb's duration (``load``, ``save``, ``delete``, ``incr``, ``release``,
  ``cleanup``), failed ones included;
* the duration of each locking ``load``: the wait for the session's lock plus the one
  read that takes it (the store answers both in one step, so they are not told apart);
* each :class:`~flask_session.SessionLockTimeout`, and each
  :class:`~flask_session.StoreUnavailable` (lock timeouts included: both are a 503) by
  its ``reason``, a short fixed sentence per kind of failure;
* sessions removed by cleanup (``flask session cleanup``; its process reports them).

The session itself (:mod:`flask_session.session`) reports what only it knows, when
``SESSION_METRICS`` is set: sessions created (a fresh id first written, by a save or an
increment), sessions regenerated (``regenerate``, which is not counted as created), and
the size of each session a request saved: its encoded keys and values, in bytes.

How many sessions live is asked of the store, not counted here: a store that can count
cheaply implements :class:`~flask_session.stores.sessioncount.SessionCount`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from ._version import install_hint
from .errors import SessionConfigError, SessionLockTimeout, StoreUnavailable
from .stores.base import CleanupReport, IncrResult, Loaded, Store

if TYPE_CHECKING:
    from .settings import SessionSettings

#: SESSION_METRICS by name -> (module, factory function, the extra that installs it)
METRICS_BACKENDS: dict[str, tuple[str, str, str]] = {
    "prometheus": ("flask_session.prometheus", "prometheus_metrics", "metrics"),
}


@runtime_checkable
class SessionMetrics(Protocol):
    """What the sessions report. ``store`` is the store's ``name`` (``"redis"``, ...).

    Called on the request's thread, in the middle of its work: an implementation must be
    quick, thread-safe and must not raise.
    """

    def store_call(self, store: str, verb: str, seconds: float) -> None:
        """A store verb returned or raised after ``seconds``."""

    def lock_wait(self, store: str, seconds: float) -> None:
        """A locking load returned holding the lock after ``seconds`` (wait plus read)."""

    def lock_timeout(self, store: str) -> None:
        """A request gave up waiting for a session's lock (SessionLockTimeout)."""

    def store_unavailable(self, store: str, reason: str) -> None:
        """A verb raised StoreUnavailable (lock timeouts too) with this ``reason``."""

    def session_created(self, store: str) -> None:
        """A new session was first written."""

    def session_regenerated(self, store: str) -> None:
        """A session moved to a new id (``regenerate``)."""

    def sessions_cleaned(self, store: str, removed: int) -> None:
        """A cleanup removed ``removed`` expired sessions."""

    def session_saved(self, store: str, size: int) -> None:
        """A session was saved; it holds ``size`` bytes of encoded keys and values."""


class NoMetrics:
    """A :class:`SessionMetrics` that records nothing: a base for partial observers."""

    def store_call(self, store: str, verb: str, seconds: float) -> None:
        pass

    def lock_wait(self, store: str, seconds: float) -> None:
        pass

    def lock_timeout(self, store: str) -> None:
        pass

    def store_unavailable(self, store: str, reason: str) -> None:
        pass

    def session_created(self, store: str) -> None:
        pass

    def session_regenerated(self, store: str) -> None:
        pass

    def sessions_cleaned(self, store: str, removed: int) -> None:
        pass

    def session_saved(self, store: str, size: int) -> None:
        pass


def metrics_setting(config: Mapping[str, Any], key: str) -> SessionMetrics | None:
    """Reader of SESSION_METRICS: None/"" (off), a backend's name, or an observer.

    A backend's module is imported here, at start-up, so that a missing package is a
    SessionConfigError naming the setting and the extra to install.
    """
    value = config[key]
    if value is None or value == "":
        return None
    if isinstance(value, str):
        name = value.strip().lower()
        if name in ("none", "off"):
            return None
        if name not in METRICS_BACKENDS:
            choices = ", ".join(repr(choice) for choice in METRICS_BACKENDS)
            raise SessionConfigError(
                f"{key} is {value!r}; use {choices}, None (off), or an object with the"
                " methods of flask_session.metrics.SessionMetrics"
            )
        module_name, factory, extra = METRICS_BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if not error.name or error.name.startswith("flask_session"):
                raise
            raise SessionConfigError(
                f"{key} is {value!r} but {error.name} is not installed:"
                f" {install_hint(extra)}"
            ) from error
        made: SessionMetrics = getattr(module, factory)()
        return made
    if isinstance(value, SessionMetrics):
        return value
    raise SessionConfigError(
        f"{key} is {type(value).__name__} {value!r}; it must be None, 'prometheus' or an"
        " object with the methods of flask_session.metrics.SessionMetrics"
    )


def measured(store: Store, settings: SessionSettings) -> Store:
    """The store the sessions call: ``store`` itself with metrics off, else measured."""
    if settings.metrics is None:
        return store
    return MeasuredStore(store, settings.metrics)


class MeasuredStore(Store):
    """A store that times and counts every session verb of the store it wraps.

    Only the session verbs pass through it; capabilities (counters, ``ping``, counting
    sessions) are the wrapped store's (``inner``). The store label is ``inner.name``.
    """

    name: ClassVar[str] = "measured"

    def __init__(self, inner: Store, metrics: SessionMetrics) -> None:
        super().__init__(
            codec=inner.codec, key_prefix=inner.key_prefix, lock_timeout=inner.lock_timeout
        )
        self.inner = inner
        self.metrics = metrics
        self.label = inner.name

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> Store:
        raise TypeError("MeasuredStore wraps a store: use flask_session.metrics.measured")

    def _failed(self, verb: str, started: float, error: StoreUnavailable) -> None:
        metrics, label = self.metrics, self.label
        metrics.store_call(label, verb, time.perf_counter() - started)
        if isinstance(error, SessionLockTimeout):
            metrics.lock_timeout(label)
        metrics.store_unavailable(label, error.reason)

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        started = time.perf_counter()
        try:
            loaded = self.inner.load(sid, lock=lock, refresh_ttl=refresh_ttl)
        except StoreUnavailable as error:
            self._failed("load", started, error)
            raise
        seconds = time.perf_counter() - started
        self.metrics.store_call(self.label, "load", seconds)
        if lock and loaded is not None and loaded.lock is not None:
            self.metrics.lock_wait(self.label, seconds)
        return loaded

    def save(
        self,
        sid: str,
        changed: dict[str, bytes],
        deleted: Iterable[str],
        *,
        ttl: float,
        create: bool,
        lock: Any = None,
    ) -> bool:
        started = time.perf_counter()
        try:
            exists = self.inner.save(sid, changed, deleted, ttl=ttl, create=create, lock=lock)
        except StoreUnavailable as error:
            self._failed("save", started, error)
            raise
        self.metrics.store_call(self.label, "save", time.perf_counter() - started)
        return exists

    def delete(self, sid: str, *, lock: Any = None) -> None:
        started = time.perf_counter()
        try:
            self.inner.delete(sid, lock=lock)
        except StoreUnavailable as error:
            self._failed("delete", started, error)
            raise
        self.metrics.store_call(self.label, "delete", time.perf_counter() - started)

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        started = time.perf_counter()
        try:
            result = self.inner.incr(sid, key, amount, ttl=ttl, create=create)
        except StoreUnavailable as error:
            self._failed("incr", started, error)
            raise
        self.metrics.store_call(self.label, "incr", time.perf_counter() - started)
        return result

    def release(self, sid: str, lock: Any) -> None:
        started = time.perf_counter()
        try:
            self.inner.release(sid, lock)
        except StoreUnavailable as error:
            self._failed("release", started, error)
            raise
        self.metrics.store_call(self.label, "release", time.perf_counter() - started)

    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        started = time.perf_counter()
        try:
            report = self.inner.cleanup(stale_temp_after=stale_temp_after)
        except StoreUnavailable as error:
            self._failed("cleanup", started, error)
            raise
        self.metrics.store_call(self.label, "cleanup", time.perf_counter() - started)
        self.metrics.sessions_cleaned(self.label, report.expired_removed)
        return report

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
