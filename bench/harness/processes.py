"""Child processes: the app servers, and the stores they talk to.

An app server runs in its own process group and is stopped with the test suite's
``stop_process`` (SIGTERM, then SIGKILL for the whole group), and is tracked so that an
aborted run leaves nothing behind. The stores (redis-server, PostgreSQL, memcached) are
started with the test suite's helpers in tests/support: real binaries on free loopback
ports in temporary directories.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from .common import BenchError, use_test_support

#: variables that would change what a server runs or how, whoever set them
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "GUNICORN_CMD_ARGS", "VIRTUAL_ENV", "WEB_CONCURRENCY")
_FOREIGN_PREFIXES = ("FLASK_", "BENCH_", "GRANIAN_", "SESSIONAPP_", "FLOOR_")

#: what each app is told to use on a store server: its own Redis database; on PostgreSQL
#: and memcached, A, B and D use different tables and key prefixes (set by their apps)
REDIS_DB = {"A": 0, "B": 1, "C": 2, "D": 3}

#: stores that need a server process (the others are files)
SERVER_STORES = ("redis", "postgresql", "memcached")
MEMCACHED_MEMORY_MB = 256


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without anything that could change what a server runs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _FOREIGN_ENV and not k.startswith(_FOREIGN_PREFIXES)
    }
    env.update(extra)
    return env


class Proc:
    """A child process in its own process group, its output appended to a log file."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path):
        self.name, self.cmd, self.cwd, self.env, self.log_path = name, cmd, cwd, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive() and self.proc else None

    def start(self) -> None:
        from tests.support.procs import track

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
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
        track(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        from tests.support.procs import stop_process, untrack

        if self.proc is not None:
            stop_process(self.proc, timeout=15)
            untrack(self.proc)


class StoreServer:
    """The server a store needs, or nothing for the file stores (filesystem, sqlite)."""

    def __init__(self, store: str, repo: Path):
        self.store = store
        self.helper: Any = None
        if store not in SERVER_STORES:
            return
        use_test_support(repo)
        try:
            if store == "redis":
                from tests.support.redis_server import RedisServer

                self.helper = RedisServer().start()
            elif store == "postgresql":
                from tests.support.postgres_server import PostgresServer

                self.helper = PostgresServer().start()
            else:
                from tests.support.memcached_server import MemcachedServer

                self.helper = MemcachedServer(memory_mb=MEMCACHED_MEMORY_MB).start()
        except RuntimeError as exc:
            raise BenchError(f"{store} server: {exc}") from exc

    @property
    def pid(self) -> int | None:
        proc = getattr(self.helper, "proc", None)
        return proc.pid if proc is not None and proc.poll() is None else None

    def address(self, app: str) -> str | None:
        """What app ``app`` is told to use: a Redis URL (its own database), the PostgreSQL
        URL, memcached's host:port; None for the file stores."""
        if self.helper is None:
            return None
        if self.store == "redis":
            return f"redis://127.0.0.1:{self.helper.port}/{REDIS_DB[app]}"
        if self.store == "postgresql":
            return str(self.helper.url)
        return str(self.helper.servers)

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None
