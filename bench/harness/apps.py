"""The four apps under test, and one of them running on one server for one store.

A  this service (``app:app``, this repository's flask_session), from the project's .venv
B  the seed's recipe on PyPI Flask-Session 0.8, from bench/.venv-flask-session
C  plain Flask answering the same JSON with no session at all: the ceiling
D  plain Flask plus exactly one round trip to the same store through the same client
   library as A (bench/apps/floor.py), from the project's .venv: the floor under any
   session layer that needs one round trip per request
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .common import APPS, BENCH_VENV, BenchError, log, tail
from .processes import Proc, clean_env
from .servers import Server

NAMES = ("A", "B", "C", "D")
DESCRIPTIONS = {
    "A": "this service (`app:app`, this repo's flask_session)",
    "B": "Flask-Session 0.8 seed demo (`session['counter'] += 1`)",
    "C": "plain Flask, no session extension (the ceiling)",
    "D": "plain Flask + one round trip to the same store through the same client (the floor)",
}


def a_env(store: str, file_dir: Path, address: str | None) -> dict[str, str]:
    env = {
        "FLASK_SESSION_TYPE": store,
        "FLASK_SESSION_FILE_DIR": str(file_dir),
        # from_prefixed_env parses values as JSON; a leading letter keeps this a string.
        "FLASK_SECRET_KEY": "bench-" + secrets.token_hex(16),
    }
    if store == "redis" and address:
        env["FLASK_SESSION_REDIS_URL"] = address
    elif store == "sqlite":
        env["FLASK_SESSION_TYPE"] = "sqlalchemy"
        env["FLASK_SESSION_SQLALCHEMY_URL"] = f"sqlite:///{file_dir}/sessions.db"
    elif store == "postgresql" and address:
        env["FLASK_SESSION_TYPE"] = "sqlalchemy"
        env["FLASK_SESSION_SQLALCHEMY_URL"] = address
        env["FLASK_SESSION_SQLALCHEMY_TABLE"] = "a_sessions"  # B uses 0.8's "sessions"
    elif store == "memcached" and address:
        env["FLASK_SESSION_MEMCACHED_SERVERS"] = address
        env["FLASK_SESSION_KEY_PREFIX"] = "a:"  # B uses 0.8's "session:"
    return env


def b_env(store: str, file_dir: Path, address: str | None) -> dict[str, str]:
    env = {"BENCH_SESSION_TYPE": store, "BENCH_SESSION_DIR": str(file_dir)}
    if store == "sqlite":
        env["BENCH_SESSION_TYPE"] = "sqlalchemy"
        env["BENCH_SQLALCHEMY_URL"] = f"sqlite:///{file_dir}/sessions.db"
    elif store == "postgresql" and address:
        env["BENCH_SESSION_TYPE"] = "sqlalchemy"
        env["BENCH_SQLALCHEMY_URL"] = address
    elif store == "memcached" and address:
        env["BENCH_MEMCACHED_SERVERS"] = address
    elif address:
        env["BENCH_REDIS_URL"] = address
    return env


def c_env(store: str, file_dir: Path, address: str | None) -> dict[str, str]:
    return {}


def d_env(store: str, file_dir: Path, address: str | None) -> dict[str, str]:
    env = {"FLOOR_STORE": store, "FLOOR_DIR": str(file_dir)}
    if store == "sqlite":
        env["FLOOR_URL"] = f"sqlite:///{file_dir}/floor.db"
    elif address:
        env["FLOOR_URL"] = address
    return env


@dataclass(frozen=True)
class App:
    """How to serve one of A, B, C, D: which Python, from where, configured how."""

    name: str
    python: Path
    cwd: Path
    module: str
    env: Callable[[str, Path, str | None], dict[str, str]]
    sets_cookies: bool = True


def app_for(name: str, repo: Path) -> App:
    repo_py = repo / ".venv" / "bin" / "python"
    bench_py = BENCH_VENV / "bin" / "python"
    return {
        "A": App("A", repo_py, repo, "app:app", a_env),
        "B": App("B", bench_py, APPS, "flask_session_demo:app", b_env),
        "C": App("C", bench_py, APPS, "plain_flask:app", c_env, sets_cookies=False),
        "D": App("D", repo_py, APPS, "floor:app", d_env),
    }[name]


def unavailable(name: str, repo: Path, servers: list[Server]) -> str | None:
    """Why app ``name`` cannot run (None when it can); runs ``make venv`` when A or D
    lack the project's .venv."""
    app = app_for(name, repo)
    if name == "A" and not (repo / "app.py").exists():
        return f"{repo / 'app.py'} does not exist"
    if name in ("A", "D") and not app.python.exists():
        makefile = repo / "Makefile"
        if makefile.exists() and "\nvenv:" in "\n" + makefile.read_text():
            log(f"target {name}: .venv missing; running `make venv`")
            subprocess.run(["make", "venv"], cwd=repo, check=False)
        if not app.python.exists():
            return f"{app.python} is missing (create it with `make venv`)"
    modules = ", ".join(["flask", *(s.name for s in servers)])
    res = subprocess.run(
        [str(app.python), "-c", f"import {modules}"], cwd=app.cwd, capture_output=True
    )
    if res.returncode != 0:
        return f"{app.python} cannot import {modules}: {res.stderr.decode()[-300:]}"
    return None


@dataclass
class Running:
    """One app served by one server for one store, and what the harness learnt of it."""

    app: App
    server: Server
    store: str
    file_dir: Path
    proc: Proc
    port: int
    health: dict = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    cookie_file: Path | None = None

    @property
    def name(self) -> str:
        return self.app.name

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sets_cookies(self) -> bool:
        return self.app.sets_cookies

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise BenchError(
                    f"target {self.name} ({self.server.name}, {self.store}) exited during"
                    f" start-up:\n{tail(self.proc.log_path)}"
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
            f"target {self.name} ({self.server.name}, {self.store}) not healthy after"
            f" {timeout:.0f} s ({last}):\n{tail(self.proc.log_path)}"
        )

    def stop(self) -> None:
        self.proc.stop()


def launch(
    app: App, server: Server, store: str, file_dir: Path, address: str | None, log_path: Path
) -> Running:
    """Start ``app`` on ``server`` (not yet waited for: see Running.wait_healthy)."""
    from tests.support.ports import free_port

    port = free_port()
    proc = Proc(
        f"{app.name}-{server.name}-{store}",
        server.command(app.python, app.module, port),
        app.cwd,
        clean_env(app.env(store, file_dir, address)),
        log_path,
    )
    proc.start()
    return Running(app, server, store, file_dir, proc, port)
