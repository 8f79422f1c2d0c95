"""The store-wide counter verbs (``counter_incr``, ``counter_value``, ``counter_reset``),
driven directly on every store: the contract in flask_session/stores/base.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.flask_session.conftest import stored_session_count
from tests.sessionapp.conftest import stored_items


def test_a_counter_counts_from_one_and_reset_starts_it_again(store):
    assert store.counter_value("tickets") == 0
    assert [store.counter_incr("tickets") for _ in range(3)] == [1, 2, 3]
    assert store.counter_value("tickets") == 3
    store.counter_reset("tickets")
    assert store.counter_value("tickets") == 0
    assert store.counter_incr("tickets") == 1


def test_counters_are_separate_by_name(store):
    store.counter_incr("a")
    store.counter_incr("a")
    assert store.counter_incr("b") == 1
    store.counter_reset("a")
    assert (store.counter_value("a"), store.counter_value("b")) == (0, 1)


def test_reading_or_resetting_a_counter_never_used_creates_nothing(app, store):
    before = stored_items(app)
    assert store.counter_value("never") == 0
    store.counter_reset("never")
    assert stored_items(app) == before
    assert stored_session_count(app) == 0


def test_counters_are_separate_by_key_prefix(make_app):
    first = make_app(SESSION_KEY_PREFIX="first:").session_interface.store
    second = make_app(SESSION_KEY_PREFIX="second:").session_interface.store
    same_as_first = make_app(SESSION_KEY_PREFIX="first:").session_interface.store
    assert [first.counter_incr("shared") for _ in range(3)] == [1, 2, 3]
    assert second.counter_incr("shared") == 1
    first.counter_reset("shared")
    assert second.counter_value("shared") == 1
    assert same_as_first.counter_incr("shared") == 1


def test_a_counter_and_sessions_never_meet(app, store):
    """Sessions come and go around a counter; neither sees the other."""
    client = app.test_client()
    client.post("/incr/n")
    store.counter_incr("n")
    store.counter_incr("n")
    assert client.post("/incr/n").get_json() == {"value": 2}
    assert store.counter_value("n") == 2
    assert store.cleanup(stale_temp_after=0).expired_removed == 0
    assert store.counter_value("n") == 2


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "a.b", "x" * 65, "sp ace", "é", None, 7])
def test_a_name_no_store_could_hold_is_refused(store, name):
    for verb in (store.counter_incr, store.counter_value, store.counter_reset):
        with pytest.raises(ValueError, match="counter name"):
            verb(name)


def test_threads_never_get_the_same_number(store):
    threads, each = 8, 25
    with ThreadPoolExecutor(threads) as pool:
        batches = list(
            pool.map(lambda _: [store.counter_incr("c") for _ in range(each)], range(threads))
        )
    assert sorted(n for batch in batches for n in batch) == list(range(1, threads * each + 1))
