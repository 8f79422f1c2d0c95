"""A only, filesystem store: many live sessions, and ``flask session cleanup`` under load.

Runs on the first server of ``--servers`` (the production server by default).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from .apps import Running
from .client import collect_cookies, read_counter
from .common import BenchError, log
from .context import Ctx
from .load import write_cookie_file
from .scenarios import start_apps, warm_up
from .servers import Server

POPULATED_ENOUGH = 0.9  # share of the cookieless POSTs that must succeed
EXPIRED_AGO = 3600  # s: how far into the past an expired session's mtime is moved
CLEANUP_LOAD_START = 0.5  # s of load before the cleanup command starts


def session_files(directory: Path) -> list[Path]:
    """Files under the store's directory that hold sessions: A names them ``*.session``;
    failing that, every regular file that is not hidden, a lock or a temp file."""
    named = [Path(e.path) for e in os.scandir(directory) if e.name.endswith(".session")]
    if named:
        return named
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or name.endswith((".lock", ".tmp")) or ".tmp" in name:
                continue
            found.append(Path(root) / name)
    return found


def populate(ctx: Ctx, t: Running, total: int) -> dict:
    """Bring t's store to about ``total`` sessions with cookieless POST /inc (bounded by
    count and by --populate-timeout)."""
    have = len(t.cookies)
    want = max(0, total - have)
    info = {"target_sessions": total, "by_cookie_collection": have, "cookieless_posts": 0}
    if want:
        marker_dir = Path(tempfile.mkdtemp(prefix="markers-", dir=ctx.tmp))
        t0 = time.monotonic()
        res = ctx.wrk(
            t, "POST", "/inc", None, duration=ctx.args.populate_timeout, max_requests=want,
            marker_dir=marker_dir,
        ).run()  # fmt: skip
        info.update(
            cookieless_posts=res["ok"],
            seconds=round(time.monotonic() - t0, 1),
            rps=round(res["rps"]),
            errors=res["socket_errors"],
            non2xx=res["non2xx"],
        )
        if res["ok"] < want * POPULATED_ENOUGH:  # wrk stops by count; cut-off requests land
            raise BenchError(
                f"populating {t.name}: only {res['ok']} of {want} POST /inc succeeded"
                f" within {ctx.args.populate_timeout} s"
            )
    time.sleep(0.5)
    info["files"] = len(session_files(t.file_dir))
    return info


def run_a_only(ctx: Ctx, server: Server, which: list[str]) -> None:
    args = ctx.args
    small_n, big_n = args.small_sessions, args.big_sessions
    log(
        f"A only, {server.describe}, filesystem: {small_n:,} vs {big_n:,} live sessions"
        + (", then cleanup" if "cleanup" in which else "")
    )
    started: list[Running] = []
    try:
        for n in (small_n, big_n):
            started += start_apps(ctx, ["A"], server, "filesystem", None, tag=f"-{n}")
        small, big = started
        for t, n in ((small, small_n), (big, big_n)):
            t.cookies = collect_cookies(t, args.cookies)
            t.cookie_file = write_cookie_file(ctx.tmp / f"A-{n}.cookies", t.cookies)
            info = populate(ctx, t, n)
            ctx.a_only.setdefault("populate", {})[str(n)] = info
            log(f"  A at {n:,}: {info}")
            warm_up(ctx, t)
        if "live" in which:
            for rnd in range(1, args.rounds + 1):
                for t, n in ((small, small_n), (big, big_n)):
                    res = ctx.timed(t, "POST", "/inc", t.cookie_file)
                    ctx.record(
                        t, f"live-{n}", f"POST /inc, {n:,} sessions", rnd, res, live_sessions=n
                    )
        small.stop()
        if "cleanup" in which:
            ctx.a_only["cleanup"] = run_cleanup(ctx, big)
            ctx.a_only["cleanup"]["server"] = server.name
    finally:
        for t in started:
            t.stop()


def run_cleanup(ctx: Ctx, t: Running) -> dict:
    """Expire half of t's session files, then run the real cleanup command while wrk
    keeps POST /inc going over fresh live cookies."""
    args = ctx.args
    files = sorted(session_files(t.file_dir))
    past = time.time() - EXPIRED_AGO
    expired = files[::2]
    for p in expired:
        os.utime(p, (past, past))
    log(f"  cleanup: {len(files):,} session files, {len(expired):,} expired (mtime one hour ago)")
    # Fresh, live cookies for the load during cleanup (some old ones were just expired).
    t.cookies = collect_cookies(t, args.cookies)
    t.cookie_file = write_cookie_file(ctx.tmp / "A-cleanup.cookies", t.cookies)
    baseline = ctx.timed(t, "POST", "/inc", t.cookie_file)
    log(
        f"  baseline before cleanup: {baseline['rps']:.0f} req/s, p99 {baseline['p99_ms']:.2f} ms,"
        f" max {baseline['max_ms']:.2f} ms"
    )
    cmd = [str(t.app.python), "-m", "flask", "--app", "app", "session", "cleanup"]
    if args.cleanup_nice:
        cmd = ["nice", "-n", str(args.cleanup_nice), *cmd]
    meter = ctx.meter()
    load = ctx.wrk(t, "POST", "/inc", t.cookie_file, duration=args.cleanup_timeout + 5).start()
    time.sleep(CLEANUP_LOAD_START)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ctx.repo, env=t.proc.env, capture_output=True, text=True,
            timeout=args.cleanup_timeout,
        )  # fmt: skip
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, err = None, f"timed out after {args.cleanup_timeout} s"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    took = time.monotonic() - t0
    load.interrupt()
    during = load.finish()
    during["other_cpu"] = meter.share()  # includes the cleanup command itself
    left = len(session_files(t.file_dir))
    alive = sum(1 for c in t.cookies if (read_counter(t, c) or 0) > 0)
    result = {
        "command": shlex.join(cmd),
        "exit_code": rc,
        "seconds": round(took, 2),
        "stdout": out.strip()[-2000:],
        "stderr": err.strip()[-2000:],
        "files_before": len(files),
        "expired": len(expired),
        "files_after": left,
        "live_cookies_checked": len(t.cookies),
        "live_cookies_alive": alive,
        "baseline": {k: v for k, v in baseline.items() if k != "raw"},
        "during": {k: v for k, v in during.items() if k != "raw"},
        "max_over_baseline_p99": during["max_ms"] / baseline["p99_ms"]
        if baseline["p99_ms"]
        else None,
    }
    log(
        f"  cleanup exit {rc} in {took:.2f} s; files {len(files):,} -> {left:,};"
        f" during: {during['rps']:.0f} req/s, p99 {during['p99_ms']:.2f} ms,"
        f" max {during['max_ms']:.2f} ms"
    )
    return result
