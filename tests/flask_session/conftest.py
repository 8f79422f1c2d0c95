"""Fixtures that run every contract test once per store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from tests.flask_session.demo_app import create_app

STORE_TYPES = ["filesystem", "redis"]


@pytest.fixture(params=STORE_TYPES)
def store_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_config(store_type: str, tmp_path, request: pytest.FixtureRequest) -> dict:
    """SESSION_* settings pointing at a fresh, empty store of ``store_type``."""
    if store_type == "redis":
        return {"SESSION_TYPE": "redis", "SESSION_REDIS_URL": request.getfixturevalue("redis_url")}
    return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(tmp_path / "sessions")}


@pytest.fixture
def store_env(store_config: dict) -> dict:
    """The same settings as FLASK_* environment variables, for gunicorn runs."""
    return {f"FLASK_{key}": str(value) for key, value in store_config.items()}


@pytest.fixture
def make_app(store_config: dict) -> Iterator[Callable[..., Flask]]:
    """Build the demo app on the test's store; keyword arguments override config.

    Redis clients of the apps built are closed at teardown (warnings are errors here,
    and an unclosed socket is a ResourceWarning).
    """
    apps: list[Flask] = []

    def make(**overrides) -> Flask:
        app = create_app({"TESTING": True, **store_config, **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        client = getattr(app.session_interface.store, "redis", None)
        if client is not None:
            client.close()


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def store(app: Flask):
    """The app's store object, for store-level contract checks."""
    return app.session_interface.store


def stored_session_count(app: Flask) -> int:
    """How many sessions the app's store holds, looked up directly in the store."""
    store = app.session_interface.store
    if store.name == "redis":
        prefix = app.config["SESSION_KEY_PREFIX"]
        return sum(1 for key in store.redis.scan_iter(f"{prefix}*") if not key.endswith(b":lock"))
    return sum(1 for name in os.listdir(store.directory) if name.endswith(".session"))
