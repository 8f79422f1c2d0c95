"""Self-tests of the store kits (tests/support/kits): what a kit reads from a store agrees
with what the store's own verbs did, so a check like "no locks left" can fail."""

from __future__ import annotations

import pytest

from flask_session import StoreUnavailable
from flask_session.ids import new_session_id
from tests.support.kits import KITS, kit_for
from tests.support.store_contents import opened_store

TTL = 60.0


def test_every_kit_is_listed_once_in_rank_order():
    assert list(KITS) == ["filesystem", "redis", "sqlite", "postgresql", "memcached"]
    assert [kit.rank for kit in KITS.values()] == sorted(kit.rank for kit in KITS.values())


def test_the_layout_helpers_see_what_the_store_did(store_config, store_type):
    with opened_store(store_config) as (kit, store):
        assert kit is kit_for(store_type) and kit.owns(store)
        sid, other = new_session_id(32), new_session_id(32)
        assert kit.session_count(store) == 0 and not kit.holds(store, sid)

        store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
        assert kit.session_count(store) == 1
        assert kit.holds(store, sid) and not kit.holds(store, other)
        assert kit.items(store)  # something is stored

        loaded = store.load(sid, lock=True, refresh_ttl=None)
        assert loaded is not None and loaded.lock is not None
        assert kit.lock_count(store) == (1 if kit.locks_are_stored else 0)
        store.release(sid, loaded.lock)
        assert kit.lock_count(store) == 0

        document = kit.stored_document(store, sid)
        if document is not None:
            assert store.codec.decode_document(document) == {"a": store.codec.encode(1)}

        kit.corrupt(store, sid)
        assert store.load(sid, lock=False, refresh_ttl=None) is None  # unreadable: nothing

        store.delete(sid)
        assert kit.session_count(store) == 0


def test_the_outage_makes_the_store_refuse_and_ends(store_config, request):
    with opened_store({**store_config, "SESSION_LOCK_TIMEOUT": 0.5}) as (kit, store):
        sid = new_session_id(32)
        with kit.outage(request, store), pytest.raises(StoreUnavailable):
            store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
        assert store.save(sid, {"a": store.codec.encode(1)}, [], ttl=TTL, create=True)
