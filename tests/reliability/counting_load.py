"""Counted increments while workers are replaced: what was acknowledged must be counted.

One load for every way a worker goes away (``kill -9``, SIGHUP reload, recycling): client
threads send increments over SESSIONS sessions, each on a new connection, while
`disrupt(server)` runs at evenly spaced points. Every session's final counter must lie
between its acknowledged (200) increments and those plus the increments that got no
answer (a worker can count and die before its answer leaves). Optionally every few
requests take a number from the shared counter, and no number may be handed out twice.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.reliability import httpkit

SESSIONS = 12
CLIENT_THREADS = 8
REQUESTS_PER_THREAD = 60
RUN_LIMIT_S = 60.0
UNREADABLE_MARKERS = ("ignoring unreadable session", "not json data", "Traceback")
SHARED_PATH = "/shared/inc"


@dataclass
class Tally:
    """What the clients saw for one session."""

    cookie: str
    ok: int = 0  # answered 200: the increment is acknowledged
    no_answer: int = 0  # connection died: the increment may or may not have been applied
    other: Counter = field(default_factory=Counter)  # any other status, by code


@dataclass
class SharedTally:
    """What the clients saw of the shared counter (POST /shared/inc)."""

    numbers: list[int] = field(default_factory=list)  # the numbers acknowledged
    no_answer: int = 0
    other: Counter = field(default_factory=Counter)


def kill_one_worker(server: Any) -> None:
    """SIGKILL the first worker and wait for its replacement."""
    victim = server.worker_pids()[0]
    server.kill_worker(victim)
    server.wait_for_workers(exclude=[victim])


def reload_all_workers(server: Any) -> None:
    """SIGHUP, then wait until every worker that ran before has been replaced."""
    before = server.worker_pids()
    server.reload()
    server.wait_for_workers(exclude=before, timeout=30)


def counting_run(
    server: Any,
    *,
    post_path: str,
    read_path: str,
    read_value: Callable[[httpkit.Reply], int],
    disruptions: int = 0,
    disrupt: Callable[[Any], None] = kill_one_worker,
    shared: SharedTally | None = None,
    shared_every: int = 4,
) -> list[tuple[Tally, int]]:
    """Drive increments (see module doc); returns each session's Tally and final value.

    With `shared`, every `shared_every`-th request of a thread is a POST /shared/inc,
    recorded there instead.
    """
    tallies = []
    for _ in range(SESSIONS):
        first = httpkit.request(server.url, "POST", post_path)
        assert first.status == 200, first
        tallies.append(Tally(cookie=f"session={first.cookie('session')}", ok=1))
    guard = threading.Lock()
    done = 0
    deadline = time.monotonic() + RUN_LIMIT_S

    def take_shared() -> None:
        assert shared is not None
        reply = httpkit.request(server.url, "POST", SHARED_PATH)
        with guard:
            if reply.status == 200:
                shared.numbers.append(reply.json()["counter"])
            elif not reply.answered:
                shared.no_answer += 1
            else:
                shared.other[reply.status] += 1

    def client(offset: int) -> None:
        nonlocal done
        for number in range(REQUESTS_PER_THREAD):
            if time.monotonic() > deadline:
                return
            if shared is not None and number % shared_every == shared_every - 1:
                take_shared()
                with guard:
                    done += 1
                continue
            tally = tallies[(offset + number) % SESSIONS]
            reply = httpkit.request(server.url, "POST", post_path, cookie=tally.cookie)
            with guard:
                done += 1
                if reply.status == 200:
                    tally.ok += 1
                elif not reply.answered:
                    tally.no_answer += 1
                else:
                    tally.other[reply.status] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    total = CLIENT_THREADS * REQUESTS_PER_THREAD
    for step in range(disruptions):
        while done < total * (step + 1) // (disruptions + 1) and any(
            t.is_alive() for t in threads
        ):
            time.sleep(0.005)
        disrupt(server)
    for thread in threads:
        thread.join()
    server.wait_for_workers()
    server.wait_until_serving()
    finals = []
    for tally in tallies:
        reply = httpkit.request(server.url, "GET", read_path, cookie=tally.cookie)
        assert reply.status == 200, f"{reply}\n{server.log_tail(40)}"
        finals.append(read_value(reply))
    return list(zip(tallies, finals, strict=True))


def assert_nothing_acknowledged_was_lost(results: list[tuple[Tally, int]], server: Any) -> None:
    """final >= answered 200, and final <= 200s + requests that died without an answer.

    A 503 is allowed: on Redis, requests queued on a session whose lock holder was killed
    wait for its lease (SESSION_LOCK_TIMEOUT) to run out; the first gets the lock, and one
    queued almost as early can reach its own equal wait limit before its turn and answer
    503 "session busy" without applying anything. It still counts in the upper bound,
    which only makes the bound looser. Never a 500.
    """
    lines = []
    for number, (tally, final) in enumerate(results):
        lines.append(
            f"session {number}: final {final}, 200s {tally.ok}, no answer {tally.no_answer},"
            f" other {dict(tally.other)}"
        )
    report = "\n".join(lines)
    print(report)
    for tally, final in results:
        assert set(tally.other) <= {503}, f"answers other than 200/503:\n{report}"
        refused = tally.other[503]
        assert final >= tally.ok, f"an acknowledged increment was lost:\n{report}"
        assert final <= tally.ok + tally.no_answer + refused, f"counted more than sent:\n{report}"
    assert_clean_log(server)


def assert_shared_numbers_unique(shared: SharedTally) -> None:
    """Every acknowledged shared number is distinct; nothing but 200, 503 or no answer."""
    repeated = [n for n, times in Counter(shared.numbers).items() if times > 1]
    print(
        f"shared: {len(shared.numbers)} numbers, no answer {shared.no_answer},"
        f" other {dict(shared.other)}"
    )
    assert shared.numbers, "no shared number was handed out"
    assert not repeated, f"shared numbers handed out twice: {repeated}"
    assert set(shared.other) <= {503}, shared.other


def assert_clean_log(server: Any) -> None:
    log = server.log_text()
    for marker in UNREADABLE_MARKERS:
        assert marker not in log, f"{marker!r} in the {server.kind} log:\n{server.log_tail(80)}"


def check_session_files(session_dir: Any) -> None:
    """Every session file on disk is a complete document (temp files may be left over)."""
    if not session_dir.exists():
        return
    for name in os.listdir(session_dir):
        if name.endswith(".session"):
            json.loads((session_dir / name).read_bytes())  # never half-written
        else:
            assert re.fullmatch(r"\..*\.tmp|[^.]+\.[0-9a-f]{16}\.counter", name), name
