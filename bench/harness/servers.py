"""The HTTP servers every app runs on, with the same workers x threads for A, B, C and D.

granian is the project's production server; gunicorn (gthread) is the alternative it keeps
supporting. Both bind 127.0.0.1 on a free port. granian is launched through its own CLI
(``python -m granian`` of the app's virtual environment), not through the service's
launcher, so that all four apps start the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .common import GUNICORN_CONF

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    name: str
    workers: int
    threads: int

    @property
    def describe(self) -> str:
        """The configuration, as the report's headings state it."""
        if self.name == "gunicorn":
            return f"gunicorn {self.workers} workers x {self.threads} threads (gthread)"
        return f"granian {self.workers} workers x {self.threads} blocking threads (WSGI)"

    def command(self, python: Path, module: str, port: int) -> list[str]:
        """The command line serving WSGI app ``module`` (``module:attr``) on ``port``,
        from the working directory the caller chooses."""
        if self.name == "gunicorn":
            # -c: the bench's own settings file, so that a project's gunicorn.conf.py in
            # the working directory is never picked up instead.
            return [
                str(python), "-m", "gunicorn", "-c", str(GUNICORN_CONF),
                "--bind", f"{HOST}:{port}",
                "--workers", str(self.workers), "--threads", str(self.threads),
                module,
            ]  # fmt: skip
        return [
            str(python), "-m", "granian", "--interface", "wsgi",
            "--host", HOST, "--port", str(port),
            "--workers", str(self.workers), "--blocking-threads", str(self.threads),
            "--respawn-failed-workers", "--log-level", "warning",
            module,
        ]  # fmt: skip


#: name -> (workers, threads) by default: what issue 12 measured on this 2-core machine
DEFAULTS = {"granian": (2, 4), "gunicorn": (4, 4)}
