"""Workers replaced on purpose, under load, on each server: nothing acknowledged is lost.

A graceful reload (SIGHUP: every worker replaced, the socket stays open) and worker
recycling (gunicorn ``--max-requests``; granian ``--workers-max-rss`` with a limit every
worker exceeds, so each is replaced about every second) while client threads increment
their sessions and take shared numbers. Only 200s or connection errors on unacknowledged
requests (a 503 on a lock wait at most), never a 500; every session's final counter lies
between its acknowledged increments and those plus the unanswered ones; no shared number
is handed out twice; the workers that ran at the start are gone at the end.
"""

from __future__ import annotations

import pytest

from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.reliability.counting_load import (
    SharedTally,
    assert_nothing_acknowledged_was_lost,
    assert_shared_numbers_unique,
    counting_run,
    reload_all_workers,
)

RELOADS = 2
#: recycling settings that replace workers several times within one counting run
RECYCLE_ARGS = {
    "gunicorn": ["--max-requests", "60", "--max-requests-jitter", "10"],
    "granian": ["--workers-max-rss", "1", "--rss-sample-interval", "1"],
}

#: the service's two production stores (every store is covered by test_killed_workers)
PRODUCTION_STORES = pytest.mark.parametrize("store_type", ["filesystem", "redis"])

pytestmark = pytest.mark.slow


def _counter(reply) -> int:
    return reply.json()["counter"]


@PRODUCTION_STORES
def test_graceful_reload_under_load_loses_nothing(app_server, store_env):
    needs_service()
    server = app_server(SERVICE_APP, env=store_env, workers=2, threads=4)
    first_workers = server.worker_pids()
    shared = SharedTally()
    results = counting_run(
        server,
        post_path="/inc",
        read_path="/counter",
        read_value=_counter,
        disruptions=RELOADS,
        disrupt=reload_all_workers,
        shared=shared,
    )
    assert_nothing_acknowledged_was_lost(results, server)
    assert_shared_numbers_unique(shared)
    assert not set(first_workers) & set(server.worker_pids()), server.log_tail()


@PRODUCTION_STORES
def test_recycled_workers_under_load_lose_nothing(app_server, server_kind, store_env):
    needs_service()
    server = app_server(
        SERVICE_APP, env=store_env, workers=2, threads=4, extra_args=RECYCLE_ARGS[server_kind]
    )
    first_workers = server.worker_pids()
    shared = SharedTally()
    results = counting_run(
        server, post_path="/inc", read_path="/counter", read_value=_counter, shared=shared
    )
    server.wait_for_workers(exclude=first_workers, timeout=30)  # recycling happened
    assert_nothing_acknowledged_was_lost(results, server)
    assert_shared_numbers_unique(shared)
