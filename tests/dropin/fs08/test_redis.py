# Vendored from Flask-Session 0.8.0 (https://github.com/pallets-eco/flask-session,
# tests/test_redis.py, BSD-3-Clause, (c) Flask-Session contributors) to prove the drop-in.
# Changes, each marked "drop-in:" below: the redis-server fixture and a non-retrying
# client instead of Redis() on localhost; the stored session read from our hash layout,
# named by the id's at-rest name (ids are hashed at rest: docs, "Ids at rest").
import json
from contextlib import contextmanager

import flask
import pytest
from redis import Redis

from flask_session.redis import RedisSession
from flask_session.stores.common import at_rest_name  # drop-in
from tests.support.redis_server import no_retry


class TestRedisSession:
    """This requires package: redis"""

    @pytest.fixture(autouse=True)
    def _server(self, redis_url):
        self.redis_url = redis_url  # drop-in: the test's redis-server, not localhost:6379

    @contextmanager
    def setup_redis(self):
        # drop-in: a client that does not retry (until the Redis store accepts retries)
        self.r = Redis.from_url(self.redis_url, retry=no_retry())
        try:
            self.r.flushall()
            yield
        finally:
            self.r.flushall()
            self.r.close()

    def retrieve_stored_session(self, key):
        # drop-in: a session is a hash of key -> JSON value at prefix{sid}, not one
        # JSON string at prefix+sid; rebuild 0.8's document from it.
        # drop-in: ...and named by the id's at-rest name (a hash), not the id
        prefix, sid = key.split(":", 1)
        name = at_rest_name(prefix + ":", sid)
        fields = self.r.hgetall(f"{prefix}:{{{name}}}")
        document = {k.decode(): json.loads(v) for k, v in fields.items() if k != b"\xff"}
        return json.dumps(document).encode()

    def test_redis_default(self, app_utils):
        with self.setup_redis():
            app = app_utils.create_app(
                {"SESSION_TYPE": "redis", "SESSION_REDIS": self.r}
            )

            with app.test_request_context():
                assert isinstance(flask.session, RedisSession)
                app_utils.test_session(app)

                # Check if the session is stored in Redis
                cookie = app_utils.test_session_with_cookie(app)
                session_id = cookie.split(";")[0].split("=")[1]
                byte_string = self.retrieve_stored_session(f"session:{session_id}")
                stored_session = (
                    json.loads(byte_string.decode("utf-8")) if byte_string else {}
                )
                assert stored_session.get("value") == "44"
