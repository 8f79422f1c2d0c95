"""Paths, logging and the error every part of the harness raises."""

from __future__ import annotations

import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
DEFAULT_REPO = BENCH.parent
APPS = BENCH / "apps"
LUA = BENCH / "wrk" / "session.lua"
GUNICORN_CONF = BENCH / "gunicorn.bench.conf.py"
TARGETS_FILE = BENCH / "targets.toml"
BENCH_VENV = BENCH / ".venv-flask-session"
RESULTS = BENCH / "results"


class BenchError(RuntimeError):
    """The benchmark cannot go on (a server did not start, a check could not be made)."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def use_test_support(repo: Path) -> None:
    """Make ``tests.support`` importable: the harness starts stores with the test suite's
    helpers. Only that package is wanted from the repository; never its flask_session."""
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
