# Vendored from Flask-Session 0.8.0 (https://github.com/pallets-eco/flask-session,
# tests/test_memcached.py, BSD-3-Clause, (c) Flask-Session contributors) to prove the drop-in.
# Changes, each marked "drop-in:" below: the test's memcached (fixture) instead of one on
# 127.0.0.1:11211, and the client closed at the end (pytest runs with warnings as errors);
# the item read by the id's at-rest name (ids are hashed at rest: docs, "Ids at rest").
import json
from contextlib import contextmanager

import flask
import pymemcache as memcache  # Import the memcache library
import pytest

from flask_session.memcached import MemcachedSession
from flask_session.stores.common import at_rest_name  # drop-in


class TestMemcachedSession:
    """This requires package: python-memcached"""

    @pytest.fixture(autouse=True)
    def _server(self, memcached_servers):
        self.servers = memcached_servers  # drop-in: the test's memcached, not 127.0.0.1:11211

    @contextmanager
    def setup_memcached(self):
        self.mc = memcache.Client(self.servers)  # drop-in: self.servers
        try:
            self.mc.flush_all()
            yield
        finally:
            self.mc.flush_all()
            self.mc.close()  # drop-in: close the test's own connection
            # Memcached connections are pooled, no close needed

    def retrieve_stored_session(self, key):
        # drop-in: an item is keyed by the id's at-rest name (a hash), not the id
        prefix, sid = key.split(":", 1)
        return self.mc.get(prefix + ":" + at_rest_name(prefix + ":", sid))

    def test_memcached_default(self, app_utils):
        with self.setup_memcached():
            app = app_utils.create_app(
                {"SESSION_TYPE": "memcached", "SESSION_MEMCACHED": self.mc}
            )

            with app.test_request_context():
                assert isinstance(
                    flask.session,
                    MemcachedSession,
                )
                app_utils.test_session(app)

                # Check if the session is stored in Memcached
                cookie = app_utils.test_session_with_cookie(app)
                session_id = cookie.split(";")[0].split("=")[1]
                byte_string = self.retrieve_stored_session(f"session:{session_id}")
                stored_session = (
                    json.loads(byte_string.decode("utf-8")) if byte_string else {}
                )
                assert stored_session.get("value") == "44"
