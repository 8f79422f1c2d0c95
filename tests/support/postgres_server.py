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
from pathlib import Path

import psycopg

from .ports import HOST
from .server_process import ServerProcess

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


class PostgresServer(ServerProcess):
    """One PostgreSQL cluster on 127.0.0.1 (free port; its socket in its own directory)."""

    kind = "postgres"
    #: fast shutdown: open connections are cut, as in a crash of the service
    stop_signal = signal.SIGINT
    stop_timeout = 20.0
    poll_interval = 0.1

    def __init__(self, *, port: int | None = None, ready_timeout: float = 30.0) -> None:
        self._bin = find_postgres_bin()
        self._user = RUN_AS if os.geteuid() == 0 else None
        super().__init__(port=port, ready_timeout=ready_timeout)
        self.data = self.dir / "data"
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"host={HOST} port={self.port} user=postgres dbname=postgres connect_timeout=2"

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection; the caller closes it."""
        return psycopg.connect(self.dsn, autocommit=True)

    def reset(self) -> None:
        """Drop every table in the public schema (a clean database for the next test)."""
        with self.connect() as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def command(self) -> list[str]:
        return [
            str(self._bin / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-h", HOST),
            *("-k", str(self.dir), "-c", "fsync=off", "-c", "synchronous_commit=off"),
            *("-c", "full_page_writes=off", "-c", "max_connections=300"),
        ]

    def is_ready(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def popen_options(self) -> dict[str, object]:
        """Run as ``postgres`` when we are root.

        Not through runuser/su: the server must be our direct child, so that the SIGINT
        of ``stop()`` reaches the postmaster itself (a clean fast shutdown) and waiting
        for our child means waiting for it.
        """
        options: dict[str, object] = {"cwd": self.dir}
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            options.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        return options

    # -- internals ---------------------------------------------------------------------

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
            **self.popen_options(),  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
