"""One server process on a free loopback port: the shape every server fixture shares.

A subclass says how to start its program (`command`) and when it is ready (`is_ready`);
this class does the rest, the same way for redis-server, memcached, PostgreSQL, granian,
gunicorn and a command line started as an operator would::

    with SomeServer() as server:   # start(): spawn, wait for readiness, retry a taken port
        ...
        server.stop()              # an outage: the port refuses connections
        server.start()             # back on the same port
    # close(): stopped for good, its temporary directory removed

- The port is a free one on 127.0.0.1 unless given. `free_port()` releases the port before
  the program binds it, so another process (or a client's outgoing connection) can take it
  in between: when the program exits saying its address is in use, new free ports are
  chosen (`choose_ports`: the port, and any other the program listens on) and the start
  tried again (up to `BIND_ATTEMPTS`). A given port, or the port of a server that has
  run once, is kept: restarts come back where clients expect them.
- The program runs in its own process group (Ctrl-C in the terminal goes to pytest, not
  to it) with its output in `log_path`; every error message carries the log's tail.
- Readiness is awaited for at most `ready_timeout` seconds; a program that exits or stays
  unready meanwhile is an error naming it, with the log tail.
- `stop()` sends `stop_signal`, waits at most `timeout` s, then SIGKILLs the whole group
  (workers that outlived their main process too); `kill()` is a crash (SIGKILL).
- Process facts (children, liveness) come from psutil.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

import psutil

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

#: how many ports a start tries when the chosen one turns out to be taken
BIND_ATTEMPTS = 3
#: what a program logs when its port is taken (redis, memcached, PostgreSQL, granian, gunicorn)
PORT_TAKEN = "Address already in use"
#: helper processes beside the workers: multiprocessing's (beside granian's spawned
#: workers) and the service's metrics exporter (SESSIONAPP_METRICS_BIND): not workers
_HELPER_MARKERS = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    "sessionapp.metrics_server",
)

_Server = TypeVar("_Server", bound="ServerProcess")


class PortTaken(Exception):
    """The program exited because its port was taken: a start worth retrying elsewhere."""


class ServerProcess:
    """One program listening on 127.0.0.1:`port`, started and stopped as described above.

    Subclasses set `kind` (a name for messages, the temporary directory and the log) and
    implement `command()` and `is_ready()`; they may override `popen_options()` (cwd, env,
    user) and the class attributes below.
    """

    kind = "server"
    #: the signal `stop()` sends first
    stop_signal: int = signal.SIGTERM
    #: how long `stop()` waits before SIGKILL
    stop_timeout: float = 10.0
    #: pause between readiness probes
    poll_interval: float = 0.05

    def __init__(self, *, port: int | None = None, ready_timeout: float = 10.0) -> None:
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.ready_timeout = ready_timeout
        #: the program's own temporary directory (its log, its files); removed by close()
        self.dir = Path(tempfile.mkdtemp(prefix=f"test-{self.kind}-"))
        self.log_path = self.dir / f"{self.kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    # -- what subclasses provide -------------------------------------------------------------

    def command(self) -> list[str]:
        """The program and its arguments (`self.port` is the port to listen on)."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """One readiness probe: True once the program serves. Must not raise on refusal."""
        raise NotImplementedError

    def choose_ports(self) -> None:
        """New free ports for a start whose port was taken: ``port``, and any other port
        the program listens on (a subclass that has one chooses it again too)."""
        self.port = free_port()

    def popen_options(self) -> dict[str, Any]:
        """Extra subprocess.Popen options (cwd, env, user); by default runs in `dir`."""
        return {"cwd": self.dir}

    # -- the interface -----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the main process (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self: _Server) -> _Server:
        """Start (on the same port as before, if it ran already) and wait until ready.

        Raises RuntimeError with the log tail if the program exits, cannot bind a port in
        `BIND_ATTEMPTS` tries, or is not ready within `ready_timeout`.
        """
        if self.running:
            return self
        attempts = 1 if self._fixed_port else BIND_ATTEMPTS
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
            except PortTaken:
                if attempt + 1 == attempts:
                    raise RuntimeError(
                        f"{self.kind} could not bind port {self.port}:\n{self.log_tail()}"
                    ) from None
                self.choose_ports()
                continue
            self._fixed_port = True  # restarts must come back on this port
            return self
        raise AssertionError("unreachable")

    def stop(self, timeout: float | None = None) -> None:
        """Send `stop_signal`, SIGKILL the group after `timeout` (default `stop_timeout`) s.

        Keeps the port and directory, so `start()` brings the program back where it was.
        """
        if self.proc is not None:
            stop_process(self.proc, self.stop_signal, self._timeout(timeout))
            untrack(self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash: the program says goodbye to nobody."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL, self.stop_timeout)
            untrack(self.proc)

    def close(self) -> None:
        """Stop for good and remove the temporary directory (and the log)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def children(self) -> list[int]:
        """PIDs of the main process's live worker children, sorted (see `child_pids`)."""
        if not self.running:
            return []
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 50) -> str:
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:]) if text else "(no log)"

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {HOST}:{self.port} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _timeout(self, timeout: float | None) -> float:
        return self.stop_timeout if timeout is None else timeout

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()  # where this run's output begins
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches stray workers
                **self.popen_options(),
            )
        track(self.proc)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                untrack(self.proc)
                if PORT_TAKEN in self._this_run_output():
                    raise PortTaken
                raise RuntimeError(
                    f"{self.kind} exited with code {self.proc.returncode} before it was "
                    f"ready:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.kind} was not ready within {self.ready_timeout} s:\n{self.log_tail()}"
                )
            time.sleep(self.poll_interval)


    def _this_run_output(self) -> str:
        """All the output of the latest start (not only the tail: granian prints a long
        backtrace after saying its address is in use)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")


def http_status(port: int, path: str) -> int | None:
    """Status of ``GET path`` on 127.0.0.1:`port`, or None if nothing answers HTTP."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


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
