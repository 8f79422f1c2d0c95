"""A real gunicorn master with gthread workers on a free loopback port, for tests.

Usage::

    with GunicornServer("tests.infra.tiny_app:app", workers=2) as server:
        requests.get(server.url + "/pid")
        server.kill_worker(server.worker_pids()[0])
"""

from __future__ import annotations

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

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

REPO_ROOT = Path(__file__).resolve().parents[2]


def _supports_option(flag: str) -> bool:
    """Whether the installed gunicorn knows a command-line flag (options vary by version)."""
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:  # pragma: no cover - gunicorn is a project dependency
        return False
    return any(flag in (setting.cli or ()) for setting in KNOWN_SETTINGS)


class GunicornServer:
    """Runs `python -m gunicorn APP_SPEC` bound to 127.0.0.1 with the current interpreter.

    `env` is merged onto os.environ. Output goes to a log file in a temporary directory
    (`log_text()`). `config=None` runs with an empty config file, so a gunicorn.conf.py in
    `cwd` does not leak into tests; pass a path to test a real config. `start()` returns once
    the server answers any HTTP response on `ready_path` and all workers have been forked.
    """

    def __init__(
        self,
        app_spec: str,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        threads: int = 4,
        port: int | None = None,
        cwd: str | os.PathLike[str] = REPO_ROOT,
        extra_args: Iterable[str] = (),
        config: str | os.PathLike[str] | None = None,
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
        self.tmpdir = Path(tempfile.mkdtemp(prefix="test-gunicorn-"))
        self.log_path = self.tmpdir / "gunicorn.log"
        if config is None:
            config = self.tmpdir / "empty.conf.py"
            Path(config).write_text("# intentionally empty: settings come from the command line\n")
        self.config = Path(config)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the gunicorn master."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
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
        if _supports_option("--no-control-socket"):
            # gunicorn >= 24 opens one control socket per user by default (~/.gunicorn);
            # concurrent test servers would fight over it.
            args.append("--no-control-socket")
        return [*args, *self.extra_args, self.app_spec]

    def start(self) -> GunicornServer:
        """Start the master and wait until it serves HTTP; raise with the log tail if not."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
                return self
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise RuntimeError(
                        f"gunicorn could not bind port {self.port}:\n{self.log_tail()}"
                    ) from None
                self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10) -> None:
        """Graceful shutdown (SIGTERM to the master), SIGKILL to the group after `timeout` s."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=timeout)
            untrack(self.proc)

    def close(self) -> None:
        """Stop the server and remove its temporary directory (and log)."""
        self.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def worker_pids(self) -> list[int]:
        """PIDs of the master's live (non-zombie) child processes, sorted."""
        if not self.running:
            return []
        assert self.proc is not None
        return sorted(
            pid for pid in _children(self.proc.pid) if _state(pid) not in ("Z", "X", None)
        )

    def wait_for_workers(
        self, count: int | None = None, *, exclude: Iterable[int] = (), timeout: float = 20.0
    ) -> list[int]:
        """Wait until `count` (default: `workers`) workers run, none of them in `exclude`."""
        want = self.workers if count is None else count
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

    def kill_worker(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one worker; the master notices and forks a replacement."""
        if pid not in self.worker_pids():
            raise ValueError(f"{pid} is not a worker of gunicorn master {self.pid}")
        os.kill(pid, sig)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<GunicornServer {self.app_spec} {self.url} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        env = os.environ.copy()
        env.pop("GUNICORN_CMD_ARGS", None)  # only explicit settings
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
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
                    f"gunicorn exited with code {self.proc.returncode} before serving "
                    f"{self.ready_path}:\n{self.log_tail()}"
                )
            if self._answers_http() and len(self.worker_pids()) >= self.workers:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"gunicorn did not answer GET {self.ready_path} within "
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


def _children(pid: int) -> set[int]:
    """Child PIDs of `pid`, from /proc/PID/task/*/children, else by scanning /proc/*/stat."""
    children: set[int] = set()
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            children.update(int(c) for c in (task / "children").read_text().split())
        return children
    except FileNotFoundError:
        pass  # kernel without CONFIG_PROC_CHILDREN, or the process is gone
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ppid(int(entry.name)) == pid:
            children.add(int(entry.name))
    return children


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None
