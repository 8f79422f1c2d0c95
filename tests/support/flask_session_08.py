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
