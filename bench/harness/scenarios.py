"""The interleaved rounds for one server and one store.

Every app is started once, gets its cookies and is warmed up; then for each scenario,
round 1 runs A, B, C, D, round 2 runs A, B, C, D, and so on, so that drift on the machine
hits every app alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import requests

from .apps import Running, app_for, launch
from .client import collect_cookies, new_cookie, read_counter, settled_counter, shared_uniqueness
from .common import BenchError, log
from .context import Ctx
from .load import write_cookie_file
from .processes import StoreServer
from .servers import Server


@dataclass(frozen=True)
class Scenario:
    key: str
    method: str
    path: str
    label: str
    one_cookie: bool = False


SCENARIOS = [
    Scenario("inc", "POST", "/inc", "POST /inc"),
    Scenario("counter", "GET", "/counter", "GET /counter"),
    Scenario("shared", "POST", "/shared/inc", "POST /shared/inc"),
    Scenario("contention", "POST", "/inc", "POST /inc, 1 cookie", one_cookie=True),
]
A_ONLY = ("live", "cleanup")
ALL_SCENARIOS = [s.key for s in SCENARIOS] + list(A_ONLY)


def start_apps(
    ctx: Ctx,
    names: list[str],
    server: Server,
    store: str,
    store_server: StoreServer | None,
    tag: str = "",
) -> list[Running]:
    """Start the apps ``names`` on ``server`` for ``store`` and wait until each is healthy."""
    started = []
    for name in names:
        app = app_for(name, ctx.repo)
        run_id = f"{server.name}-{store}-{name}{tag}"
        file_dir = ctx.tmp / f"{run_id}-sessions"
        file_dir.mkdir(parents=True, exist_ok=True)
        address = store_server.address(name) if store_server else None
        running = launch(app, server, store, file_dir, address, ctx.logs / f"{run_id}.log")
        ctx.apps.append(running)
        started.append(running)
    for t in started:
        t.wait_healthy()
        if t.name == "B":
            fs_file = str(t.health.get("flask_session_file", ""))
            ours = fs_file.startswith(str(ctx.repo / "flask_session"))
            if ours or "site-packages" not in fs_file:
                raise BenchError(
                    f"target B imported flask_session from {fs_file!r}, not from PyPI's"
                    " Flask-Session in bench/.venv-flask-session"
                )
        log(f"  {t.name} ({server.name}, {store}) up on {t.base}  {json.dumps(t.health)[:140]}")
    return started


def warm_up(ctx: Ctx, t: Running) -> None:
    # One request per route so that lazy set-up happens before timing; not /shared/inc,
    # whose counter the shared check wants untouched (the check then warms that route up).
    for sc in SCENARIOS[:2]:
        requests.request(sc.method, t.base + sc.path, headers={"Cookie": t.cookies[0]}, timeout=10)
    ctx.wrk(t, "POST", "/inc", t.cookie_file, duration=ctx.args.warmup).run()


def prepare(ctx: Ctx, t: Running, cookie_tag: str) -> None:
    """Collect the target's cookies and warm it up."""
    t.cookies = collect_cookies(t, ctx.args.cookies)
    t.cookie_file = write_cookie_file(ctx.tmp / f"{cookie_tag}.cookies", t.cookies)
    warm_up(ctx, t)


def run_store(
    ctx: Ctx, server: Server, store: str, names: list[str], scenarios: list[Scenario]
) -> None:
    args = ctx.args
    log(f"{server.describe}, store {store}: starting {', '.join(names)}")
    store_server = StoreServer(store, ctx.repo)
    ctx.stores.append(store_server)
    targets: list[Running] = []
    try:
        targets = start_apps(ctx, names, server, store, store_server)
        for t in targets:
            prepare(ctx, t, f"{server.name}-{store}-{t.name}")
        log(f"  {args.cookies} cookies per target collected, warmed up ({args.warmup} s each)")
        if any(sc.key == "shared" for sc in scenarios):
            # Before any POST /shared/inc (warm-up sends none): every worker's module global is
            # still 0, as after a deploy, and warm-up has made sure every worker is up.
            for t in targets:
                u = shared_uniqueness(t)
                ctx.checks.append(
                    {"kind": "shared", "server": server.name, "store": store, "target": t.name,
                     **u}
                )  # fmt: skip
                log(
                    f"  {t.name} {u['requests']} concurrent POST /shared/inc on a fresh"
                    f" server: {u['unique']} distinct numbers in {u['ok']} answers"
                )
        for sc in scenarios:
            for rnd in range(1, args.rounds + 1):
                for t in targets:
                    if sc.one_cookie:
                        run_contention(ctx, sc, t, rnd)
                    else:
                        res = ctx.timed(t, sc.method, sc.path, t.cookie_file)
                        ctx.record(t, sc.key, sc.label, rnd, res)
        if store == "filesystem":
            for t in targets:  # sanity: B's store prunes past 500 files, which would skew it
                files = sum(len(fs) for _, _, fs in os.walk(t.file_dir))
                ctx.checks.append(
                    {"kind": "files", "server": server.name, "store": store, "target": t.name,
                     "files": files}
                )  # fmt: skip
    finally:
        for t in targets:
            t.stop()
        store_server.close()


def run_contention(ctx: Ctx, sc: Scenario, t: Running, rnd: int) -> None:
    """All connections on ONE fresh cookie; the counter before and after the run."""
    cookie = new_cookie(t)
    cookie_file = write_cookie_file(
        ctx.tmp / f"{t.server.name}-{t.store}-{t.name}-contention-{rnd}.cookie", [cookie]
    )
    before = read_counter(t, cookie) if t.sets_cookies else None
    res = ctx.timed(t, sc.method, sc.path, cookie_file)
    after = settled_counter(t, cookie) if t.sets_cookies else None
    extra = {}
    if before is not None and after is not None:
        extra = {"counter_before": before, "counter_after": after, "increments": after - before}
    ctx.record(t, sc.key, sc.label, rnd, res, **extra)
