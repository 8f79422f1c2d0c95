"""Shared values for the Redis store's own tests (the ``redis_store`` fixture is in conftest.py)."""

from __future__ import annotations

TTL = 60.0
FORMATS = ["json", "msgpack"]
