"""Counters are a capability a store may offer; the service asks for it at start-up."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_session import ServerSideSessionInterface, SessionConfigError
from flask_session.stores.base import Store
from flask_session.stores.counters import Counters
from flask_session.stores.filesystem import FileSystemStore
from flask_session.wiring import configure
from sessionapp import shared_counter


class SessionsOnly(Store):
    """A store with the session verbs only: a real filesystem store without its counters."""

    name = "sessions-only"

    def __init__(self, inner: FileSystemStore) -> None:
        super().__init__(codec=inner.codec, key_prefix=inner.key_prefix, lock_timeout=1)
        self.inner = inner

    @classmethod
    def from_settings(cls, settings):
        raise NotImplementedError  # built by hand in the test

    def load(self, sid, *, lock, refresh_ttl):
        return self.inner.load(sid, lock=lock, refresh_ttl=refresh_ttl)

    def save(self, sid, changed, deleted, *, ttl, create, lock=None):
        return self.inner.save(sid, changed, deleted, ttl=ttl, create=create, lock=lock)

    def delete(self, sid, *, lock=None):
        self.inner.delete(sid, lock=lock)

    def incr(self, sid, key, amount, *, ttl, create):
        return self.inner.incr(sid, key, amount, ttl=ttl, create=create)

    def release(self, sid, lock):
        self.inner.release(sid, lock)

    def cleanup(self, *, stale_temp_after):
        return self.inner.cleanup(stale_temp_after=stale_temp_after)

    def ping(self):
        self.inner.ping()


def test_every_store_of_the_package_has_counters(app):
    assert isinstance(app.session_interface.store, Counters)


def test_a_store_without_counters_is_refused_naming_it(tmp_path):
    app = Flask(__name__)
    app.config.update(SESSION_FILE_DIR=str(tmp_path), SHARED_COUNTER_NAME="shared")
    settings, store = configure(app)
    assert isinstance(store, FileSystemStore)
    app.session_interface = ServerSideSessionInterface(settings, SessionsOnly(store))
    assert not isinstance(app.session_interface.store, Counters)
    with pytest.raises(SessionConfigError, match="'sessions-only', a store without counters"):
        shared_counter.init_app(app)
