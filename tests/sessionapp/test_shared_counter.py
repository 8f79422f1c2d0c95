"""The shared counter: the store's counter verbs, driven directly and through the service,
on every store; then the filesystem store's counter file."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from flask_session import StoreUnavailable
from flask_session.stores.filecounter import WIDTH
from sessionapp import create_app
from sessionapp.shared_counter import SharedCounter

from .conftest import shared_counter_of, stored_items

#: also on a Redis Cluster, a Sentinel set and Valkey (tests/conftest.py)
pytestmark = pytest.mark.redis_topologies


@pytest.fixture
def counter(app) -> SharedCounter:
    return shared_counter_of(app)


def test_the_service_counts_with_the_stores_verbs_under_its_name(app, counter):
    assert counter.store is app.session_interface.store
    assert counter.name == "shared"
    counter.increment()
    assert counter.store.counter_value("shared") == 1
    assert counter.store.counter_value("other") == 0


def test_reading_and_resetting_a_counter_that_was_never_used_creates_nothing(app, counter):
    assert counter.value() == 0
    counter.reset()
    assert counter.value() == 0
    assert stored_items(app) == []


def test_increment_counts_from_one_and_reset_starts_again(counter):
    assert [counter.increment() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert counter.value() == 5
    counter.reset()
    assert counter.value() == 0
    assert counter.increment() == 1


def test_threads_never_get_the_same_number(counter):
    threads, each = 16, 40
    with ThreadPoolExecutor(threads) as pool:
        batches = list(
            pool.map(lambda _: [counter.increment() for _ in range(each)], range(threads))
        )
    numbers = sorted(number for batch in batches for number in batch)
    assert numbers == list(range(1, threads * each + 1))
    for batch in batches:  # each thread's own numbers rise
        assert batch == sorted(batch)


def test_processes_never_get_the_same_number(store_env):
    """Separate interpreters, as gunicorn's workers are; no shared memory at all."""
    script = textwrap.dedent(
        """
        import json, sys
        from sessionapp import create_app
        from sessionapp.shared_counter import shared_counter
        app = create_app({"TESTING": True})
        with app.app_context():
            print(json.dumps([shared_counter().increment() for _ in range(50)]))
        """
    )
    env = {**os.environ, **store_env}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    numbers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        numbers += json.loads(out)
    assert sorted(numbers) == list(range(1, 201))


def test_two_services_with_different_prefixes_on_one_store_have_separate_counters(make_app):
    """Issue 11: the second service's first number was 4, and one's reset zeroed the other's."""
    first = make_app(SESSION_KEY_PREFIX="first:")
    second = make_app(SESSION_KEY_PREFIX="second:")
    a, b = first.test_client(), second.test_client()
    assert [a.post("/shared/inc").get_json()["counter"] for _ in range(3)] == [1, 2, 3]
    assert b.post("/shared/inc").get_json() == {"counter": 1}
    assert a.post("/shared/reset").status_code == 200
    assert b.get("/shared").get_json() == {"counter": 1}
    assert b.post("/shared/inc").get_json() == {"counter": 2}
    assert a.post("/shared/inc").get_json() == {"counter": 1}
    # And a third service with the first one's prefix is the same service.
    third = make_app(SESSION_KEY_PREFIX="first:")
    assert third.test_client().get("/shared").get_json() == {"counter": 1}


# -- the filesystem store's counter file -------------------------------------------------


def file_app(session_dir, **overrides):
    """The service on the filesystem store only (these tests are about the file)."""
    config = {"TESTING": True, "SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(session_dir)}
    return create_app({**config, **overrides})


class FileCounter:
    """A file store's shared counter and the path of its file."""

    def __init__(self, app):
        self.counter = shared_counter_of(app)
        self.store = app.session_interface.store
        self.path = self.store.counter_path(self.counter.name)

    def __getattr__(self, name):
        return getattr(self.counter, name)


@pytest.fixture
def file_counter(session_dir) -> FileCounter:
    return FileCounter(file_app(session_dir))


def test_the_file_is_fixed_width_private_and_rewritten_in_place(file_counter):
    file_counter.increment()
    first = os.stat(file_counter.path)
    for _ in range(11):
        file_counter.increment()
    with open(file_counter.path, "rb") as file:
        assert file.read() == b"00000000000000000012\n"
    after = os.stat(file_counter.path)
    assert (after.st_ino, after.st_dev) == (first.st_ino, first.st_dev)  # no rename
    assert after.st_mode & 0o777 == 0o600
    file_counter.reset()
    with open(file_counter.path, "rb") as file:
        assert file.read() == b"0" * WIDTH + b"\n"


def test_the_file_name_comes_from_the_counter_name_and_the_key_prefix(session_dir):
    default = FileCounter(file_app(session_dir))
    other_prefix = FileCounter(file_app(session_dir, SESSION_KEY_PREFIX="other:"))
    other_name = FileCounter(file_app(session_dir, SHARED_COUNTER_NAME="tickets"))
    paths = {default.path, other_prefix.path, other_name.path}
    assert len(paths) == 3
    for path in paths:
        assert os.path.dirname(path) == str(session_dir)
        assert path.endswith(".counter")
    assert os.path.basename(default.path).startswith("shared.")
    assert os.path.basename(other_name.path).startswith("tickets.")


def test_cleanup_leaves_the_counter_file_alone(session_dir):
    app = file_app(session_dir, PERMANENT_SESSION_LIFETIME=1)
    counter = FileCounter(app)
    counter.increment()
    past = time.time() - 3600  # as old as any expired session
    os.utime(counter.path, (past, past))
    result = app.test_cli_runner().invoke(args=["session", "cleanup", "--stale-temp-after", "0"])
    assert result.exit_code == 0, result.output
    assert counter.value() == 1


@pytest.mark.parametrize(
    "content", [b"12\n", b"garbage", b"00000000000000000001", b"-0000000000000000001\n", b"\0" * 21]
)
def test_a_corrupt_file_is_refused_rather_than_guessed_and_reset_repairs_it(file_counter, content):
    file_counter.increment()
    with open(file_counter.path, "wb") as file:
        file.write(content)
    with pytest.raises(StoreUnavailable, match="unexpected content") as raised:
        file_counter.increment()
    assert raised.value.reason == "the shared counter holds something that is not a number"
    with pytest.raises(StoreUnavailable):
        file_counter.value()
    file_counter.reset()
    assert file_counter.increment() == 1


def test_a_corrupt_file_answers_503_with_the_reason(session_dir):
    app = file_app(session_dir)
    counter = FileCounter(app)
    counter.increment()
    with open(counter.path, "wb") as file:
        file.write(b"garbage")
    response = app.test_client().post("/shared/inc")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "not a number" in response.get_json()["error"]


def test_a_held_lock_makes_increments_wait_and_then_give_up(session_dir):
    impatient = FileCounter(file_app(session_dir, SESSION_LOCK_TIMEOUT=0.3))
    patient = FileCounter(file_app(session_dir, SESSION_LOCK_TIMEOUT=30))
    impatient.increment()
    with open(impatient.path, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="stayed locked"):
            impatient.increment()
        assert time.monotonic() - started >= 0.3
        # A waiter gets through as soon as the holder lets go.
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(patient.increment()))
        waiter.start()
        time.sleep(0.2)
        assert result == []
        fcntl.flock(holder, fcntl.LOCK_UN)
        waiter.join(30)
    assert result == [2]


def test_a_killed_lock_holder_frees_the_counter_at_once(file_counter):
    file_counter.increment()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({file_counter.path!r}, 'rb'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        assert file_counter.increment() == 2
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_a_removed_session_directory_is_made_again(file_counter, session_dir):
    file_counter.increment()
    os.unlink(file_counter.path)
    os.rmdir(session_dir)
    assert file_counter.value() == 0
    assert file_counter.increment() == 1
    assert os.path.isdir(session_dir)


def test_a_symlink_in_place_of_the_file_is_refused(file_counter, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    os.symlink(target, file_counter.path)
    with pytest.raises(StoreUnavailable):
        file_counter.increment()
    assert target.read_bytes() == b"precious"


# -- outages -------------------------------------------------------------------------------


def test_a_redis_outage_is_store_unavailable(request, redis_url, redis_server, build_app):
    counter = shared_counter_of(
        build_app({"TESTING": True, "SESSION_TYPE": "redis", "SESSION_REDIS_URL": redis_url})
    )
    request.addfinalizer(redis_server.start)
    redis_server.stop()
    for call in (counter.increment, counter.value, counter.reset):
        with pytest.raises(StoreUnavailable):
            call()
    redis_server.start()
    assert counter.increment() == 1
