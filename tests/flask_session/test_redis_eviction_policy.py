"""Issue 11, item 3: a Redis that may evict live sessions is refused at start-up.

Any maxmemory-policy but noeviction lets Redis delete live sessions and counters when
memory runs out (volatile-* too: every session has a TTL). The store reads the policy at
start-up and refuses, naming the fix, unless SESSION_REDIS_ALLOW_EVICTION accepts the
loss (then it warns). A server that does not allow CONFIG GET gets one warning; a server
unreachable at start-up is checked when it first answers.
"""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from flask_session import Session, SessionConfigError
from flask_session.ids import new_session_id
from tests.support.redis_server import RedisServer

EVICTING = ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"]


@pytest.fixture(scope="module")
def server():
    with RedisServer() as started:
        yield started


@pytest.fixture
def policy(server):
    """``policy(name)`` sets the server's maxmemory-policy; noeviction again afterwards."""
    admin = server.client()

    def set_policy(name: str) -> None:
        admin.config_set("maxmemory-policy", name)

    yield set_policy
    admin.config_set("maxmemory-policy", "noeviction")
    admin.close()


def start_app(tmp_path, app_builder, url: str, **config) -> Flask:
    def factory(settings: dict) -> Flask:
        app = Flask(__name__, instance_path=str(tmp_path))
        app.config.update(settings)
        Session(app)
        return app

    return app_builder(factory, {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": url, **config})


@pytest.mark.parametrize("name", EVICTING)
def test_an_evicting_policy_is_refused_at_start_up_with_the_fix(
    tmp_path, app_builder, server, policy, name
):
    policy(name)
    with pytest.raises(SessionConfigError) as raised:
        start_app(tmp_path, app_builder, server.url)
    message = str(raised.value)
    assert name in message
    assert "maxmemory-policy noeviction" in message
    assert "SESSION_REDIS_ALLOW_EVICTION" in message


def test_the_opt_out_starts_with_a_loud_warning(tmp_path, app_builder, server, policy, caplog):
    policy("allkeys-lru")
    with caplog.at_level(logging.WARNING, logger="flask_session"):
        start_app(tmp_path, app_builder, server.url, SESSION_REDIS_ALLOW_EVICTION="true")
    warnings = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "sessions may be lost" in warnings[0].getMessage()


def test_a_bad_opt_out_value_is_refused_by_name(tmp_path, app_builder, server):
    with pytest.raises(SessionConfigError, match="SESSION_REDIS_ALLOW_EVICTION"):
        start_app(tmp_path, app_builder, server.url, SESSION_REDIS_ALLOW_EVICTION="maybe")


def test_noeviction_starts_quietly(tmp_path, app_builder, server, caplog):
    with caplog.at_level(logging.WARNING, logger="flask_session"):
        start_app(tmp_path, app_builder, server.url)
    assert not [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]


def test_a_server_that_denies_config_get_gets_one_warning_with_the_fix(
    tmp_path, app_builder, server, caplog
):
    # As on managed services: the application's user may not run CONFIG.
    with server.client() as admin:
        admin.acl_setuser(
            "app", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-config"]
        )
    url = f"redis://app:secret@127.0.0.1:{server.port}/0"
    try:
        with caplog.at_level(logging.WARNING, logger="flask_session"):
            start_app(tmp_path, app_builder, url)
    finally:
        with server.client() as admin:
            admin.acl_deluser("app")
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(warnings) == 1
    assert "could not read" in warnings[0] and "noeviction" in warnings[0]


def test_a_server_unreachable_at_start_up_is_checked_when_it_answers(tmp_path, app_builder, caplog):
    later = RedisServer(extra_args=("--maxmemory-policy", "volatile-lru"))
    try:
        app = start_app(tmp_path, app_builder, later.url)  # starts: 503s until Redis is up
        store = app.session_interface.store
        later.start()
        with caplog.at_level(logging.WARNING, logger="flask_session"):
            for _ in range(3):
                store.save(new_session_id(32), {"a": b"1"}, [], ttl=60, create=True)
        errors = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        assert [r.levelname for r in errors] == ["ERROR"]  # once, not per request
        assert "volatile-lru" in errors[0].getMessage()
    finally:
        later.close()
