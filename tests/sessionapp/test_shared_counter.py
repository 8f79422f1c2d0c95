"""The shared counter's implementations, driven directly, on both stores."""

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
from sessionapp import create_app
from sessionapp.shared_counter import FileSharedCounter, RedisSharedCounter

from .conftest import shared_counter_of, stored_items


@pytest.fixture
def counter(app):
    return shared_counter_of(app)


def test_the_store_picks_the_implementation(counter, store_type):
    expected = {"redis": RedisSharedCounter, "filesystem": FileSharedCounter}[store_type]
    assert type(counter) is expected


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


def test_processes_never_get_the_same_number(store_env, tmp_path):
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


# -- the file ------------------------------------------------------------------------------


def file_app(session_dir, **overrides):
    """The service on the filesystem store only (these tests are about the file)."""
    config = {"TESTING": True, "SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(session_dir)}
    return create_app({**config, **overrides})


@pytest.fixture
def file_counter(session_dir):
    return shared_counter_of(file_app(session_dir))


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
        assert file.read() == b"0" * 20 + b"\n"


def test_the_file_is_in_the_session_directory_and_cleanup_leaves_it_alone(session_dir):
    app = file_app(session_dir)
    counter = shared_counter_of(app)
    counter.increment()
    assert os.path.dirname(counter.path) == str(session_dir)
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
    with pytest.raises(StoreUnavailable, match="unexpected content"):
        file_counter.increment()
    with pytest.raises(StoreUnavailable):
        file_counter.value()
    file_counter.reset()
    assert file_counter.increment() == 1


def test_a_held_lock_makes_increments_wait_and_then_give_up(session_dir):
    impatient = shared_counter_of(file_app(session_dir, SESSION_LOCK_TIMEOUT=0.3))
    patient = shared_counter_of(file_app(session_dir, SESSION_LOCK_TIMEOUT=30))
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
        started = time.monotonic()
        assert file_counter.increment() == 2
        assert time.monotonic() - started < 1
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


# -- the Redis key -------------------------------------------------------------------------


@pytest.fixture
def redis_app(redis_url, build_app):
    """Factory: the service on the Redis store only (these tests are about the key)."""

    def make(**overrides):
        config = {"TESTING": True, "SESSION_TYPE": "redis", "SESSION_REDIS_URL": redis_url}
        return build_app({**config, **overrides})

    return make


@pytest.fixture
def redis_counter(redis_app):
    return shared_counter_of(redis_app())


def test_the_redis_counter_is_one_plain_integer_key(redis_counter):
    redis_counter.increment()
    redis_counter.increment()
    assert redis_counter.redis.get("sessionapp:shared-counter") == b"2"
    redis_counter.reset()
    assert redis_counter.redis.exists("sessionapp:shared-counter") == 0


def test_the_redis_key_is_configurable(redis_app):
    counter = shared_counter_of(redis_app(SHARED_COUNTER_KEY="tickets"))
    counter.increment()
    assert counter.redis.get("tickets") == b"1"


@pytest.mark.parametrize("kind", ["text", "hash"])
def test_a_foreign_redis_value_is_refused(redis_counter, kind):
    if kind == "text":
        redis_counter.redis.set("sessionapp:shared-counter", "hello")
    else:
        redis_counter.redis.hset("sessionapp:shared-counter", "a", "1")
    with pytest.raises(StoreUnavailable, match="not a counter"):
        redis_counter.increment()
    with pytest.raises(StoreUnavailable):
        redis_counter.value()
    redis_counter.reset()
    assert redis_counter.increment() == 1


def test_a_redis_outage_is_store_unavailable(redis_counter, redis_server, request):
    request.addfinalizer(redis_server.start)
    redis_server.stop()
    for call in (redis_counter.increment, redis_counter.value, redis_counter.reset):
        with pytest.raises(StoreUnavailable, match="redis is unavailable"):
            call()
    redis_server.start()
    assert redis_counter.increment() == 1
