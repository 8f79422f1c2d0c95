"""The shared counter: one number for everybody, handed out once each.

It lives in the session store the app is configured with, never in process memory: a
module-level counter would be one counter per worker process (and per app server),
each handing out the same numbers. It is the store's counter named
``SHARED_COUNTER_NAME``, kept by the store's counter verbs (``counter_incr``,
``counter_value``, ``counter_reset``: the optional ``Counters`` capability of
``flask_session/stores/counters.py``; a store without it is refused at start-up): atomic
across processes and machines, never applied twice, and in the namespace of
``SESSION_KEY_PREFIX``, so two services with different prefixes on one store have
separate counters. Every failure reaches the caller as
:class:`flask_session.StoreUnavailable`, so the app answers 503 for the shared counter
exactly as for sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from flask import current_app

from flask_session import ServerSideSessionInterface, SessionConfigError, StoreUnavailable
from flask_session.readers import config_text
from flask_session.stores.counters import COUNTER_NAME, Counters

if TYPE_CHECKING:
    from flask import Flask

    from flask_session.metrics import SessionMetrics

T = TypeVar("T")

EXTENSION_KEY = "sessionapp.shared_counter"

#: Settings of earlier versions, refused so that nobody believes they still apply.
RETIRED_SETTINGS = ("SHARED_COUNTER_KEY", "SHARED_COUNTER_FILE")


class SharedCounter:
    """The service's view of its counter. Every method may raise StoreUnavailable.

    With ``SESSION_METRICS`` on, a StoreUnavailable is reported to it by reason too, as
    the sessions' own refusals are, so that the refusals counted are every 503 the store
    caused.
    """

    def __init__(
        self,
        store: Counters,
        name: str,
        *,
        metrics: SessionMetrics | None = None,
        store_name: str = "",
    ) -> None:
        self.store = store
        self.name = name
        self.metrics = metrics
        self.store_name = store_name

    def increment(self) -> int:
        """Add one and return the new value; no two calls ever return the same number
        (until a reset)."""
        return self._call(self.store.counter_incr)

    def value(self) -> int:
        """The last number handed out (0 if none). Creates nothing in the store."""
        return self._call(self.store.counter_value)

    def reset(self) -> None:
        """Start again: the next increment returns 1."""
        self._call(self.store.counter_reset)

    def _call(self, verb: Callable[[str], T]) -> T:
        try:
            return verb(self.name)
        except StoreUnavailable as error:
            if self.metrics is not None:
                self.metrics.store_unavailable(self.store_name, error.reason)
            raise


def init_app(app: Flask) -> None:
    """Make the shared counter on the app's session store. Call after ``Session(app)``.

    Raises SessionConfigError naming the setting when SHARED_COUNTER_NAME is unusable,
    a retired SHARED_COUNTER_* setting is still set, or the store has no counters.
    """
    for key in RETIRED_SETTINGS:
        if key in app.config:
            raise SessionConfigError(
                f"{key} is no longer read: the shared counter is the store's counter named"
                " SHARED_COUNTER_NAME (default 'shared'), kept under SESSION_KEY_PREFIX."
                f" Remove {key}. The old counter's value is not carried over: see the"
                " note on upgrading in docs/service.md (Configuration)"
            )
    name = config_text(
        app.config,
        "SHARED_COUNTER_NAME",
        pattern=COUNTER_NAME,
        rule="1 to 64 letters, digits, '_' or '-', starting with a letter or digit",
    )
    interface = cast(ServerSideSessionInterface, app.session_interface)
    store = interface.store
    if not isinstance(store, Counters):
        raise SessionConfigError(
            f"SESSION_TYPE is {store.name!r}, a store without counters"
            " (flask_session.stores.counters.Counters), which the shared counter needs;"
            " choose a store that has them"
        )
    app.extensions[EXTENSION_KEY] = SharedCounter(
        store, name, metrics=interface.settings.metrics, store_name=store.name
    )


def shared_counter() -> SharedCounter:
    """The current app's shared counter."""
    counter: SharedCounter = current_app.extensions[EXTENSION_KEY]
    return counter
