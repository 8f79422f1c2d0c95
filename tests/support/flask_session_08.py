"""PyPI's Flask-Session 0.8 in its own virtual environment: the benchmark's.

Flask-Session imports as ``flask_session``, the name of this project's package, so it
can only run in a separate environment. This is the one bench/run builds
(bench/.venv-flask-session from bench/requirements.txt, rebuilt only when that file
changes); tests build it the same way, so a run builds it at most once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .app_servers import GunicornServer

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "bench" / "requirements.txt"
VENV = REPO_ROOT / "bench" / ".venv-flask-session"
STAMP = VENV / ".bench-requirements"  # the stamp bench/run writes


def flask_session_08_python() -> Path:
    """The Python of a venv with Flask-Session 0.8 (built here if missing or stale)."""
    python = VENV / "bin" / "python"
    current = STAMP.exists() and STAMP.read_bytes() == REQUIREMENTS.read_bytes()
    if not (python.exists() and current):
        if not python.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)],
            check=True,
        )  # fmt: skip
        shutil.copyfile(REQUIREMENTS, STAMP)
    return python


def run_08(python: Path, script: str, *, cwd: Path, timeout: float = 60) -> str:
    """Run ``script`` with Flask-Session 0.8's Python in ``cwd`` (never the repository,
    whose own ``flask_session`` would shadow it); returns its stdout."""
    result = subprocess.run(
        [str(python), "-W", "ignore", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"Flask-Session 0.8 script failed:\n{result.stderr}")
    return result.stdout


class GunicornServer08(GunicornServer):
    """gunicorn from Flask-Session 0.8's venv serving ``app_spec`` from ``cwd`` (a directory
    outside the repository, whose own ``flask_session`` would shadow 0.8's): the old
    fleet of a rolling upgrade, next to this project's servers."""

    kind = "gunicorn-fs08"

    def __init__(self, app_spec: str, *, python: Path, **kwargs: object) -> None:
        super().__init__(app_spec, **kwargs)
        self.python = python

    def command(self) -> list[str]:
        command = super().command()  # the same options: bench/requirements.txt's gunicorn
        command[0] = str(self.python)
        return command

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        env.pop("PYTHONPATH", None)  # nothing of this project's on 0.8's path
        return env
