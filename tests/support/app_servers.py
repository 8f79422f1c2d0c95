"""Real app servers on a free loopback port, for tests: gunicorn and granian, one interface.

Usage::

    with GranianServer("tests.infra.tiny_app:app", workers=2) as server:
        requests.get(server.url + "/pid")
        server.kill_worker(server.worker_pids()[0])

Both run the current interpreter, log to a file in a temporary directory (`log_text()`),
and have the process tree main -> workers, read through psutil. `start()` returns once
the server answers any HTTP response on `ready_path` and all its workers run.

GranianServer starts granian exactly as ``make run`` does, through ``python -m
sessionapp.serve`` (its settings: header deadline, respawn, logging); `workers` and
`threads` go through SESSIONAPP_WORKERS / SESSIONAPP_THREADS, and ``None`` for both
keeps the launcher's defaults.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the servers a guarantee test runs on: the production one first
SERVER_KINDS = ("granian", "gunicorn")
_BIND_ATTEMPTS = 3
#: how long kill_worker waits for a SIGKILLed worker to be gone
_EXIT_WAIT_S = 10.0


#: helper processes beside the workers: multiprocessing's (beside granian's spawned
#: workers) and the service's metrics exporter (SESSIONAPP_METRICS_BIND): not workers
_HELPER_MARKERS = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    "sessionapp.metrics_server",
)


def child_pids(pid: int) -> list[int]:
    """Live (not zombie) worker children of `pid`, sorted; [] if `pid` is gone.

    Helper processes (multiprocessing's resource tracker beside granian's spawned
    workers, the service's metrics exporter) are not counted.
    """
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    live = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                continue
            command = " ".join(child.cmdline())
            if not any(marker in command for marker in _HELPER_MARKERS):
                live.append(child.pid)
    return sorted(live)


def is_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is not running)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


class AppServer:
    """A main process with worker children serving `app_spec` on 127.0.0.1 (see module doc).

    `env` is merged onto os.environ. Subclasses say how to start it (`command`).
    """

    kind = "server"

    def __init__(
        self,
        app_spec: str,
        *,
        env: Mapping[str, str] | None = None,
        workers: int | None = 2,
        threads: int | None = 4,
        port: int | None = None,
        cwd: str | os.PathLike[str] = REPO_ROOT,
        extra_args: Iterable[str] = (),
        ready_path: str = "/healthz",
        ready_timeout: float = 20.0,
    ) -> None:
        self.app_spec = app_spec
        self.env = dict(env or {})
        self.workers = workers
        self.threads = threads
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.cwd = Path(cwd)
        self.extra_args = tuple(extra_args)
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"test-{self.kind}-"))
        self.log_path = self.tmpdir / f"{self.kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- what subclasses provide -------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def expected_workers(self) -> int:
        """How many workers run once started."""
        assert self.workers is not None
        return self.workers

    def child_env(self) -> dict[str, str]:
        env = os.environ.copy()
        env.update(self.env)
        return env

    # -- the interface -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the main process."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> AppServer:
        """Start the server and wait until it serves HTTP; raise with the log tail if not."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else _BIND_ATTEMPTS
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
                return self
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise RuntimeError(
                        f"{self.kind} could not bind port {self.port}:\n{self.log_tail()}"
                    ) from None
                self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10) -> None:
        """Graceful shutdown (SIGTERM to the main process), SIGKILL to the group after `timeout`."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=timeout)
            untrack(self.proc)

    def close(self) -> None:
        """Stop the server and remove its temporary directory (and log)."""
        self.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def reload(self) -> None:
        """SIGHUP: both servers replace every worker gracefully, the socket stays open."""
        assert self.proc is not None and self.running, "not running"
        self.proc.send_signal(signal.SIGHUP)

    def worker_pids(self) -> list[int]:
        """PIDs of the main process's live (non-zombie) children, sorted."""
        if not self.running:
            return []
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def wait_for_workers(
        self, count: int | None = None, *, exclude: Iterable[int] = (), timeout: float = 20.0
    ) -> list[int]:
        """Wait until `count` (default: all) workers run, none of them in `exclude`."""
        want = self.expected_workers() if count is None else count
        excluded = set(exclude)
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if len(pids) == want and not excluded.intersection(pids):
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"expected {want} workers (excluding {sorted(excluded)}), have {pids}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_until_serving(self, timeout: float = 20.0) -> None:
        """Wait until the server answers HTTP again (granian's workers each listen on their
        own socket: with every worker just replaced, connections are refused meanwhile)."""
        deadline = time.monotonic() + timeout
        while not self._answers_http():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} not answering:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill_worker(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one worker; the main process notices and starts a replacement.

        With SIGKILL, returns once the worker has exited (its sockets closed): on granian
        each worker has its own listening socket, and a connection the kernel queues on a
        dying worker's socket is reset (unless net.ipv4.tcp_migrate_req=1), which is the
        kernel's doing, not what a test of the service means to see.
        """
        if pid not in self.worker_pids():
            raise ValueError(f"{pid} is not a worker of {self.kind} main process {self.pid}")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + _EXIT_WAIT_S
            while is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.005)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.app_spec} {self.url} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.child_env(),
                start_new_session=True,  # its own process group: stop() can kill stray workers
            )
        track(self.proc)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                untrack(self.proc)
                if "Address already in use" in self.log_tail():
                    raise _PortTaken
                raise RuntimeError(
                    f"{self.kind} exited with code {self.proc.returncode} before serving "
                    f"{self.ready_path}:\n{self.log_tail()}"
                )
            if self._answers_http() and len(self.worker_pids()) >= self.expected_workers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.kind} did not answer GET {self.ready_path} within "
                    f"{self.ready_timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _answers_http(self) -> bool:
        """True on any HTTP response, whatever its status: the server is up."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", self.ready_path)
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


class _PortTaken(Exception):
    pass


def _gunicorn_supports_option(flag: str) -> bool:
    """Whether the installed gunicorn knows a command-line flag (options vary by version)."""
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:  # pragma: no cover - gunicorn is a project dependency
        return False
    return any(flag in (setting.cli or ()) for setting in KNOWN_SETTINGS)


class GunicornServer(AppServer):
    """``python -m gunicorn APP_SPEC`` with gthread workers.

    `config=None` runs with an empty config file, so a gunicorn.conf.py in `cwd` does not
    leak into tests; pass a path to test a real config. With `workers=None` (and a config)
    only the bind address is added to the config's settings: the server as operators run
    ``gunicorn -c gunicorn.conf.py``.
    """

    kind = "gunicorn"

    def __init__(
        self, app_spec: str, *, config: str | os.PathLike[str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(app_spec, **kwargs)  # type: ignore[arg-type]
        if config is None:
            config = self.tmpdir / "empty.conf.py"
            Path(config).write_text("# intentionally empty: settings come from the command line\n")
        self.config = Path(config)

    def expected_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        from sessionapp.server_settings import usable_cores, workers

        # what gunicorn.conf.py asks for; its default is 2 x cores + 1
        return workers(2 * usable_cores() + 1, {**os.environ, **self.env})

    def command(self) -> list[str]:
        if self.workers is None:
            args = [sys.executable, "-m", "gunicorn", "--config", str(self.config),
                    "--bind", f"{HOST}:{self.port}"]  # fmt: skip
            return [*args, *self.extra_args, self.app_spec]
        args = [
            sys.executable, "-m", "gunicorn",
            "--config", str(self.config),
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", "gthread",
            "--graceful-timeout", "2",
            "--timeout", "30",
            # Test clients keep connections open between bursts; on a loaded machine a
            # client thread can pause past gunicorn's default 2 s keep-alive, and a POST
            # on a connection the server just closed cannot be safely retried.
            "--keep-alive", "60",
        ]  # fmt: skip
        if _gunicorn_supports_option("--no-control-socket"):
            # gunicorn >= 24 opens one control socket per user by default (~/.gunicorn);
            # concurrent test servers would fight over it.
            args.append("--no-control-socket")
        return [*args, *self.extra_args, self.app_spec]

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        env.pop("GUNICORN_CMD_ARGS", None)  # only explicit settings
        return env


class GranianServer(AppServer):
    """``python -m sessionapp.serve [extra_args] APP_SPEC``: granian as ``make run`` runs it."""

    kind = "granian"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sessionapp.serve", *self.extra_args, self.app_spec]

    def expected_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        from sessionapp.server_settings import usable_cores

        return usable_cores()

    def child_env(self) -> dict[str, str]:
        env = os.environ.copy()
        for name in ("SESSIONAPP_WORKERS", "SESSIONAPP_THREADS"):
            env.pop(name, None)  # only explicit settings
        for name in list(env):
            if name.startswith("GRANIAN_"):
                env.pop(name)
        env["SESSIONAPP_BIND"] = f"{HOST}:{self.port}"
        if self.workers is not None:
            env["SESSIONAPP_WORKERS"] = str(self.workers)
        if self.threads is not None:
            env["SESSIONAPP_THREADS"] = str(self.threads)
        env.update(self.env)
        return env


SERVER_CLASSES: dict[str, type[AppServer]] = {"granian": GranianServer, "gunicorn": GunicornServer}
