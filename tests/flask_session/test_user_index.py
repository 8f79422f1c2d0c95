"""Issue 20, item 1: the per-user index (stores/users.py), on every store (Redis on every
topology, the filesystem, SQL, memcached) and through the demo app's login routes.

memcached's index fails closed (stores/memcacheusers.py): losing it (eviction) makes the
user's sessions absent, which its own tests below show.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import sqlalchemy as sa
from flask import session

from flask_session.ids import new_session_id
from flask_session.stores.base import USER_KEY
from flask_session.stores.memcacheusers import INDEX_MARK
from flask_session.stores.users import UserIndex, UserSession, last_seen, session_handle, user_key
from tests.reliability import httpkit
from tests.reliability.conftest import DEMO_APP

from .test_session_contract import cookie_of, sid_of

pytestmark = pytest.mark.redis_topologies

ALICE = user_key("alice")
BOB = user_key("bob")
#: every user bound by these tests
KNOWN_USERS = (ALICE, BOB, user_key("admin"))


@pytest.fixture
def index(store) -> UserIndex:
    assert isinstance(store, UserIndex)  # every store keeps one
    return store


def handles(store, *sids: str) -> list[str]:
    """The index's handles of ``sids``, in order."""
    return [session_handle(store.key_prefix, sid) for sid in sids]


def listed(store, user: str) -> list[str]:
    """The handles of ``user``'s live sessions, as the index lists them."""
    return [entry.handle for entry in store.user_sessions(user)]


def new_session(store, ttl: float = 60) -> str:
    sid = new_session_id(32)
    assert store.save(sid, {"user": b'"x"'}, [], ttl=ttl, create=True)
    return sid


def memcached_indexes(store) -> dict[str, dict]:
    """The index items in memcached of the users these tests bind (key -> entries), read
    raw from the key's server, not through the index's code. (Not found with ``lru_crawler
    metadump``: it was seen to miss items written a moment before.)"""
    found = {}
    for user in KNOWN_USERS:
        key = store.key_prefix + INDEX_MARK + user
        data = store._node(key).get(key)
        if data is not None:
            found[key] = json.loads(data)
    return found


def index_entries(store) -> int:
    """Every entry of every user's index, read from the store directly."""
    if store.name == "memcached":
        return sum(len(entries) for entries in memcached_indexes(store).values())
    if store.name == "filesystem":
        total = 0
        for name in os.listdir(store.directory):
            if name.endswith(".users"):
                with open(os.path.join(store.directory, name)) as file:
                    total += len(json.load(file))
        return total
    if store.name == "sqlalchemy":
        with store.engine.connect() as conn:
            count = sa.select(sa.func.count()).select_from(store.tables.users)
            return conn.execute(count).scalar_one()
    client = store.redis
    pattern = f"{store.key_prefix}#user{{*}}"
    return sum(client.hlen(key) for key in client.scan_iter(match=pattern))


def test_bind_list_rebind_and_unbind(index):
    first, second = new_session(index), new_session(index)
    assert index.bind_user(ALICE, first, label="Firefox", cap=None) == []
    time.sleep(0.01)  # distinct bind times
    index.bind_user(ALICE, second, label="curl", cap=None)
    found = index.user_sessions(ALICE)
    assert [(s.handle, s.label) for s in found] == list(
        zip(handles(index, first, second), ["Firefox", "curl"], strict=True)
    )
    assert found[0].bound_at < found[1].bound_at <= time.time()
    assert all(50 < s.expires_in <= 60 for s in found)
    assert not {first, second} & {s.handle for s in found}  # never the ids themselves
    index.bind_user(ALICE, first, label="Firefox 2", cap=None)  # again: label replaced
    again = index.user_sessions(ALICE)
    assert (again[0].handle, again[0].label) == (handles(index, first)[0], "Firefox 2")
    assert again[0].bound_at == found[0].bound_at
    index.unbind_user(ALICE, first)
    assert listed(index, ALICE) == handles(index, second)
    assert index.load(first, lock=False, refresh_ttl=None) is not None  # the session stays
    assert index.user_sessions(BOB) == []


def test_revoke_one_all_and_all_but_one(index):
    a, b, c = (new_session(index) for _ in range(3))
    bobs = new_session(index)
    for sid in (a, b, c):
        index.bind_user(ALICE, sid, label="", cap=None)
    index.bind_user(BOB, bobs, label="", cap=None)
    h = dict(zip((a, b, c, bobs), handles(index, a, b, c, bobs), strict=True))
    assert index.revoke_user_sessions(ALICE, [h[bobs]], keep=None) == []  # not hers
    assert index.load(bobs, lock=False, refresh_ttl=None) is not None
    assert index.revoke_user_sessions(ALICE, [h[a]], keep=None) == [h[a]]
    assert index.load(a, lock=False, refresh_ttl=None) is None
    assert index.revoke_user_sessions(ALICE, None, keep=h[c]) == [h[b]]
    assert listed(index, ALICE) == [h[c]]
    assert index.revoke_user_sessions(ALICE, None, keep=None) == [h[c]]
    assert index.user_sessions(ALICE) == []
    assert index_entries(index) == 1  # bob's
    assert listed(index, BOB) == [h[bobs]]


def test_a_cap_revokes_the_oldest_but_never_the_one_being_bound(index):
    a, b, c = (new_session(index) for _ in range(3))
    for sid in (a, b):
        index.bind_user(ALICE, sid, label="", cap=2)
        time.sleep(0.01)
    assert index.bind_user(ALICE, c, label="", cap=2) == handles(index, a)
    assert index.load(a, lock=False, refresh_ttl=None) is None
    assert listed(index, ALICE) == handles(index, b, c)
    assert index.bind_user(ALICE, b, label="", cap=1) == handles(index, c)  # b: current
    assert listed(index, ALICE) == handles(index, b)


def test_entries_of_sessions_that_are_gone_are_pruned(index):
    kept, deleted, expiring = new_session(index), new_session(index), new_session(index, 0.3)
    for sid in (kept, deleted, expiring):
        index.bind_user(ALICE, sid, label="", cap=None)
    index.delete(deleted)  # a logout that cleared the session without unbinding it
    time.sleep(2.1 if index.name == "memcached" else 0.5)  # the third expires (memcached:
    assert index_entries(index) == 3  # whole seconds)
    report = index.cleanup(stale_temp_after=300)
    if index.name == "memcached":  # it cannot list users: an index is pruned when used
        assert report.index_removed == 0
        assert index_entries(index) == 3
        assert listed(index, ALICE) == handles(index, kept)
    else:
        assert report.index_removed == 2
    assert index_entries(index) == 1  # the index holds exactly the live sessions
    # listing prunes too
    other = new_session(index)
    index.bind_user(ALICE, other, label="", cap=None)
    index.delete(other)
    assert listed(index, ALICE) == handles(index, kept)
    assert index_entries(index) == 1


def test_sign_out_everywhere_else_through_the_app(app, index):
    laptop, phone = app.test_client(), app.test_client()
    laptop.post("/login/alice", headers={"User-Agent": "laptop"})
    phone.post("/login/alice", headers={"User-Agent": "phone"})
    assert [s["label"] for s in laptop.get("/sessions").json] == ["laptop", "phone"]
    assert [s["current"] for s in laptop.get("/sessions").json] == [True, False]
    phone_handle = handles(index, sid_of(phone))
    assert laptop.post("/revoke-others").json == {"revoked": phone_handle}
    assert phone.get("/get").json == {}  # a fresh, empty session
    assert laptop.get("/get").json == {"user": "alice"}
    assert [s["label"] for s in laptop.get("/sessions").json] == ["laptop"]
    laptop_handle = handles(index, sid_of(laptop))
    own = laptop.post("/revoke-all")  # its own session too: cleared, its cookie deleted
    assert own.json == {"revoked": laptop_handle}
    assert "Max-Age=0" in cookie_of(own)
    assert laptop.get("/get").json == {}
    assert index_entries(index) == 0


def test_revoking_another_users_sessions_leaves_the_current_one(app, index):
    alice = app.test_client()
    alice.post("/login/alice")
    iface = app.session_interface
    with app.test_request_context():
        session["user"] = "admin"
        iface.bind_user(session, "admin")
        assert iface.revoke_user_sessions("alice") == handles(index, sid_of(alice))
        assert session["user"] == "admin"
        assert [s.handle for s in iface.user_sessions("admin")] == [iface.session_handle(session)]
        assert not iface.revoke_user_session("alice", iface.session_handle(session))
    assert alice.get("/get").json == {}


def test_a_cap_on_login_and_logout_unbinds(app, index):
    clients = [app.test_client() for _ in range(3)]
    for number, client in enumerate(clients):
        client.post("/login/alice?cap=2", headers={"User-Agent": f"device {number}"})
        time.sleep(0.01)
    assert clients[0].get("/get").json == {}  # the oldest was revoked
    assert [s["label"] for s in clients[2].get("/sessions").json] == ["device 1", "device 2"]
    clients[2].post("/logout")
    assert [s["label"] for s in clients[1].get("/sessions").json] == ["device 1"]
    assert index_entries(index) == 1


def test_a_request_in_flight_cannot_bring_a_revoked_session_back(make_app, index):
    app = make_app()
    laptop, phone = app.test_client(), app.test_client()
    laptop.post("/login/alice")
    phone.post("/login/alice")
    cookie = sid_of(phone)

    def slow_write() -> None:
        slow = app.test_client()
        slow.set_cookie("session", cookie)
        slow.post("/set/b?value=late&delay=0.5")

    thread = threading.Thread(target=slow_write)
    thread.start()
    time.sleep(0.2)  # the slow request holds the phone's session
    laptop.post("/revoke-others")
    thread.join()
    assert phone.get("/get").json == {}
    assert index.load(cookie, lock=False, refresh_ttl=None) is None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda i, s: i.bind_user(s, ""), "user id ''"),
        (lambda i, s: i.bind_user(s, None), "user id None"),
        (lambda i, s: i.bind_user(s, True), "user id True"),
        (lambda i, s: i.bind_user(s, "alice", label="x" * 257), "session label"),
        (lambda i, s: i.bind_user(s, "alice", max_sessions=0), "max_sessions is 0"),
    ],
)
def test_bad_arguments_are_refused_naming_them(app, index, call, error):
    with app.test_request_context():
        session["user"] = "alice"
        with pytest.raises(ValueError, match=error):
            call(app.session_interface, session)


#: the load test's bounds: sessions of the one user, reader threads, requests per reader
LOAD_SESSIONS = 50
LOAD_READERS = 4
LOAD_MAX_REQUESTS = 400


@pytest.mark.parametrize("store_type", ["redis", "memcached"])
def test_revoke_all_under_load_on_two_servers(granian_server, store_env, store_type, make_app):
    """One user, 50 sessions logged in across two app servers, read in a loop through
    both; "sign out everywhere else" in the middle. Every request that starts after the
    revoke returned, with a revoked cookie, on either server, gets an empty session; after
    cleanup the index holds exactly the one live session."""
    servers = [granian_server(DEMO_APP, env=store_env, workers=1, threads=4) for _ in range(2)]
    cookies = []
    for number in range(LOAD_SESSIONS):
        url = servers[number % 2].url
        reply = httpkit.request(url, "POST", "/login/alice", headers={"User-Agent": f"d{number}"})
        cookies.append(reply.cookie("session"))
    kept, revoked_cookies = cookies[0], cookies[1:]
    stop = threading.Event()
    seen: list[tuple[float, object]] = []  # (when the request started, what it read)

    def reader(offset: int) -> None:
        for count in range(LOAD_MAX_REQUESTS):
            if stop.is_set():
                return
            cookie = revoked_cookies[(offset + count * LOAD_READERS) % len(revoked_cookies)]
            started = time.monotonic()
            reply = httpkit.request(
                servers[count % 2].url, "GET", "/get", cookie=f"session={cookie}"
            )
            seen.append((started, reply.json() if reply.status == 200 else reply.status))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(LOAD_READERS)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    reply = httpkit.request(servers[1].url, "POST", "/revoke-others", cookie=f"session={kept}")
    returned = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    store = make_app().session_interface.store
    assert sorted(reply.json()["revoked"]) == sorted(handles(store, *revoked_cookies))
    before = [read for started, read in seen if started < returned]
    after = [read for started, read in seen if started > returned]
    assert len(before) >= 20 and len(after) >= 20, (len(before), len(after))
    assert {"user": "alice"} in before  # the readers did see the sessions before
    assert all(read == {} for read in after), [read for read in after if read != {}][:3]
    store.cleanup(stale_temp_after=300)
    assert listed(store, ALICE) == handles(store, kept)
    assert index_entries(store) == 1


def test_the_cleanup_command_prunes_and_says_how_many(app, index):
    staying, leaving = app.test_client(), app.test_client()
    staying.post("/login/alice")
    leaving.post("/login/alice")
    leaving.post("/clear")  # cleared without unbinding: a stale entry
    result = app.test_cli_runner().invoke(args=["session", "cleanup"])
    assert result.exit_code == 0, result.output
    if index.name == "memcached":  # no listing of users: pruned when the index is used
        assert "when it is next used" in result.output
        assert index_entries(index) == 2
        assert len(staying.get("/sessions").json) == 1
    else:
        assert "removed 1 per-user index entries" in result.output.lower()
    assert index_entries(index) == 1


def test_regenerating_a_bound_session_binds_its_new_id(app, index):
    iface = app.session_interface
    laptop = app.test_client()
    laptop.post("/login/alice", headers={"User-Agent": "laptop"})
    first = sid_of(laptop)
    laptop.post("/regenerate")  # later, say after a privilege change
    second = sid_of(laptop)
    assert second != first
    assert [(s.handle, s.label) for s in iface.user_sessions("alice")] == [
        (handles(index, second)[0], "laptop")
    ]
    assert laptop.get("/get").json == {"user": "alice"}  # the binding never shows
    assert index_entries(index) == 1
    laptop.post("/logout")  # unbinds, and the session no longer carries the binding
    assert iface.user_sessions("alice") == []
    laptop.post("/set/x?value=1")
    laptop.post("/regenerate")
    assert iface.user_sessions("alice") == []
    assert index_entries(index) == 0


def test_last_seen_is_the_last_request_that_used_the_session(make_app, index):
    """``last_seen`` comes from the expiry each request refreshes (no write per request):
    a session used after a pause shows that use; one left alone shows its login."""
    app = make_app(PERMANENT_SESSION_LIFETIME=600)
    # memcached's expiry has whole seconds, and its clock ticks once a second
    resolution = 1.5 if index.name == "memcached" else 0.05
    laptop, phone = app.test_client(), app.test_client()
    laptop.post("/login/alice", headers={"User-Agent": "laptop"})
    phone.post("/login/alice", headers={"User-Agent": "phone"})
    time.sleep(2 * resolution + 0.2)
    used = time.time()
    assert phone.get("/get").json == {"user": "alice"}  # a read: the expiry moves on
    with app.app_context():
        found = {s.label: s for s in app.session_interface.user_sessions("alice")}
    now = time.time()
    assert (
        found["laptop"].bound_at
        <= found["laptop"].last_seen
        <= found["laptop"].bound_at + resolution
    )
    assert used - resolution <= found["phone"].last_seen <= now
    assert found["phone"].last_seen - found["laptop"].last_seen > resolution
    assert [s["label"] for s in laptop.get("/sessions").json] == ["laptop", "phone"]


def test_last_seen_stays_between_the_bind_and_now():
    entry = UserSession("h" * 64, bound_at=1000.0, label="", expires_in=50.0)
    assert last_seen(entry, idle_lifetime=60, now=1100.0) == 1090.0
    assert last_seen(entry, idle_lifetime=600, now=1100.0) == 1000.0  # cut by an absolute end
    assert last_seen(entry, idle_lifetime=10, now=1100.0) == 1100.0  # a clock step
    assert last_seen(UserSession("h" * 64, 1000.0, "", None), 60, 1100.0) is None


@pytest.mark.parametrize("store_type", ["memcached"])
def test_memcached_a_lost_index_fails_closed(make_app, index, store_type):
    """memcached may evict a user's index while their sessions live on. A bound session
    is admitted only while its handle is in its user's index, so losing the index (or
    the entry) makes the session absent: a fresh, empty session, never one that a
    revoke-all could no longer reach. Unbound sessions are not affected."""
    app = make_app()
    laptop, phone, guest = app.test_client(), app.test_client(), app.test_client()
    laptop.post("/login/alice")
    phone.post("/login/alice")
    guest.post("/set/cart?value=1")
    (key,) = memcached_indexes(index)
    assert key == index.key_prefix + INDEX_MARK + ALICE
    node = index._node(key)
    # The phone's entry alone is lost: the phone is out, the laptop stays in.
    entries = memcached_indexes(index)[key]
    del entries[handles(index, sid_of(phone))[0]]
    node.set(key, json.dumps(entries).encode(), expire=0, noreply=False)
    phone_sid = sid_of(phone)
    assert index.load(phone_sid, lock=False, refresh_ttl=None) is None
    assert index.incr(phone_sid, "n", 1, ttl=60, create=False) is None
    assert phone.get("/get").json == {}
    assert laptop.get("/get").json == {"user": "alice"}
    # The whole index is evicted: every session of the user is out, at once.
    laptop_sid = sid_of(laptop)
    node.delete(key, noreply=False)
    assert index.load(laptop_sid, lock=True, refresh_ttl=None) is None
    assert node.get(index.key_prefix + laptop_sid + ":lock") is None  # its lease freed
    assert laptop.get("/get").json == {}
    assert guest.get("/get").json == {"cart": "1"}
    assert laptop.post("/login/alice").status_code == 200  # a new login starts a new index
    assert laptop.get("/get").json == {"user": "alice"}
    assert listed(index, ALICE) == handles(index, sid_of(laptop))


@pytest.mark.parametrize("store_type", ["memcached"])
def test_memcached_a_label_cannot_keep_a_revoked_session_admitted(index, store_type):
    """memcached admits a bound session without parsing its user's index when the
    handle's entry is found as text; a label (a user agent: the user's to choose) that
    spells out a revoked session's entry must not pass for it."""
    kept, revoked = new_session(index), new_session(index)
    entry = f'"{handles(index, revoked)[0]}":[1,"","{index._key(revoked)}"]'
    index.bind_user(ALICE, kept, label=entry, cap=None)
    index.bind_user(ALICE, revoked, label="", cap=None)
    binding = {USER_KEY: index.codec.encode([ALICE, ""])}
    for sid in (kept, revoked):  # as the session layer stores a binding
        assert index.save(sid, binding, [], ttl=60, create=False)
    assert index.load(revoked, lock=False, refresh_ttl=None) is not None
    assert index.revoke_user_sessions(ALICE, handles(index, revoked), keep=None)
    index.save(revoked, {"user": b'"x"', **binding}, [], ttl=60, create=True)  # written again
    assert index.load(revoked, lock=False, refresh_ttl=None) is None
    assert index.load(kept, lock=False, refresh_ttl=None) is not None


#: concurrent logins of one user: threads, and logins per thread
BIND_THREADS = 6
BINDS_PER_THREAD = 4


def test_concurrent_logins_of_one_user_lose_no_entry_and_keep_the_cap(index):
    """Logins of one user at once (threads, each with the store's own connections):
    every bind lands (no lost update of the index), and with a cap the user ends with
    exactly the cap's number of live sessions."""
    sids = [[new_session(index) for _ in range(BINDS_PER_THREAD)] for _ in range(BIND_THREADS)]
    errors: list[BaseException] = []

    def login(own: list[str], user: str, cap: int | None) -> None:
        try:
            for sid in own:
                index.bind_user(user, sid, label="", cap=cap)
        except BaseException as error:  # reported below
            errors.append(error)

    for user, cap in ((ALICE, None), (BOB, 3)):
        threads = [threading.Thread(target=login, args=(own, user, cap)) for own in sids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        if cap is None:
            assert sorted(listed(index, ALICE)) == sorted(
                handles(index, *[sid for own in sids for sid in own])
            )
    live_for_bob = listed(index, BOB)
    assert len(live_for_bob) == 3
    # the sessions the cap revoked are gone from the store, not only from the index
    alive = [sid for own in sids for sid in own if index.load(sid, lock=False, refresh_ttl=None)]
    assert len(alive) == 3
    assert sorted(handles(index, *alive)) == sorted(live_for_bob)
