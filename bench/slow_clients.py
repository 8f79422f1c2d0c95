"""Slow-header clients against each server's default configuration: a table.

    .venv/bin/python bench/slow_clients.py [--seconds 15] [--slow 40] [--max-requests 3000]

For granian as ``make run`` starts it (sessionapp/serve.py) and gunicorn as
``gunicorn -c gunicorn.conf.py app:app`` runs it, both on the filesystem store in a
temporary directory on 127.0.0.1: one normal client POSTs /inc, each request on a new
connection, for ``--seconds`` (at most ``--max-requests`` requests), first alone, then while
``--slow`` connections send their request headers one byte a second (reconnecting when
the server cuts them off). Prints, per server and phase: normal requests completed, their
latency (median, p99, max) and failures, and how many slow connections the server cut off.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.app_servers import AppServer, GranianServer, GunicornServer  # noqa: E402
from tests.support.ports import HOST  # noqa: E402
from tests.support.slow_clients import Outcome, SlowHeaderClients, normal_requests  # noqa: E402

APP = "app:app"
WARM_UP_REQUESTS = 50
#: the normal client's think time between requests
PAUSE_S = 0.01
#: how long one normal request may wait before it counts as failed
REQUEST_TIMEOUT_S = 30.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start(kind: str, session_dir: Path) -> AppServer:
    env = {"FLASK_SESSION_FILE_DIR": str(session_dir)}
    if kind == "granian":
        server: AppServer = GranianServer(APP, env=env, workers=None, threads=None)
    else:
        server = GunicornServer(APP, env=env, workers=None, config=REPO / "gunicorn.conf.py")
    return server.start()


def phase(server: AppServer, args: argparse.Namespace) -> list[Outcome]:
    return normal_requests(
        HOST,
        server.port,
        duration=args.seconds,
        max_requests=args.max_requests,
        pause=PAUSE_S,
        timeout=REQUEST_TIMEOUT_S,
    )


def row(kind: str, label: str, outcomes: list[Outcome], cut_off: int | str) -> str:
    answered = [o.seconds * 1000 for o in outcomes if o.status == 200]
    failed = len(outcomes) - len(answered)
    if not answered:
        return f"| {kind} | {label} | 0 | - | - | - | {failed} | {cut_off} |"
    return (
        f"| {kind} | {label} | {len(answered)} | {statistics.median(answered):.1f}"
        f" | {percentile(answered, 0.99):.1f} | {max(answered):.1f} | {failed} | {cut_off} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--slow", type=int, default=40, help="slow-header connections")
    parser.add_argument("--max-requests", type=int, default=3000, help="bound per phase")
    parser.add_argument("--servers", nargs="+", default=["granian", "gunicorn"])
    args = parser.parse_args()

    rows = []
    for kind in args.servers:
        with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
            server = start(kind, Path(tmp) / "sessions")
            try:
                workers = len(server.worker_pids())
                normal_requests(HOST, server.port, duration=10, max_requests=WARM_UP_REQUESTS)
                unloaded = phase(server, args)
                with SlowHeaderClients(HOST, server.port, count=args.slow) as slow:
                    loaded = phase(server, args)
            finally:
                server.close()
        label = f"{kind} ({workers} workers)"
        rows.append(row(label, "alone", unloaded, "-"))
        rows.append(row(label, f"{args.slow} slow clients", loaded, slow.cut_off))
        print(f"{label}: done", file=sys.stderr)

    print(
        f"\nPOST /inc, one new connection per request, {args.seconds:g} s per phase"
        f" (at most {args.max_requests} requests), filesystem store, 127.0.0.1\n"
    )
    print("| server | phase | completed | median ms | p99 ms | max ms | failed | slow cut off |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
