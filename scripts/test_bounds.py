"""Run a fast core of the suite against the lowest and the newest versions the metadata
allows, on the oldest and the newest Python that ``requires-python`` admits (``make test-bounds``).

    .venv/bin/python scripts/test_bounds.py [--pythons 3.10,3.13] [--matrix]
        [--resolutions lowest-direct,highest] [-- PYTEST_ARGS...]

By default the two ends: the lowest versions on the oldest Python and the newest on the
newest (``make test`` runs it, and keeps within its time budget); ``--matrix`` runs every
resolution on every Python (four environments, about twice as long). For each, a fresh
virtual environment in ``.venv-bounds/``:

1. ``uv pip install --resolution R -e '.[hiredis]' -e ./service``: the library with its
   Redis client and the service with its servers, each direct requirement at its lowest
   allowed version (``lowest-direct``) or its newest (``highest``); what they pull in is
   at its newest either way, as an installer would pick it.
2. the ``test`` dependency group, constrained to what step 1 installed (so the tools
   cannot move the versions under test).
3. the core: the store contract on the filesystem and Redis stores, the session contract,
   the drop-in API with Flask-Session 0.8's own filesystem and Redis tests, Flask's own
   session tests (tests/flask_compat) with the extension on every app, and the
   service's commands on granian and gunicorn (CORE and CORE_SELECTION below).

Prints the versions each environment got and a table of results; exits non-zero if any
run failed. The Pythons are found as pyenv installs (``$PYENV_ROOT/versions/3.10.*``) or
``python3.10`` on PATH; uv never downloads one.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BOUNDS_DIR = REPO_ROOT / ".venv-bounds"
CORE = [
    "tests/flask_session/test_store_contract.py",
    "tests/flask_session/test_session_contract.py",
    "tests/dropin/test_api.py",
    "tests/dropin/fs08/test_basic.py",
    "tests/dropin/fs08/test_filesystem.py",
    "tests/dropin/fs08/test_redis.py",
    "tests/flask_compat",  # Flask's own session tests, with the extension on every app
    "tests/sessionapp/test_entry_points.py",
]
#: filesystem and standalone Redis only: the other stores' clients are extras not under test
CORE_SELECTION = (
    "not sqlite and not postgresql and not memcached and not cluster and not sentinel"
    " and not valkey"
)
#: the direct requirements whose versions the report shows
SHOWN = ["flask", "werkzeug", "msgspec", "redis", "hiredis", "granian", "gunicorn"]


def find_python(version: str) -> str:
    """The interpreter for ``version`` ("3.10"), or SystemExit naming what is missing."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}")):
        return candidate
    on_path = shutil.which(f"python{version}")
    if on_path and subprocess.run([on_path, "-V"], capture_output=True).returncode == 0:
        return on_path
    raise SystemExit(f"no Python {version} found (pyenv install {version}, or put it on PATH)")


def uv(*args: str) -> str:
    """Run uv (the `bounds` dependency group's) in the repository; its stdout."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)  # every command names its environment: --python
    return subprocess.run(
        [sys.executable, "-m", "uv", *args], cwd=REPO_ROOT, env=env, check=True,
        stdout=subprocess.PIPE, text=True,
    ).stdout  # fmt: skip


def build_env(python: str, resolution: str, venv: Path) -> dict[str, str]:
    """A fresh venv at ``venv`` with the project at ``resolution``; the versions of SHOWN."""
    shutil.rmtree(venv, ignore_errors=True)
    uv("venv", "-q", "--python", python, str(venv))
    target = ("--python", str(venv / "bin" / "python"))
    # --compile-bytecode: .pyc files as pip writes them, so workers start as fast as in
    # .venv (where PYTHONDONTWRITEBYTECODE is set, nothing would compile them otherwise)
    uv("pip", "install", *target, "-q", "--compile-bytecode", "--resolution", resolution,
       "-e", ".[hiredis]", "-e", "./service")  # fmt: skip
    frozen = uv("pip", "freeze", *target, "--exclude-editable")
    constraints = venv / "constraints.txt"
    constraints.write_text(frozen)
    uv("pip", "install", *target, "-q", "--compile-bytecode", "--group", "test",
       "-c", str(constraints))  # fmt: skip
    versions = dict(line.split("==", 1) for line in frozen.splitlines() if "==" in line)
    return {name: versions.get(name, "-") for name in SHOWN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pythons", default="3.10,3.13")
    parser.add_argument("--resolutions", default="lowest-direct,highest")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="every resolution on every Python; by default the two ends: the lowest"
        " versions on the oldest Python and the newest on the newest (what `make test`"
        " runs, to stay within its time budget)",
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    pythons, resolutions = args.pythons.split(","), args.resolutions.split(",")
    runs = (
        [(version, resolution) for version in pythons for resolution in resolutions]
        if args.matrix
        else list(zip(pythons, resolutions, strict=True))
    )
    results: list[tuple[str, str, dict[str, str], str, float]] = []
    for version, resolution in runs:
        python = find_python(version)
        venv = BOUNDS_DIR / f"py{version}-{resolution}"
        print(f"\n=== Python {version}, {resolution}: {venv}", flush=True)
        started = time.monotonic()
        try:
            versions = build_env(python, resolution, venv)
        except subprocess.CalledProcessError:
            results.append((version, resolution, {}, "install failed", 0.0))
            continue
        print("   " + ", ".join(f"{name} {v}" for name, v in versions.items()), flush=True)
        run = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
             *CORE, "-k", CORE_SELECTION, *args.pytest_args],
            cwd=REPO_ROOT,
        )  # fmt: skip
        outcome = "passed" if run.returncode == 0 else f"FAILED (pytest exit {run.returncode})"
        results.append((version, resolution, versions, outcome, time.monotonic() - started))

    print("\n| Python | resolution | " + " | ".join(SHOWN) + " | result | seconds |")
    print("|---|---|" + "---|" * len(SHOWN) + "---|---|")
    for version, resolution, versions, outcome, seconds in results:
        shown = " | ".join(versions.get(name, "?") for name in SHOWN)
        print(f"| {version} | {resolution} | {shown} | {outcome} | {seconds:.0f} |")
    if any(outcome != "passed" for *_, outcome, _ in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
