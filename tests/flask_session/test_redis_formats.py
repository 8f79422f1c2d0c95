"""Issue 11, item 5 (Redis side): a change of SESSION_SERIALIZATION_FORMAT keeps every session.

Two stores on one Redis, one json and one msgpack (a rolling deploy): each reads what the
other wrote, increments work on either format, and the first save of a session in the
other format rewrites the whole hash in the configured one, never leaving a mix.
"""

from __future__ import annotations

import threading

import pytest

from flask_session.codecs import CODECS
from flask_session.ids import new_session_id
from tests.flask_session.redis_stores import TTL

VALUES = {"n": 5, "s": "text", "l": [1, 2, {"k": "v"}], "f": 1.5, "b": True, "z": None}
PAIRS = [("json", "msgpack"), ("msgpack", "json")]


def raw_hash(store, sid) -> dict[bytes, bytes]:
    return store.redis.hgetall(store._keys(sid)[0])


def assert_whole_hash_in(fmt: str, raw: dict[bytes, bytes]) -> None:
    assert raw[b"\xff"] == fmt.encode()
    codec = CODECS[fmt]
    for name, value in raw.items():
        if name != b"\xff":
            assert codec.encode(codec.decode(value)) == value, (name, value)


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_the_other_format_is_read_and_converted_whole_on_the_next_save(
    redis_url, redis_server, redis_store, old, new
):
    writer, reader = redis_store(redis_server, old), redis_store(redis_server, new)
    sid = new_session_id(32)
    writer.save(sid, {k: writer.codec.encode(v) for k, v in VALUES.items()}, [], ttl=TTL,
                create=True)  # fmt: skip
    ttl_before = writer.redis.pttl(writer._keys(sid)[0])

    loaded = reader.load(sid, lock=True, refresh_ttl=None)
    assert loaded is not None
    assert {k: reader.codec.decode(raw) for k, raw in loaded.values.items()} == VALUES
    assert raw_hash(reader, sid)[b"\xff"] == old.encode()  # reading wrote nothing

    # Saving one key converts the whole hash first (and keeps its expiry).
    assert reader.save(sid, {"s": reader.codec.encode("changed")}, ["z"], ttl=TTL,
                       create=False, lock=loaded.lock)  # fmt: skip
    raw = raw_hash(reader, sid)
    assert_whole_hash_in(new, raw)
    assert {k.decode(): reader.codec.decode(v) for k, v in raw.items() if k != b"\xff"} == {
        **{k: v for k, v in VALUES.items() if k != "z"},
        "s": "changed",
    }
    assert 0 < reader.redis.pttl(reader._keys(sid)[0]) <= max(ttl_before, TTL * 1000)

    # And the old side reads the new format back.
    back = writer.load(sid, lock=False, refresh_ttl=None)
    assert back is not None and writer.codec.decode(back.values["s"]) == "changed"


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_increments_work_on_either_format_without_converting(
    redis_url, redis_server, redis_store, old, new
):
    writer, other = redis_store(redis_server, old), redis_store(redis_server, new)
    sid = new_session_id(32)
    writer.save(sid, {"n": writer.codec.encode(5), "_permanent": writer.codec.encode(True)},
                [], ttl=TTL, create=True)  # fmt: skip
    result = other.incr(sid, "n", 2, ttl=TTL, create=False)
    assert result.value == 7
    assert other.codec.decode(result.permanent) is True  # in the reader's format
    assert writer.incr(sid, "n", 1, ttl=TTL, create=False).value == 8
    assert_whole_hash_in(old, raw_hash(writer, sid))
    writer.save(sid, {"s": writer.codec.encode("x")}, [], ttl=TTL, create=True)
    with pytest.raises(TypeError, match="not an int"):
        other.incr(sid, "s", 1, ttl=TTL, create=False)


def test_alternating_formats_under_concurrency_lose_no_increment(
    redis_url, redis_server, redis_store
):
    stores = [redis_store(redis_server, fmt) for fmt in ("json", "msgpack")]
    sid = new_session_id(32)
    stores[0].save(sid, {"n": stores[0].codec.encode(0)}, [], ttl=TTL, create=True)
    rounds = 40

    def work(store, index: int) -> None:
        for round_ in range(rounds):
            if round_ % 4 == index % 4:  # a locked read-modify-write that saves another key
                loaded = store.load(sid, lock=True, refresh_ttl=None)
                assert loaded is not None
                store.save(sid, {f"k{index}": store.codec.encode(round_)}, [], ttl=TTL,
                           create=False, lock=loaded.lock)  # fmt: skip
            store.incr(sid, "n", 1, ttl=TTL, create=False)

    threads = [threading.Thread(target=work, args=(stores[i % 2], i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    loaded = stores[1].load(sid, lock=False, refresh_ttl=None)
    assert loaded is not None and stores[1].codec.decode(loaded.values["n"]) == 4 * rounds
    fmt = raw_hash(stores[0], sid)[b"\xff"].decode()
    assert_whole_hash_in(fmt, raw_hash(stores[0], sid))
