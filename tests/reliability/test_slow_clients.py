"""Slow clients do not stop normal ones on the default ``make run`` configuration.

granian started exactly as ``make run`` starts it (sessionapp/serve.py, its default
workers and threads), 40 connections sending their request headers one byte a second,
and a normal client POSTing /inc meanwhile, each request on a new connection. Every
normal request is answered 200, none waits anywhere near as long as the slow clients
take (a wide bound: speed belongs to bench/slow_clients.py), and the header deadline
cuts every slow connection off (they reconnect, so the pressure lasts the whole window).
"""

from __future__ import annotations

import pytest

from sessionapp.serve import HEADER_READ_TIMEOUT_MS
from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.support.ports import HOST
from tests.support.slow_clients import SlowHeaderClients, normal_requests

SLOW_CLIENTS = 40
#: long enough for the header deadline to cut every slow connection once
WINDOW_S = HEADER_READ_TIMEOUT_MS / 1000 + 4
MAX_NORMAL_REQUESTS = 1000
#: a normal client's think time: the window, not the request bound, ends the run
PAUSE_S = 0.02
#: far above an unloaded request (milliseconds), far below a slow client's stall (seconds)
SLOWEST_ALLOWED_S = 1.0
FEWEST_EXPECTED = 20

pytestmark = pytest.mark.slow


def test_slow_header_clients_do_not_stop_normal_clients(granian_server, tmp_path):
    needs_service()
    server = granian_server(
        SERVICE_APP,
        env={"FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions")},
        workers=None,  # the launcher's defaults, as `make run`
        threads=None,
    )
    with SlowHeaderClients(HOST, server.port, count=SLOW_CLIENTS) as slow:
        outcomes = normal_requests(
            HOST, server.port, duration=WINDOW_S, max_requests=MAX_NORMAL_REQUESTS, pause=PAUSE_S
        )
    statuses = {outcome.status for outcome in outcomes}
    slowest = max(outcome.seconds for outcome in outcomes)
    print(
        f"{len(outcomes)} normal requests in {WINDOW_S:g} s, slowest {slowest * 1000:.1f} ms;"
        f" slow connections {slow.connects}, cut off {slow.cut_off}"
    )
    assert statuses == {200}, statuses
    assert len(outcomes) >= FEWEST_EXPECTED
    assert slowest < SLOWEST_ALLOWED_S
    assert slow.connects >= SLOW_CLIENTS
    assert slow.cut_off >= SLOW_CLIENTS, "the header deadline did not cut slow clients off"
    assert "Traceback" not in server.log_text()
