"""What a store holds, looked up directly (not through the store's verbs), given a test's
SESSION_* settings (``store_config``, or an app's config): for tests whose app runs in a
server process, or that check nothing was left behind. The layout itself is each store's
kit's (tests/support/kits).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask_session.stores.common import at_rest_name
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


def stored_session_names(config: Mapping[str, Any]) -> set[str]:
    """At-rest names of the stored sessions (expired ones included: they are still
    there); compare with :func:`names_of` the ids a test issued."""
    with opened_store(config) as (kit, store):
        return kit.session_names(store, config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX))


def names_of(sids: Iterable[str], config: Mapping[str, Any]) -> set[str]:
    """The at-rest names of ``sids`` in the store ``config`` names."""
    prefix = config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX)
    return {at_rest_name(prefix, sid) for sid in sids}


def stored_lock_count(config: Mapping[str, Any]) -> int:
    """Session locks (lock keys, lease rows, lock items) still in the store."""
    with opened_store(config) as (kit, store):
        return kit.lock_count(store, config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX))
