"""Load on the counter service while something fails over, and the accounting after.

Each client thread owns one session and alternates ``POST /inc`` on it with ``POST
/shared/inc``, one new connection per request and never a retry (httpkit). Every answer
is recorded. Afterwards:

* acknowledged increments (200s) are lost when the session's final counter is below their
  number (or below the highest value told); a value told twice is a repeat;
* a 503 or no answer may or may not have been applied, so the final counter may exceed the
  acknowledged count by at most that many ("ambiguous");
* a shared number handed out twice is a repeat;
* the 503 window runs from the failure to the last answer that was not a 200.

Bounded in requests and in time, as every load loop in the tests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.reliability import httpkit

OK = 200
UNAVAILABLE = 503


@dataclass
class SessionTally:
    cookie: str
    told: list[int] = field(default_factory=list)  # values of acknowledged increments
    ambiguous: int = 0  # 503s / no answers: applied at most once, maybe not at all


@dataclass
class FailoverReport:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # any answer other than 200 / 503
    acked_increments: int = 0
    lost_acked: int = 0  # acknowledged increments missing from the final counters
    repeated_values: int = 0  # counter values told to one session twice
    over_count: int = 0  # final counter above acknowledged + ambiguous: counted twice
    shared_taken: int = 0
    shared_repeats: int = 0
    window: float | None = None  # seconds from the failure to the last non-200
    recovered: bool = False
    elapsed: float = 0.0
    throughput: float = 0.0

    def line(self) -> str:
        return (
            f"{self.requests} requests ({dict(self.statuses)}), 503 window"
            f" {self.window if self.window is None else round(self.window, 2)} s,"
            f" acknowledged increments {self.acked_increments}, lost {self.lost_acked},"
            f" repeated values {self.repeated_values}, counted twice {self.over_count},"
            f" shared numbers {self.shared_taken}, repeated {self.shared_repeats},"
            f" recovered {self.recovered}"
        )


@dataclass
class _Event:
    at: float
    status: int


def run_failover(
    base_url: str,
    fail: Callable[[], None],
    *,
    clients: int = 8,
    before: float = 2.0,
    settle: float = 2.0,
    time_limit: float = 40.0,
    max_requests: int = 20_000,
) -> FailoverReport:
    """Load for ``before`` s, call ``fail()`` (in this thread), keep loading until every
    answer has been 200 for ``settle`` s (recovered) or ``time_limit`` s passed."""
    sessions = [_new_session(base_url) for _ in range(clients)]
    events: list[_Event] = []
    shared: list[int] = []
    report = FailoverReport()
    guard = threading.Lock()
    stop = threading.Event()
    budget = [max_requests]

    def client(tally: SessionTally) -> None:
        turn = 0
        while not stop.is_set():
            with guard:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            path = "/inc" if turn % 2 == 0 else "/shared/inc"
            turn += 1
            reply = httpkit.request(base_url, "POST", path, cookie=tally.cookie, timeout=15)
            with guard:
                events.append(_Event(time.monotonic(), reply.status))
                report.statuses[reply.status] += 1
                if reply.status not in (OK, UNAVAILABLE, 0):
                    report.bad.append(f"{path}: {reply.status} {reply.text[:200]}")
                if reply.status == OK:
                    value = int(reply.json()["counter"])
                    if path == "/inc":
                        tally.told.append(value)
                    else:
                        shared.append(value)
                elif path == "/inc":
                    tally.ambiguous += 1

    threads = [threading.Thread(target=client, args=(tally,), daemon=True) for tally in sessions]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(before)
    failed_at = time.monotonic()
    fail()
    while time.monotonic() - started < time_limit and any(t.is_alive() for t in threads):
        time.sleep(0.1)
        with guard:
            last_bad = max((e.at for e in events if e.status != OK), default=failed_at)
            after = [e for e in events if e.at > last_bad]
        if time.monotonic() - last_bad >= settle and len(after) >= clients:
            report.recovered = True
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    report.elapsed = time.monotonic() - started
    report.requests = len(events)
    report.throughput = report.requests / report.elapsed
    bad_times = [e.at for e in events if e.status != OK and e.at >= failed_at]
    report.window = (max(bad_times) - failed_at) if bad_times else 0.0
    _account(base_url, sessions, shared, report)
    return report


def _new_session(base_url: str) -> SessionTally:
    reply = httpkit.request(base_url, "POST", "/inc")
    assert reply.status == OK, f"could not start a session: {reply.status} {reply.text[:200]}"
    return SessionTally(cookie=f"session={reply.cookie('session')}", told=[1])


def _account(
    base_url: str, sessions: list[SessionTally], shared: list[int], report: FailoverReport
) -> None:
    for tally in sessions:
        final = _final_counter(base_url, tally.cookie)
        report.acked_increments += len(tally.told)
        # Every acknowledged increment was applied once (ambiguous ones maybe), so the
        # final counter is at least their number; any shortfall was lost. (Losses hidden
        # by applied ambiguous ones still show as values told twice.)
        report.lost_acked += max(0, len(tally.told) - final, max(tally.told) - final)
        report.repeated_values += len(tally.told) - len(set(tally.told))
        report.over_count += max(0, final - (len(tally.told) + tally.ambiguous))
    report.shared_taken = len(shared)
    report.shared_repeats = len(shared) - len(set(shared))


def _final_counter(base_url: str, cookie: str, attempts: int = 50) -> int:
    for _ in range(attempts):
        reply = httpkit.request(base_url, "GET", "/counter", cookie=cookie)
        if reply.status == OK:
            return int(reply.json()["counter"])
        time.sleep(0.2)
    raise AssertionError(f"GET /counter never answered 200: {reply.status} {reply.text[:200]}")
