"""A real PostgreSQL server (Debian's packages) in a temporary directory, for tests.

Usage::

    with PostgresServer() as server:
        server.url            # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
        server.reset()        # drop every table (between tests)
        server.stop()         # an outage: the port refuses connections, clients are cut
        server.start()        # back on the same port, with the same data

The cluster is made with ``initdb`` (trust authentication, loopback only) and tuned for
tests (no fsync). PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user (created by Debian's package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

INSTALL_HINT = (
    "PostgreSQL is not installed. Run `make test` (it installs the Debian package when "
    "running as root) or `sudo apt-get install -y postgresql`."
)
RUN_AS = "postgres"  # the account Debian's postgresql package creates


def find_postgres_bin() -> Path:
    """The directory holding initdb and postgres (newest installed version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise RuntimeError(INSTALL_HINT)


def _version(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1 (free port; its socket in its own directory)."""

    def __init__(self, *, ready_timeout: float = 30.0) -> None:
        self._bin = find_postgres_bin()
        self.port = free_port()
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="test-postgres-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = RUN_AS if os.geteuid() == 0 else None
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"host={HOST} port={self.port} user=postgres dbname=postgres connect_timeout=2"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection; the caller closes it."""
        return psycopg.connect(self.dsn, autocommit=True)

    def start(self) -> PostgresServer:
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port), "-h", HOST),
                    *("-k", str(self.dir), "-c", "fsync=off", "-c", "synchronous_commit=off"),
                    *("-c", "full_page_writes=off", "-c", "max_connections=300"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                **self._user_options(),  # type: ignore[call-overload]
            )
        track(self.proc)
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as in a crash of the service."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, timeout=20)
            untrack(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def reset(self) -> None:
        """Drop every table in the public schema (a clean database for the next test)."""
        with self.connect() as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _user_options(self) -> dict[str, object]:
        """Popen options that run the program as ``postgres`` when we are root.

        Not through runuser/su: the server must be our direct child, so that the SIGINT
        of ``stop()`` reaches the postmaster itself (a clean fast shutdown) and waiting
        for our child means waiting for it.
        """
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)
        done = subprocess.run(
            [
                str(self._bin / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"),
                *("-E", "UTF8", "--locale=C"),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.dir,
            **self._user_options(),  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                untrack(self.proc)
                raise RuntimeError(f"postgres exited with code {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")  # fmt: skip
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgres did not start:\n{self.log_tail()}")
            time.sleep(0.1)
