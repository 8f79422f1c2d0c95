#!/usr/bin/env python3
"""Benchmark harness: this service (A) against Flask-Session 0.8 (B) and plain Flask (C).

Start it with ``bench/run`` (which sets up wrk, redis-server and the bench virtualenv and
then runs this file with the bench venv's Python). See bench/README.md for what it measures.

Every server binds 127.0.0.1 on a free port and is stopped at the end; every load run is
bounded in time (wrk -d, plus a hard subprocess timeout) and, where it creates data, in
requests too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import math
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
DEFAULT_REPO = BENCH.parent
LUA = BENCH / "wrk" / "session.lua"
GUNICORN_CONF = BENCH / "gunicorn.bench.conf.py"
APPS = BENCH / "apps"
BENCH_VENV = BENCH / ".venv-flask-session"
RESULTS = BENCH / "results"

TARGETS = {
    "A": "this service (`app:app`, this repo's flask_session)",
    "B": "Flask-Session 0.8 seed demo (`session['counter'] += 1`)",
    "C": "plain Flask, no session extension (the ceiling)",
}
STORES = ("filesystem", "redis", "sqlite", "postgresql", "memcached")
BUSY = 0.10  # share of CPU taken by other processes above which a run is flagged as noisy
GUNICORN_DESC = "4 workers x 4 threads, gthread, 127.0.0.1 (bench/gunicorn.bench.conf.py)"


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


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without anything that could change what a target runs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("PYTHONPATH", "PYTHONHOME", "GUNICORN_CMD_ARGS", "VIRTUAL_ENV", "WEB_CONCURRENCY")
        and not k.startswith(("FLASK_", "BENCH_"))
    }
    env.update(extra)
    return env


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Proc:
    """A child process in its own process group, stopped by that group's id."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path):
        self.name, self.cmd, self.cwd, self.env, self.log_path = name, cmd, cwd, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        logf.write(f"$ (cd {self.cwd} && {shlex.join(self.cmd)})\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logf.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the child's pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass


class Redis(Proc):
    def __init__(self, workdir: Path, log_path: Path):
        self.port = free_port()
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        super().__init__("redis", cmd, workdir, clean_env({}), log_path)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"redis-server exited:\n{tail(self.log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError("redis-server did not answer PING")


@dataclass
class Target:
    name: str  # A, B or C
    python: Path
    cwd: Path
    module: str
    store_env: callable  # (store, file_dir, server) -> dict; server: the store's URL/address
    store: str = ""
    server: Proc | None = None
    port: int = 0
    cookies: list[str] = field(default_factory=list)
    sets_cookies: bool = True
    health: dict = field(default_factory=dict)
    file_dir: Path | None = None
    cookie_file: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, store: str, file_dir: Path, server: str | None, log_path: Path, tag: str = ""
    ) -> None:
        self.store, self.file_dir = store, file_dir
        self.port = free_port()
        cmd = [
            str(self.python),
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{self.port}",
            self.module,
        ]
        env = clean_env(self.store_env(store, file_dir, server))
        self.server = Proc(f"{self.name}{tag}", cmd, self.cwd, env, log_path)
        self.server.start()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise BenchError(
                    f"target {self.name} ({self.store}) exited during start-up:\n"
                    f"{tail(self.server.log_path)}"
                )
            try:
                r = requests.get(self.base + "/healthz", timeout=2)
                if r.status_code == 200:
                    try:
                        self.health = r.json()
                    except ValueError:
                        self.health = {"body": r.text[:200]}
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        raise BenchError(
            f"target {self.name} ({self.store}) not healthy after {timeout:.0f} s"
            f" ({last}):\n{tail(self.server.log_path)}"
        )

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def a_env(store: str, file_dir: Path, server: str | None) -> dict[str, str]:
    env = {
        "FLASK_SESSION_TYPE": store,
        "FLASK_SESSION_FILE_DIR": str(file_dir),
        # from_prefixed_env parses values as JSON; a leading letter keeps this a string.
        "FLASK_SECRET_KEY": "bench-" + secrets.token_hex(16),
    }
    if store == "redis" and server:
        env["FLASK_SESSION_REDIS_URL"] = server
    elif store == "sqlite":
        env["FLASK_SESSION_TYPE"] = "sqlalchemy"
        env["FLASK_SESSION_SQLALCHEMY_URL"] = f"sqlite:///{file_dir}/sessions.db"
    elif store == "postgresql" and server:
        env["FLASK_SESSION_TYPE"] = "sqlalchemy"
        env["FLASK_SESSION_SQLALCHEMY_URL"] = server
        env["FLASK_SESSION_SQLALCHEMY_TABLE"] = "a_sessions"  # B uses 0.8's "sessions"
    elif store == "memcached" and server:
        env["FLASK_SESSION_MEMCACHED_SERVERS"] = server
        env["FLASK_SESSION_KEY_PREFIX"] = "a:"  # B uses 0.8's "session:"
    return env


def b_env(store: str, file_dir: Path, server: str | None) -> dict[str, str]:
    env = {"BENCH_SESSION_TYPE": store, "BENCH_SESSION_DIR": str(file_dir)}
    if store == "sqlite":
        env["BENCH_SESSION_TYPE"] = "sqlalchemy"
        env["BENCH_SQLALCHEMY_URL"] = f"sqlite:///{file_dir}/sessions.db"
    elif store == "postgresql" and server:
        env["BENCH_SESSION_TYPE"] = "sqlalchemy"
        env["BENCH_SQLALCHEMY_URL"] = server
    elif store == "memcached" and server:
        env["BENCH_MEMCACHED_SERVERS"] = server
    elif server:
        env["BENCH_REDIS_URL"] = server
    return env


def c_env(store: str, file_dir: Path, server: str | None) -> dict[str, str]:
    return {}


REDIS_DB = {"A": 0, "B": 1, "C": 2}


def make_target(name: str, repo: Path) -> Target:
    bench_py = BENCH_VENV / "bin" / "python"
    if name == "A":
        return Target("A", repo / ".venv" / "bin" / "python", repo, "app:app", a_env)
    if name == "B":
        return Target("B", bench_py, APPS, "flask_session_demo:app", b_env)
    return Target("C", bench_py, APPS, "plain_flask:app", c_env, sets_cookies=False)


def a_unavailable(repo: Path) -> str | None:
    """Why target A cannot run yet (None when it can); runs `make venv` when that helps."""
    if not (repo / "app.py").exists():
        return f"{repo / 'app.py'} does not exist yet (the service is not written)"
    py = repo / ".venv" / "bin" / "python"
    if not py.exists():
        makefile = repo / "Makefile"
        if makefile.exists() and "\nvenv:" in "\n" + makefile.read_text():
            log("target A: .venv missing; running `make venv`")
            res = subprocess.run(["make", "venv"], cwd=repo)
            if res.returncode != 0 or not py.exists():
                return "`make venv` failed, so .venv/bin/python is missing"
        else:
            return f"{py} is missing (create it with `make venv`)"
    res = subprocess.run([str(py), "-c", "import gunicorn, flask"], cwd=repo, capture_output=True)
    if res.returncode != 0:
        return f"{py} cannot import gunicorn and flask: {res.stderr.decode()[-300:]}"
    return None


# --------------------------------------------------------------------------- noise meter

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in parts[:8])
    # irq/softirq time is left out: loopback traffic between wrk and the servers is mostly
    # softirq work that no process is charged for, and it is ours, not a neighbour's.
    return user + nice + system + steal


def _group_ticks(pgids: set[int]) -> int:
    """CPU ticks used so far by the live processes in these process groups (our servers)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids:  # fields after "(comm)": state ppid pgrp ...
            total += int(fields[11]) + int(fields[12])  # utime stime
    return total


def _own_seconds() -> float:
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # kids: reaped wrk runs


class CpuMeter:
    """How much CPU processes that are not part of the benchmark took during a run.

    Busy time of the whole machine minus that of our servers, redis, wrk and this runner,
    as a share of all cores: a busy neighbour makes the figures noisy, and this says so.
    """

    def __init__(self, pgids: set[int]):
        self.pgids = pgids
        self.t0 = time.monotonic()
        self.busy0, self.group0, self.own0 = _busy_ticks(), _group_ticks(pgids), _own_seconds()

    def share(self) -> float:
        elapsed = time.monotonic() - self.t0
        busy = (_busy_ticks() - self.busy0) / _CLK_TCK
        ours = (_group_ticks(self.pgids) - self.group0) / _CLK_TCK + _own_seconds() - self.own0
        return max(0.0, busy - ours) / (elapsed * (os.cpu_count() or 1)) if elapsed > 0 else 0.0


# --------------------------------------------------------------------------- HTTP helpers


def set_cookie_pairs(resp: requests.Response) -> str | None:
    pairs = [h.split(";", 1)[0].strip() for h in resp.raw.headers.getlist("Set-Cookie")]
    pairs = [p for p in pairs if "=" in p and p.split("=", 1)[1]]
    return "; ".join(pairs) if pairs else None


def new_cookie(target: Target) -> str:
    """One POST /inc with no cookie; the session cookie the target set (or a stand-in)."""
    with requests.Session() as s:
        r = s.post(target.base + "/inc", timeout=10)
    if r.status_code != 200:
        raise BenchError(
            f"target {target.name}: POST /inc without a cookie gave HTTP {r.status_code}"
        )
    cookie = set_cookie_pairs(r)
    if cookie is None:
        if target.sets_cookies:
            raise BenchError(f"target {target.name}: POST /inc for a new client set no cookie")
        # C keeps no session: send a cookie of the same size so requests weigh the same.
        cookie = "session=" + secrets.token_urlsafe(32)
    return cookie


def collect_cookies(target: Target, n: int) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        cookies = list(pool.map(lambda _: new_cookie(target), range(n)))
    if len(set(cookies)) != n:
        raise BenchError(
            f"target {target.name}: {n} new clients got only {len(set(cookies))} distinct cookies"
        )
    return cookies


def read_counter(target: Target, cookie: str) -> int | None:
    r = requests.get(target.base + "/counter", headers={"Cookie": cookie}, timeout=10)
    if r.status_code != 200:
        return None
    try:
        return int(r.json()["counter"])
    except (ValueError, KeyError, TypeError):
        return None


def settled_counter(target: Target, cookie: str, timeout: float = 10) -> int | None:
    """GET /counter until two reads 0.3 s apart agree: requests wrk cut off may still run."""
    deadline = time.monotonic() + timeout
    last = read_counter(target, cookie)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read_counter(target, cookie)
        if now == last:
            return now
        last = now
    return last


def shared_uniqueness(target: Target, clients: int = 32, each: int = 16) -> dict:
    """`clients` keep-alive clients start together and POST /shared/inc `each` times: how
    many distinct numbers came back. A correct shared counter gives one per answer; a module
    global gives each worker process its own sequence, so numbers repeat across workers."""
    barrier = threading.Barrier(clients, timeout=30)

    def one(_: int) -> list[int | None]:
        out: list[int | None] = []
        with requests.Session() as s:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            for _ in range(each):
                try:
                    r = s.post(target.base + "/shared/inc", timeout=30)
                    out.append(int(r.json()["counter"]) if r.status_code == 200 else None)
                except (requests.RequestException, ValueError, KeyError, TypeError):
                    out.append(None)
        return out

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        values = [v for vs in pool.map(one, range(clients)) for v in vs]
    ok = [v for v in values if v is not None]
    return {"requests": len(values), "ok": len(ok), "unique": len(set(ok))}


# --------------------------------------------------------------------------- wrk


class Wrk:
    """One wrk run over session.lua; finish() parses the JSON line printed by done()."""

    def __init__(
        self,
        url: str,
        method: str,
        path: str,
        *,
        cookie_file: Path | None,
        duration: int,
        connections: int,
        threads: int,
        timeout_s: int,
        max_requests: int = 0,
        marker_dir: Path | None = None,
    ):
        self.threads = max(1, min(threads, connections))
        self.duration = duration
        per_thread = math.ceil(max_requests / self.threads) if max_requests else 0
        self.marker = str(marker_dir / "stopped-") if marker_dir else ""
        self.marker_dir = marker_dir
        self.cmd = [
            "wrk",
            f"-t{self.threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(LUA),
            url + path,
            "--",
            str(cookie_file) if cookie_file else "-",
            method,
            path,
            str(per_thread),
            str(self.threads),
            self.marker,
        ]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Wrk:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        return self

    def interrupt(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # wrk stops its threads and still runs done()

    def all_threads_stopped(self) -> bool:
        if not self.marker_dir:
            return False
        return len(list(self.marker_dir.glob("stopped-*"))) >= self.threads

    def finish(self) -> dict:
        assert self.proc is not None
        deadline = time.monotonic() + self.duration + 30
        while self.proc.poll() is None:
            if self.all_threads_stopped():
                self.interrupt()
            if time.monotonic() > deadline:
                self.proc.kill()
                break
            time.sleep(0.05)
        out, err = self.proc.communicate(timeout=30)
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                return summarize_wrk(json.loads(line[len("BENCH_JSON ") :]))
        raise BenchError(
            f"wrk printed no BENCH_JSON line (exit {self.proc.returncode}):\n"
            f"$ {shlex.join(self.cmd)}\n{out[-2000:]}\n{err[-2000:]}"
        )

    def run(self) -> dict:
        return self.start().finish()


def summarize_wrk(raw: dict) -> dict:
    e = raw["errors"]
    secs = raw["duration_us"] / 1e6 or 1e-9
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 3),
        "rps": raw["requests"] / secs,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "socket_errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
        "non2xx": e["status"],
        "ok": raw["requests"] - e["status"],
        "raw": raw,
    }


def write_cookie_file(path: Path, cookies: list[str]) -> Path:
    path.write_text("".join(c + "\n" for c in cookies))
    return path


# --------------------------------------------------------------------------- the runs


@dataclass
class Ctx:
    args: argparse.Namespace
    repo: Path
    tmp: Path
    logs: Path
    runs: list = field(default_factory=list)  # one dict per timed wrk run
    checks: list = field(default_factory=list)  # correctness observations
    a_only: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    started: list = field(default_factory=list)  # every Proc, for the final stop

    def meter(self) -> CpuMeter:
        return CpuMeter({p.proc.pid for p in self.started if p.alive()})

    def timed(self, target: Target, method: str, path: str, cookie_file: Path | None) -> dict:
        """One timed wrk run, with the share of CPU other processes took meanwhile."""
        meter = self.meter()
        res = self.wrk(target, method, path, cookie_file).run()
        res["other_cpu"] = meter.share()
        return res

    def wrk(
        self,
        target: Target,
        sc_method: str,
        path: str,
        cookie_file: Path | None,
        duration: int | None = None,
        connections: int | None = None,
        **kw,
    ) -> Wrk:
        duration = duration or self.args.duration
        # A count bound as well as -d: far above what 2 cores serve, it only stops a runaway.
        kw.setdefault("max_requests", duration * 100_000)
        return Wrk(
            target.base,
            sc_method,
            path,
            cookie_file=cookie_file,
            duration=duration,
            connections=connections or self.args.connections,
            threads=self.args.wrk_threads,
            timeout_s=self.args.wrk_timeout,
            **kw,
        )


def start_targets(
    ctx: Ctx, names: list[str], store: str, backend: Any = None, tag: str = ""
) -> list[Target]:
    targets = []
    for name in names:
        t = make_target(name, ctx.repo)
        file_dir = ctx.tmp / f"{store}-{name}{tag}-sessions"
        file_dir.mkdir(parents=True, exist_ok=True)
        url = backend_address(backend, store, name)
        t.start(store, file_dir, url, ctx.logs / f"{store}-{name}{tag}.log", tag)
        ctx.started.append(t.server)
        targets.append(t)
    for t in targets:
        t.wait_healthy()
        if t.name == "B":
            fs_file = str(t.health.get("flask_session_file", ""))
            if (
                fs_file.startswith(str(ctx.repo / "flask_session"))
                or "site-packages" not in fs_file
            ):
                raise BenchError(
                    f"target B imported flask_session from {fs_file!r}, not from PyPI's"
                    " Flask-Session in bench/.venv-flask-session"
                )
        log(f"  {t.name} ({store}) up on {t.base}  {json.dumps(t.health)[:160]}")
    return targets


def start_backend(ctx: Ctx, store: str) -> Any:
    """The server a store needs (None for the file-based ones), started and ready.

    PostgreSQL and memcached are started with the test suite's helpers (tests/support),
    which run Debian's binaries on a free loopback port in a temporary directory.
    """
    if store == "redis":
        redis = Redis(ctx.tmp, ctx.logs / "redis.log")
        redis.start()
        ctx.started.append(redis)
        redis.wait_ready()
        return redis
    if store in ("postgresql", "memcached"):
        if str(ctx.repo) not in sys.path:
            sys.path.insert(0, str(ctx.repo))  # for tests.support only; never flask_session
        if store == "postgresql":
            from tests.support.postgres_server import PostgresServer

            return PostgresServer().start()
        from tests.support.memcached_server import MemcachedServer

        return MemcachedServer(memory_mb=256).start()
    return None


def stop_backend(backend: Any) -> None:
    if isinstance(backend, Redis):
        backend.stop()
    else:
        backend.close()


def backend_address(backend: Any, store: str, target: str) -> str | None:
    """What target ``target`` is told to use: a Redis URL (its own database), the
    PostgreSQL URL (A and B use different tables), or memcached's address (different key
    prefixes)."""
    if backend is None:
        return None
    if isinstance(backend, Redis):
        return backend.url(REDIS_DB[target])
    if store == "postgresql":
        return backend.url
    return backend.servers


def warm_up(ctx: Ctx, t: Target) -> None:
    # One request per route so that lazy set-up happens before timing; not /shared/inc,
    # whose counter the shared check wants untouched (the check then warms that route up).
    for sc in SCENARIOS[:2]:
        requests.request(sc.method, t.base + sc.path, headers={"Cookie": t.cookies[0]}, timeout=10)
    ctx.wrk(t, "POST", "/inc", t.cookie_file, duration=ctx.args.warmup).run()


def record(
    ctx: Ctx, store: str, sc_key: str, label: str, target: str, rnd: int, res: dict, **extra
) -> dict:
    row = {
        "store": store,
        "scenario": sc_key,
        "label": label,
        "target": target,
        "round": rnd,
        **{k: v for k, v in res.items() if k != "raw"},
        "wrk": res["raw"],
        **extra,
    }
    ctx.runs.append(row)
    log(
        f"    {store:10s} {label:22s} {target}  round {rnd}: {res['rps']:8.0f} req/s"
        f"  p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:7.2f} ms"
        f"  err {res['socket_errors']}/{res['non2xx']}  other CPU {res.get('other_cpu', 0):.0%}"
    )
    return row


def run_store(ctx: Ctx, store: str, names: list[str], scenarios: list[Scenario]) -> None:
    args = ctx.args
    log(f"store {store}: starting {', '.join(names)}")
    backend = None
    targets: list[Target] = []
    try:
        backend = start_backend(ctx, store)
        targets = start_targets(ctx, names, store, backend)
        for t in targets:
            t.cookies = collect_cookies(t, args.cookies)
            t.cookie_file = write_cookie_file(ctx.tmp / f"{store}-{t.name}.cookies", t.cookies)
            warm_up(ctx, t)
        log(f"  {args.cookies} cookies per target collected, warmed up ({args.warmup} s each)")
        if any(sc.key == "shared" for sc in scenarios):
            # Before any POST /shared/inc (warm-up sends none): every worker's module global is
            # still 0, as after a deploy, and warm-up has made sure every worker is up.
            for t in targets:
                u = shared_uniqueness(t)
                ctx.checks.append({"kind": "shared", "store": store, "target": t.name, **u})
                log(
                    f"  {t.name} ({store}) {u['requests']} concurrent POST /shared/inc on a fresh"
                    f" server: {u['unique']} distinct numbers in {u['ok']} answers"
                )
        for sc in scenarios:
            for rnd in range(1, args.rounds + 1):
                for t in targets:
                    if sc.one_cookie:
                        run_contention(ctx, store, sc, t, rnd)
                    else:
                        res = ctx.timed(t, sc.method, sc.path, t.cookie_file)
                        record(ctx, store, sc.key, sc.label, t.name, rnd, res)
        if store == "filesystem":
            for t in targets:  # sanity: B's store prunes past 500 files, which would skew it
                ctx.checks.append(
                    {
                        "kind": "files",
                        "store": store,
                        "target": t.name,
                        "files": sum(len(fs) for _, _, fs in os.walk(t.file_dir)),
                    }
                )
    finally:
        for t in targets:
            t.stop()
        if backend is not None:
            stop_backend(backend)


def run_contention(ctx: Ctx, store: str, sc: Scenario, t: Target, rnd: int) -> None:
    cookie = new_cookie(t)
    cookie_file = write_cookie_file(ctx.tmp / f"{store}-{t.name}-contention-{rnd}.cookie", [cookie])
    before = read_counter(t, cookie) if t.sets_cookies else None
    res = ctx.timed(t, sc.method, sc.path, cookie_file)
    after = settled_counter(t, cookie) if t.sets_cookies else None
    extra = {}
    if before is not None and after is not None:
        extra = {"counter_before": before, "counter_after": after, "increments": after - before}
    record(ctx, store, sc.key, sc.label, t.name, rnd, res, **extra)


# --------------------------------------------------------------------------- A only


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


def populate(ctx: Ctx, t: Target, total: int) -> dict:
    """Bring t's store to about `total` sessions with cookieless POST /inc (bounded by count
    and by --populate-timeout)."""
    have = len(t.cookies)
    want = max(0, total - have)
    info = {"target_sessions": total, "by_cookie_collection": have, "cookieless_posts": 0}
    if want:
        marker_dir = Path(tempfile.mkdtemp(prefix="markers-", dir=ctx.tmp))
        t0 = time.monotonic()
        res = ctx.wrk(
            t,
            "POST",
            "/inc",
            None,
            duration=ctx.args.populate_timeout,
            max_requests=want,
            marker_dir=marker_dir,
        ).run()
        info.update(
            cookieless_posts=res["ok"],
            seconds=round(time.monotonic() - t0, 1),
            rps=round(res["rps"]),
            errors=res["socket_errors"],
            non2xx=res["non2xx"],
        )
        if res["ok"] < want * 0.9:  # wrk stops by count; requests it cut off still land
            raise BenchError(
                f"populating {t.name}: only {res['ok']} of {want} POST /inc succeeded"
                f" within {ctx.args.populate_timeout} s"
            )
    time.sleep(0.5)
    info["files"] = len(session_files(t.file_dir))
    return info


def run_a_only(ctx: Ctx, which: list[str]) -> None:
    args = ctx.args
    small_n, big_n = args.small_sessions, args.big_sessions
    log(
        f"A only, filesystem: {small_n:,} vs {big_n:,} live sessions"
        + (", then cleanup" if "cleanup" in which else "")
    )
    small = big = None
    try:
        small, big = (
            start_targets(ctx, ["A"], "filesystem", None, tag=tag)[0]
            for tag in (f"-{small_n}", f"-{big_n}")
        )
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
                    record(
                        ctx,
                        "filesystem",
                        f"live-{n}",
                        f"POST /inc, {n:,} sessions",
                        "A",
                        rnd,
                        res,
                        live_sessions=n,
                    )
        small.stop()
        if "cleanup" in which:
            ctx.a_only["cleanup"] = run_cleanup(ctx, big, big_n)
    finally:
        for t in (small, big):
            if t:
                t.stop()


def run_cleanup(ctx: Ctx, t: Target, n: int) -> dict:
    args = ctx.args
    files = sorted(session_files(t.file_dir))
    past = time.time() - 3600
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
    cmd = [str(t.python), "-m", "flask", "--app", "app", "session", "cleanup"]
    if args.cleanup_nice:
        cmd = ["nice", "-n", str(args.cleanup_nice), *cmd]
    meter = ctx.meter()
    load = ctx.wrk(t, "POST", "/inc", t.cookie_file, duration=args.cleanup_timeout + 5).start()
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ctx.repo,
            env=t.server.env,
            capture_output=True,
            text=True,
            timeout=args.cleanup_timeout,
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = None, exc.stdout or "", f"timed out after {args.cleanup_timeout} s"
        out = out.decode() if isinstance(out, bytes) else out
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


# --------------------------------------------------------------------------- reporting


def median(xs):
    return statistics.median(xs) if xs else None


def summarize(ctx: Ctx) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in ctx.runs:
        groups.setdefault((r["store"], r["scenario"], r["label"], r["target"]), []).append(r)
    rows = []
    for (store, scen, label, target), rs in groups.items():
        rows.append(
            {
                "store": store,
                "scenario": scen,
                "label": label,
                "target": target,
                "rounds": len(rs),
                "rps": median([r["rps"] for r in rs]),
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p99_ms": median([r["p99_ms"] for r in rs]),
                "socket_errors": sum(r["socket_errors"] for r in rs),
                "non2xx": sum(r["non2xx"] for r in rs),
                "other_cpu_max": max(r.get("other_cpu", 0) for r in rs),
            }
        )
    by = {(r["store"], r["scenario"], r["target"]): r for r in rows}
    for r in rows:
        for ref in ("B", "C"):
            other = by.get((r["store"], r["scenario"], ref))
            r[f"vs_{ref}"] = r["rps"] / other["rps"] if other and other["rps"] else None
    return rows


def live_name(row: dict) -> str:
    return row["label"].split(", ")[1]


def fmt_ratio(x) -> str:
    return "—" if x is None else f"{x:.2f}x"


def contention_notes(ctx: Ctx) -> list[str]:
    notes = []
    for store in STORES:
        for target in ("A", "B", "C"):
            rs = [
                r
                for r in ctx.runs
                if r["store"] == store and r["scenario"] == "contention" and r["target"] == target
            ]
            if not rs:
                continue
            if target == "C":
                notes.append(f"C ({store}): no session, nothing to check.")
                continue
            incs = [r.get("increments") for r in rs]
            if any(i is None for i in incs):
                notes.append(f"{target} ({store}): could not read the counter back.")
                continue
            ok = sum(r["ok"] for r in rs)
            inc = sum(incs)
            slack = sum(ctx.args.connections + r["socket_errors"] for r in rs)
            if inc < ok:
                verdict = f"**{ok - inc:,} increments lost ({(ok - inc) / ok:.0%})**"
            elif inc - ok <= slack:
                verdict = "exact (none lost)"
            else:
                verdict = (
                    f"**counter rose {inc - ok:,} more than the answers wrk saw**"
                    " (double counting?)"
                )
            per_round = ", ".join(f"{r['increments']:,}/{r['ok']:,}" for r in rs)
            notes.append(
                f"{target} ({store}): counter rose by {inc:,} for {ok:,} 2xx answers"
                f" ({per_round} per round): {verdict}."
            )
    return notes


def check_targets(ctx: Ctx, rows: list[dict]) -> list[tuple[str, str, str]]:
    by = {(r["store"], r["scenario"], r["target"]): r for r in rows}
    out = []

    def ratio_check(desc, store, ref, need):
        a, o = by.get((store, "inc", "A")), by.get((store, "inc", ref))
        if not a or not o:
            out.append((desc, "not measured", "—"))
            return
        x = a["rps"] / o["rps"]
        out.append((desc, f"{x:.2f}x", "met" if x >= need else "MISSED"))

    ratio_check("POST /inc, redis: A ≥ 1.5x B", "redis", "B", 1.5)
    ratio_check("POST /inc, filesystem: A ≥ 1.3x B", "filesystem", "B", 1.3)
    ratio_check("POST /inc, redis: A ≥ 0.7x C", "redis", "C", 0.7)
    for store in STORES:
        pairs = [
            (by[(store, s.key, "A")], by[(store, s.key, "B")])
            for s in SCENARIOS
            if (store, s.key, "A") in by and (store, s.key, "B") in by
        ]
        desc = f"p99, {store}: A ≤ B (every scenario)"
        if not pairs:
            out.append((desc, "not measured", "—"))
            continue
        worst = max(pairs, key=lambda p: p[0]["p99_ms"] / p[1]["p99_ms"])
        x = worst[0]["p99_ms"] / worst[1]["p99_ms"]
        out.append(
            (
                desc,
                f"worst {worst[0]['label']}: {worst[0]['p99_ms']:.1f} vs"
                f" {worst[1]['p99_ms']:.1f} ms",
                "met" if x <= 1 else "MISSED",
            )
        )
    live = sorted(
        (r for r in rows if r["scenario"].startswith("live-")),
        key=lambda r: int(r["scenario"].split("-")[1]),
    )
    if len(live) >= 2:
        x = live[-1]["rps"] / live[0]["rps"]
        out.append(
            (
                f"filesystem: {live_name(live[-1])} ≥ 0.9x {live_name(live[0])}",
                f"{x:.2f}x",
                "met" if x >= 0.9 else "MISSED",
            )
        )
    else:
        out.append(("filesystem: 100,000 live sessions ≥ 0.9x 1,000", "not measured", "—"))
    c = ctx.a_only.get("cleanup")
    if c:
        out.append(
            (
                f"cleanup of {c['files_before']:,} files < 10 s",
                f"{c['seconds']:.2f} s",
                "met" if c["exit_code"] == 0 and c["seconds"] < 10 else "MISSED",
            )
        )
        x = c["max_over_baseline_p99"]
        out.append(
            (
                "slowest request during cleanup < 2x p99",
                "—"
                if x is None
                else f"max {c['during']['max_ms']:.1f} ms = {x:.2f}x p99"
                f" {c['baseline']['p99_ms']:.1f} ms",
                "met" if x is not None and x < 2 else "MISSED",
            )
        )
    else:
        out.append(("cleanup of 100,000 files < 10 s, no request > 2x p99", "not measured", "—"))
    caveats = []
    if ctx.args.quick:
        caveats.append("quick run")
    if max((r.get("other_cpu", 0) for r in ctx.runs), default=0) > BUSY:
        caveats.append("busy machine")
    if caveats:
        note = f" ({', '.join(caveats)}: indicative only)"
        out = [(d, v, v_ if v_ == "—" else v_ + note) for d, v, v_ in out]
    return out


def markdown(ctx: Ctx, rows: list[dict], meta: dict) -> str:
    a = ctx.args
    L = []
    L.append("# Session benchmark: A (this service) vs B (Flask-Session 0.8) vs C (plain Flask)")
    L.append("")
    L.append(f"Command: `{meta['command']}` — {meta['date']}, commit {meta['git_commit']}")
    L.append("")
    L.append(
        f"Machine: {meta['cpus']} cores, {meta['platform']}, Python {meta['python']}. "
        f"Each target on gunicorn {meta['gunicorn_config']}. "
        f"Load: wrk {a.wrk_threads} threads, {a.connections} connections, "
        f"{a.duration} s per run, {a.rounds} interleaved round(s) (A, B, C, A, B, C, …), "
        f"medians; requests round-robin over {a.cookies} session cookies. "
        f"Session files in {meta['tmp_fs']} under {meta['tmp_root']}."
    )
    L.append("")
    L.append(
        "| scenario | target | median req/s | p50 ms | p99 ms | vs B | vs C | errors / non-2xx |"
    )
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    order = {s.key: i for i, s in enumerate(SCENARIOS)}

    def key(r):
        sc = r["scenario"]
        return (
            STORES.index(r["store"]),
            order.get(sc, 10 + int(sc.split("-")[1]) if "-" in sc else 99),
            r["target"],
        )

    foot_shared = False
    for r in sorted(rows, key=key):
        label = f"{r['store']}: {r['label']}"
        target = r["target"]
        if r["scenario"] == "shared" and target in ("B", "C"):
            target += " ¹"
            foot_shared = True
        if r["scenario"] == "contention" and target != "C":
            target += " ²"
        vs_b = fmt_ratio(r["vs_B"]) if not r["scenario"].startswith("live") else "—"
        vs_c = fmt_ratio(r["vs_C"]) if not r["scenario"].startswith("live") else "—"
        L.append(
            f"| {label} | {target} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
            f" {vs_b} | {vs_c} | {r['socket_errors']} / {r['non2xx']} |"
        )
    L.append("")
    L.append("Targets: " + "; ".join(f"**{k}** {v}" for k, v in TARGETS.items()) + ".")
    L.append(
        "vs B / vs C: the row's median req/s divided by B's or C's in the same scenario and store. "
        "errors: wrk socket errors (connect, read, write, timeout) summed over rounds; "
        "non-2xx: responses with status ≥ 400."
    )
    shares = [r["other_cpu"] for r in ctx.runs if "other_cpu" in r]
    if shares:
        busy = max(shares)
        L.append(
            f"Noise: processes outside the benchmark took a median {statistics.median(shares):.0%}"
            f" (at most {busy:.0%}) of the machine's CPU during the timed runs"
            + (
                " — **the machine was busy: treat these figures as rough and run again on an"
                " idle machine**."
                if busy > BUSY
                else "."
            )
        )
    L.append("")
    if foot_shared:
        shared = {(c["store"], c["target"]): c for c in ctx.checks if c["kind"] == "shared"}
        parts = []
        for (store, tname), c in sorted(
            shared.items(), key=lambda kv: (STORES.index(kv[0][0]), kv[0][1])
        ):
            parts.append(f"{tname} ({store}) {c['unique']}/{c['ok']}")
        L.append(
            "¹ B's POST /shared/inc is the seed's module-global counter and C's is the same kind of"
            " global: every gunicorn worker process has its own copy and its threads race on it,"
            " so the numbers are **not unique across clients** (wrong under several processes);"
            " they measure speed only. Distinct numbers among the answers when 32 keep-alive"
            " clients send 16 POST /shared/inc each to a freshly started, warmed-up server: "
            + (", ".join(parts) if parts else "not checked")
            + "."
        )
        L.append("")
    notes = contention_notes(ctx)
    if notes:
        L.append(
            f"² Same-session contention: {a.connections} connections all on ONE cookie, POST /inc."
            " The counter's rise (GET /counter before and after) against the 2xx answers wrk"
            f" counted (up to {a.connections} requests per round that wrk cut off at the end may"
            " still land, so a small surplus is not double counting):"
        )
        L.append("")
        L.extend(f"- {n}" for n in notes)
        L.append("")
    if ctx.a_only.get("populate"):
        L.append("## A only: filesystem store with many live sessions")
        L.append("")
        for n, info in ctx.a_only["populate"].items():
            L.append(
                f"- {int(n):,} sessions: {info['by_cookie_collection']} via cookie collection +"
                f" {info['cookieless_posts']:,} cookieless POST /inc; {info['files']:,} session"
                " files in the store directory afterwards."
            )
        L.append("")
    c = ctx.a_only.get("cleanup")
    if c:
        L.append("## A only: `flask --app app session cleanup`")
        L.append("")
        L.append(
            f"{c['files_before']:,} session files, {c['expired']:,} of them expired by setting"
            f" their mtime an hour into the past; `{c['command']}` exited {c['exit_code']} after"
            f" **{c['seconds']:.2f} s** (wall time, Python start-up included) and left"
            f" {c['files_after']:,} files (expected {c['files_before'] - c['expired']:,} live +"
            f" {c['live_cookies_checked']} sessions created for the load afterwards);"
            f" {c['live_cookies_alive']}/{c['live_cookies_checked']} live sessions under load"
            " still held their counter."
        )
        L.append("")
        L.append("| POST /inc over 200 live cookies | req/s | p50 ms | p99 ms | max ms |")
        L.append("|---|---:|---:|---:|---:|")
        for name in ("baseline", "during"):
            d = c[name]
            what = "before cleanup" if name == "baseline" else "while cleanup runs"
            L.append(
                f"| {what} | {d['rps']:,.0f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f}"
                f" | {d['max_ms']:.2f} |"
            )
        L.append("")
        if c["stdout"] or c["stderr"]:
            L.append("Cleanup output:")
            L.append("")
            L.append("```")
            L.append((c["stdout"] + ("\n" + c["stderr"] if c["stderr"] else "")).strip()[-1500:])
            L.append("```")
            L.append("")
    L.append("## Targets from issue 5")
    L.append("")
    L.append("| target | measured | verdict |")
    L.append("|---|---|---|")
    for d, v, verdict in check_targets(ctx, rows):
        L.append(f"| {d} | {v} | {verdict} |")
    L.append("")
    if ctx.skipped:
        L.append("Skipped: " + " ".join(ctx.skipped))
        L.append("")
    L.append(
        "Raw runs: `bench/results/latest.json`; chart: `bench/results/latest.png`;"
        " server logs: `bench/results/logs/`."
    )
    return "\n".join(L) + "\n"


def tool_versions(repo: Path, targets: list[str]) -> dict:
    def cmd(c, **kw):
        try:
            p = subprocess.run(c, capture_output=True, text=True, timeout=30, **kw)
            return (p.stdout + p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable: {exc}"

    probe = (
        "import importlib.metadata as m, json\nout={}\n"
        "for n in ('flask','werkzeug','gunicorn','redis','Flask-Session','cachelib','msgspec'):\n"
        "  try: out[n]=m.version(n)\n  except Exception: pass\nprint(json.dumps(out))"
    )
    v = {
        "wrk": cmd(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else None,
        "redis-server": cmd(["redis-server", "--version"]),
    }
    for name, py, cwd in (
        ("bench_venv", BENCH_VENV / "bin" / "python", APPS),
        ("repo_venv", repo / ".venv" / "bin" / "python", repo),
    ):
        if py.exists() and (name == "bench_venv" or "A" in targets):
            try:
                v[name] = json.loads(cmd([str(py), "-c", probe], cwd=cwd))
            except ValueError:
                v[name] = None
    return v


def git_commit(repo: Path) -> str:
    try:
        p = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return p.stdout.strip() + ("+dirty" if dirty else "") if p.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Interleaved wrk benchmark of this service (A) against Flask-Session 0.8 (B)"
        " and plain Flask (C), each on gunicorn 4 workers x 4 gthread threads.",
    )
    p.add_argument(
        "--targets",
        default="A,B,C",
        help="comma list of A,B,C (default A,B,C; A is"
        " skipped with a message while app.py does not exist)",
    )
    p.add_argument(
        "--stores",
        default=",".join(STORES),
        help=f"comma list (default {','.join(STORES)})",
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
        "--warmup",
        type=int,
        help="seconds of POST /inc per target before timing (default 2; quick 1)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--wrk-timeout", type=int, default=10, help="wrk per-request timeout, s (default 10)"
    )
    p.add_argument(
        "--cookies",
        type=int,
        default=200,
        help="session cookies to spread requests over (default 200)",
    )
    p.add_argument("--small-sessions", type=int, help="A only: the small store (default 1000)")
    p.add_argument(
        "--big-sessions",
        type=int,
        help="A only: the big store and the cleanup (default 100000; quick 5000)",
    )
    p.add_argument(
        "--populate-timeout",
        type=int,
        default=600,
        help="A only: seconds allowed to create the big store",
    )
    p.add_argument(
        "--cleanup-timeout",
        type=int,
        default=120,
        help="A only: seconds allowed for the cleanup command",
    )
    p.add_argument(
        "--cleanup-nice",
        type=int,
        default=0,
        help="A only: run the cleanup command under `nice -n N`, as a cron job would"
        " (default 0: same priority as the server)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round of 1 s, small session stores"
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPO,
        help="repository whose app.py is target A (default: this checkout)",
    )
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
    a.targets = [t.strip().upper() for t in a.targets.split(",") if t.strip()]
    a.stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = (
        [t for t in a.targets if t not in TARGETS]
        + [s for s in a.stores if s not in STORES]
        + [s for s in a.scenarios if s not in ALL_SCENARIOS]
    )
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    if min(a.rounds, a.duration, a.warmup, a.connections, a.wrk_threads, a.cookies) < 1:
        p.error("rounds, duration, warmup, connections, wrk threads and cookies must be at least 1")
    if not a.cookies <= a.small_sessions < a.big_sessions:
        p.error("need --cookies <= --small-sessions < --big-sessions")
    return a


def _terminated(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            log(
                f"{tool} is not installed: run bench/run (it installs it) or apt-get install {tool}"
            )
            return 2
    if not (BENCH_VENV / "bin" / "python").exists():
        log("bench/.venv-flask-session is missing: start the benchmark with bench/run")
        return 2
    results = args.results.resolve()
    logs = results / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="session-bench-"))
    ctx = Ctx(args=args, repo=args.repo, tmp=tmp, logs=logs)

    names = list(args.targets)
    if "A" in names:
        why = a_unavailable(args.repo)
        if why:
            msg = f"Target A skipped: {why}."
            if any(s in args.scenarios for s in A_ONLY):
                msg += " The A-only scenarios (live sessions, cleanup) are skipped with it."
            log(msg)
            ctx.skipped.append(msg)
            names.remove("A")
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    a_only = [s for s in A_ONLY if s in args.scenarios]
    if "A" in names and a_only and "filesystem" not in args.stores:
        ctx.skipped.append("A-only scenarios need the filesystem store (--stores filesystem).")
        a_only = []

    # Stop children on SIGTERM too (Ctrl-C arrives as KeyboardInterrupt).
    signal.signal(signal.SIGTERM, _terminated)
    status = 0
    started = time.time()
    try:
        if names and scenarios:
            for store in args.stores:
                run_store(ctx, store, names, scenarios)
        if "A" in names and a_only:
            run_a_only(ctx, a_only)
    except (BenchError, requests.RequestException) as exc:
        log(f"FAILED: {exc}")
        ctx.skipped.append(f"Run aborted: {str(exc).splitlines()[0]}")
        status = 1
    except KeyboardInterrupt:
        log("interrupted")
        ctx.skipped.append("Run interrupted.")
        status = 130
    finally:
        for proc in ctx.started:
            proc.stop()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    rows = summarize(ctx)
    tmp_fs = (
        subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE", "--target", tempfile.gettempdir()],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or "?"
    )
    meta = {
        "command": "bench/run" + (" " + shlex.join(argv) if argv else ""),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "git_commit": git_commit(args.repo),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "gunicorn_config": GUNICORN_DESC,
        "tmp_root": tempfile.gettempdir(),
        "tmp_fs": tmp_fs,
        "elapsed_s": round(time.time() - started, 1),
        "versions": tool_versions(args.repo, names),
    }
    shares = [r["other_cpu"] for r in ctx.runs if "other_cpu" in r]
    meta["other_cpu_median"] = statistics.median(shares) if shares else None
    meta["other_cpu_max"] = max(shares) if shares else None
    meta["busy"] = bool(shares) and max(shares) > BUSY
    md = markdown(ctx, rows, meta)
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.md").write_text(md)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (results / "latest.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "config": cfg,
                "summary": rows,
                "runs": ctx.runs,
                "checks": ctx.checks,
                "a_only": ctx.a_only,
                "skipped": ctx.skipped,
                "exit_status": status,
            },
            indent=1,
        )
    )
    if rows:
        try:
            from chart import write_chart

            write_chart(rows, meta, results / "latest.png")
        except ImportError as exc:
            log(f"no chart: {exc} (matplotlib lives in bench/.venv-flask-session; use bench/run)")
    print(md)
    log(
        f"wrote {results / 'latest.md'}, latest.json"
        + (", latest.png" if rows else "")
        + f" in {meta['elapsed_s']:.0f} s"
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
