"""What the run ran on: tool and package versions, and the repository's commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psutil

from .common import APPS, BENCH_VENV

PACKAGES = (
    "flask", "werkzeug", "granian", "gunicorn", "redis", "hiredis", "Flask-Session",
    "SQLAlchemy", "psycopg", "pymemcache", "msgspec",
)  # fmt: skip


def _output(cmd: list[str], **kw) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, **kw)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"


def tool_versions(repo: Path) -> dict:
    probe = (
        "import importlib.metadata as m, json\nout={}\n"
        f"for n in {PACKAGES!r}:\n"
        "  try: out[n]=m.version(n)\n  except Exception: pass\nprint(json.dumps(out))"
    )
    versions: dict = {
        "wrk": _output(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else None,
        "redis-server": _output(["redis-server", "--version"]),
    }
    for name, py, cwd in (
        ("bench_venv", BENCH_VENV / "bin" / "python", APPS),
        ("repo_venv", repo / ".venv" / "bin" / "python", repo),
    ):
        if py.exists():
            try:
                versions[name] = json.loads(_output([str(py), "-c", probe], cwd=cwd))
            except ValueError:
                versions[name] = None
    return versions


def git_commit(repo: Path) -> str:
    head = _output(["git", "rev-parse", "--short", "HEAD"], cwd=repo)
    if not head or " " in head:
        return "unknown"
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return head + ("+dirty" if dirty else "")


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path`` (ext4, tmpfs, ...), "?" if unknown."""
    real = os.path.realpath(path)
    mounts = [
        p
        for p in psutil.disk_partitions(all=True)
        if real == p.mountpoint or real.startswith(p.mountpoint.rstrip("/") + "/")
    ]
    return max(mounts, key=lambda p: len(p.mountpoint)).fstype if mounts else "?"
