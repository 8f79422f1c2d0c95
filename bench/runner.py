#!/usr/bin/env python3
"""Benchmark harness: this service (A) against Flask-Session 0.8 (B), plain Flask (C) and
plain Flask plus one store round trip (D), on granian and on gunicorn.

Start it with ``bench/run`` (which sets up wrk, the stores and the bench virtualenv, then
runs this file with the bench venv's Python). See bench/README.md for what it measures;
the parts live in bench/harness/, one job per module. This file only orchestrates: which
servers, stores and scenarios run, in which order, and where the results go.

Every server binds 127.0.0.1 on a free port and is stopped at the end; every load run is
bounded in time (wrk -d, plus a hard timeout) and, where it creates data, in requests too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from harness.apps import unavailable
from harness.cli import parse_args
from harness.common import BENCH_VENV, BenchError, log, use_test_support
from harness.context import Ctx
from harness.live import run_a_only
from harness.measure import BUSY, summarize
from harness.report import markdown
from harness.scenarios import A_ONLY, SCENARIOS, run_store
from harness.verdicts import evaluate, load
from harness.versions import filesystem_type, git_commit, tool_versions


def _terminated(signum, frame):
    raise KeyboardInterrupt


def _available(ctx: Ctx) -> list[str]:
    """The targets asked for that can run; the others are skipped with a message."""
    names = []
    for name in ctx.args.targets:
        why = unavailable(name, ctx.repo, ctx.args.servers)
        if why:
            msg = f"Target {name} skipped: {why}."
            if name == "A" and any(s in ctx.args.scenarios for s in A_ONLY):
                msg += " The A-only scenarios (live sessions, cleanup) are skipped with it."
            log(msg)
            ctx.skipped.append(msg)
        else:
            names.append(name)
    return names


#: seconds a timed run costs beyond its -d (cookie files, CPU meters, reading counters back)
RUN_OVERHEAD_S = 0.4
#: seconds to start one server's apps for one store, collect cookies and warm them up,
#: beyond the warm-up itself
SETUP_S = 6
#: cookieless POST /inc per second while filling A's big store (granian or gunicorn, 2 cores)
POPULATE_RATE = 1_500


def estimate_minutes(args, names: list[str], scenarios: list, a_only: list[str]) -> float:
    """A rough forecast of the run's length, from its settings (printed at the start)."""
    per_store = len(scenarios) * args.rounds * len(names) * (args.duration + RUN_OVERHEAD_S)
    per_store += SETUP_S + len(names) * args.warmup
    total = len(args.servers) * len(args.stores) * per_store if scenarios else 0.0
    if a_only:
        total += (args.small_sessions + args.big_sessions) / POPULATE_RATE + 2 * SETUP_S
        total += args.rounds * 2 * (args.duration + RUN_OVERHEAD_S) if "live" in a_only else 0
        total += 2 * args.duration + 10 if "cleanup" in a_only else 0
    return total / 60


def run(ctx: Ctx) -> int:
    """Every server, store and scenario asked for; the exit status."""
    args = ctx.args
    names = _available(ctx)
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    a_only = [s for s in A_ONLY if s in args.scenarios and "A" in names]
    if a_only and "filesystem" not in args.stores:
        ctx.skipped.append("A-only scenarios need the filesystem store (--stores filesystem).")
        a_only = []
    log(
        f"{', '.join(names) or 'no target'} on {', '.join(s.name for s in args.servers)},"
        f" stores {', '.join(args.stores)}: about"
        f" {estimate_minutes(args, names, scenarios, a_only):.0f} min"
    )
    try:
        for server in args.servers:
            for store in args.stores if names and scenarios else []:
                run_store(ctx, server, store, names, scenarios)
            if a_only and server == args.servers[0]:
                run_a_only(ctx, server, a_only)
    except (BenchError, requests.RequestException) as exc:
        log(f"FAILED: {exc}")
        ctx.skipped.append(f"Run aborted: {str(exc).splitlines()[0]}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        ctx.skipped.append("Run interrupted.")
        return 130
    finally:
        for app in ctx.apps:
            app.stop()
        for store in ctx.stores:
            store.close()
    return 0


def write_results(ctx: Ctx, argv: list[str], status: int, started: float) -> None:
    args = ctx.args
    results = args.results.resolve()
    rows = summarize(ctx.runs)
    shares = [r["other_cpu"] for r in ctx.runs if "other_cpu" in r]
    meta = {
        "command": "bench/run" + (" " + shlex.join(argv) if argv else ""),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "git_commit": git_commit(args.repo),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "servers": [
            {"name": s.name, "workers": s.workers, "threads": s.threads, "describe": s.describe}
            for s in args.servers
        ],
        "tmp_root": tempfile.gettempdir(),
        "tmp_fs": filesystem_type(tempfile.gettempdir()),
        "elapsed_s": round(time.time() - started, 1),
        "versions": tool_versions(args.repo),
        "other_cpu_median": statistics.median(shares) if shares else None,
        "other_cpu_max": max(shares) if shares else None,
        "busy": bool(shares) and max(shares) > BUSY,
    }
    caveats = [c for c, on in (("quick run", args.quick), ("busy machine", meta["busy"])) if on]
    verdicts = evaluate(load(), rows, ctx.a_only, ", ".join(caveats))
    md = markdown(ctx, rows, meta, verdicts)
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.md").write_text(md)
    cfg = {k: v for k, v in vars(args).items() if k != "servers"}
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()}
    (results / "latest.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "config": cfg,
                "summary": rows,
                "runs": ctx.runs,
                "checks": ctx.checks,
                "a_only": ctx.a_only,
                "targets": [v.__dict__ for v in verdicts],
                "skipped": ctx.skipped,
                "exit_status": status,
            },
            indent=1,
        )
    )
    if rows:
        try:
            from harness.chart import write_chart

            write_chart(rows, meta, results / "latest.png")
        except ImportError as exc:
            log(f"no chart: {exc} (matplotlib lives in bench/.venv-flask-session; use bench/run)")
    print(md)
    log(f"wrote {results}/latest.md, latest.json, latest.png in {meta['elapsed_s']:.0f} s")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            log(f"{tool} is not installed: run bench/run (it installs it) or apt install {tool}")
            return 2
    if not (BENCH_VENV / "bin" / "python").exists():
        log("bench/.venv-flask-session is missing: start the benchmark with bench/run")
        return 2
    use_test_support(args.repo)
    logs = args.results.resolve() / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="session-bench-"))
    ctx = Ctx(args=args, repo=args.repo, tmp=tmp, logs=logs)
    signal.signal(signal.SIGTERM, _terminated)  # stop the children on SIGTERM too
    started = time.time()
    try:
        status = run(ctx)
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    write_results(ctx, argv, status, started)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
