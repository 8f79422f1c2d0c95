"""The command line of ``bench/run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .apps import NAMES
from .common import DEFAULT_REPO, RESULTS
from .scenarios import ALL_SCENARIOS
from .servers import DEFAULTS, Server

STORES = ("filesystem", "redis", "sqlite", "postgresql", "memcached")
DEFAULT_STORES = ("redis", "filesystem")
DEFAULT_SERVERS = ("granian", "gunicorn")


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Interleaved wrk benchmark of this service (A) against Flask-Session 0.8"
        " (B), plain Flask (C) and plain Flask plus one store round trip (D), on granian and"
        " on gunicorn with the same workers x threads for every target.",
    )
    p.add_argument("--targets", default=",".join(NAMES), help="comma list (default A,B,C,D)")
    p.add_argument(
        "--stores",
        default=",".join(DEFAULT_STORES),
        help=f"comma list of {','.join(STORES)}, or 'all' (default {','.join(DEFAULT_STORES)})",
    )
    p.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma list of granian,gunicorn (default both). The A-only scenarios run on the"
        " first one.",
    )
    for name, (workers, threads) in DEFAULTS.items():
        p.add_argument(f"--{name}-workers", type=int, default=workers, help=f"default {workers}")
        p.add_argument(
            f"--{name}-threads", type=int, default=threads, help=f"per worker; default {threads}"
        )
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma list of {','.join(ALL_SCENARIOS)} (default all)",
    )
    p.add_argument(
        "--rounds", type=int, help="interleaved rounds per scenario (default 3; quick 1)"
    )
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 5; quick 1)")
    p.add_argument(
        "--warmup", type=int, help="seconds of POST /inc per target before timing (default 2;"
        " quick 1)"
    )  # fmt: skip
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--wrk-timeout", type=int, default=10, help="wrk per-request timeout, s (default 10)"
    )
    p.add_argument(
        "--cookies", type=int, default=200, help="session cookies to spread requests over"
        " (default 200)"
    )  # fmt: skip
    p.add_argument("--small-sessions", type=int, help="A only: the small store (default 1000)")
    p.add_argument(
        "--big-sessions",
        type=int,
        help="A only: the big store and the cleanup (default 100000; quick 5000)",
    )
    p.add_argument(
        "--populate-timeout", type=int, default=600,
        help="A only: seconds allowed to create the big store",
    )  # fmt: skip
    p.add_argument(
        "--cleanup-timeout", type=int, default=120,
        help="A only: seconds allowed for the cleanup command",
    )  # fmt: skip
    p.add_argument(
        "--cleanup-nice", type=int, default=0,
        help="A only: run the cleanup command under `nice -n N`, as a cron job would"
        " (default 0: same priority as the server)",
    )  # fmt: skip
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round of 1 s, small session stores"
    )
    p.add_argument(
        "--repo", type=Path, default=DEFAULT_REPO,
        help="repository whose app.py is target A (default: this checkout)",
    )  # fmt: skip
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="output directory (default bench/results)"
    )
    p.add_argument(
        "--keep-tmp", action="store_true", help="keep the session directories for inspection"
    )
    a = p.parse_args(argv)
    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.duration = a.duration or (1 if q else 5)
    a.warmup = a.warmup or (1 if q else 2)
    a.small_sessions = a.small_sessions or 1000
    a.big_sessions = a.big_sessions or (5000 if q else 100_000)
    a.repo = a.repo.resolve()
    a.targets = [t.upper() for t in _list(a.targets)]
    a.stores = list(STORES) if a.stores == "all" else _list(a.stores)
    a.scenarios = _list(a.scenarios)
    names = _list(a.servers)
    bad = (
        [t for t in a.targets if t not in NAMES]
        + [s for s in a.stores if s not in STORES]
        + [s for s in a.scenarios if s not in ALL_SCENARIOS]
        + [s for s in names if s not in DEFAULTS]
    )
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    a.servers = [Server(n, getattr(a, f"{n}_workers"), getattr(a, f"{n}_threads")) for n in names]
    counts = [a.rounds, a.duration, a.warmup, a.connections, a.wrk_threads, a.cookies]
    counts += [n for s in a.servers for n in (s.workers, s.threads)]
    if min(counts) < 1 or not a.servers:
        p.error(
            "rounds, duration, warmup, connections, wrk threads, cookies, workers and threads"
            " must be at least 1, and --servers must name one"
        )
    if not a.cookies <= a.small_sessions < a.big_sessions:
        p.error("need --cookies <= --small-sessions < --big-sessions")
    return a
