"""What a store holds, looked up directly (not through the store's verbs), given a test's
SESSION_* settings (``store_config``, or an app's config): for tests whose app runs in a
server process, or that check nothing was left behind. The layout itself is each store's
kit's (tests/support/kits).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask_session.wiring import configure

from .kits import StoreKit, kit_of

DEFAULT_PREFIX = "session:"


@contextmanager
def opened_store(config: Mapping[str, Any]) -> Iterator[tuple[StoreKit, Any]]:
    """(kit, store) for the store ``config`` names, built as an app would build it;
    its connections are closed when the block ends."""
    _, store = configure(None, config)
    try:
        yield kit_of(store), store
    finally:
        store.close()


def stored_session_ids(config: Mapping[str, Any]) -> set[str]:
    """Session ids with a stored session (expired ones included: they are still there)."""
    with opened_store(config) as (kit, store):
        return kit.session_ids(store, config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX))


def stored_lock_count(config: Mapping[str, Any]) -> int:
    """Session locks (lock keys, lease rows, lock items) still in the store."""
    with opened_store(config) as (kit, store):
        return kit.lock_count(store, config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX))
