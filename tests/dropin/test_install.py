"""Installed from wheels: the service's wheel (with the library's) in a fresh venv serves,
and co-installation with PyPI's Flask-Session is refused loudly, in either order. (The
library alone: tests/infra/test_packaging.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.app_servers import CommandServer, GunicornServer
from tests.support.ports import HOST, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(
    *args: str | Path, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the library's and the service's wheels."""
    out = tmp_path_factory.mktemp("wheels")
    for project in (REPO_ROOT, REPO_ROOT / "service"):
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, project)
    return out


@pytest.fixture(scope="module")
def wheel(wheels: Path) -> Path:
    """The service's wheel; installing it with --find-links of ``wheels`` (pip_install)
    brings the library's from there."""
    (built,) = wheels.glob("sessionapp-*.whl")
    return built


def fresh_venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


def pip_install(bin_dir: Path, *what: str | Path) -> None:
    """pip install ``what``, finding this repository's wheels (the library) beside them."""
    local = [f"--find-links={p.parent}" for p in what if isinstance(p, Path)]
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        *local, *what)  # fmt: skip


def test_wheel_in_a_fresh_venv_serves_post_inc(wheel: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    pip_install(bin_dir, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The package has its defaults (config.py shipped in the wheel) and a place for data.
    probe = run(
        bin_dir / "python", "-c",
        "from sessionapp import create_app; a = create_app(); print(a.config['SESSION_FILE_DIR'])",
        cwd=elsewhere,
    )  # fmt: skip
    assert "site-packages" not in probe.stdout and "sessionapp-instance" in probe.stdout
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(tmp_path / "venv"),
    }
    server = GunicornServer(
        "sessionapp.wsgi:app", cwd=elsewhere, env=env, workers=1, ready_path="/healthz"
    )
    server.command = _with_python(server.command, bin_dir / "python")  # type: ignore[method-assign]
    try:
        server.start()
        with requests.Session() as http:
            assert (
                http.post(f"{server.url}/inc", headers={"Accept": "application/json"}).json()[
                    "counter"
                ]
                == 1
            )
            assert (
                http.post(f"{server.url}/inc", headers={"Accept": "application/json"}).json()[
                    "counter"
                ]
                == 2
            )
    finally:
        server.close()
    # the console script serves the same app from anywhere, on granian (sessionapp.serve)
    port = free_port()
    script_env = {
        **os.environ, **env, "SESSIONAPP_BIND": f"{HOST}:{port}", "SESSIONAPP_WORKERS": "1",
    }  # fmt: skip
    with CommandServer(
        [str(bin_dir / "sessionapp")], script_env, port, cwd=elsewhere, ready_timeout=60
    ) as script, requests.Session() as http:
        answer = http.post(f"{script.url}/inc", headers={"Accept": "application/json"})
        assert answer.json()["counter"] == 1


def _with_python(command: object, python: Path) -> object:
    def patched() -> list[str]:
        args = command()  # type: ignore[operator]
        args[0] = str(python)
        return list(args)

    return patched


FS08 = "Flask-Session==0.8.*"
IMPORT_LIBRARY = "import flask_session; print(flask_session.__file__)"
START_SERVICE = "import sessionapp"
FIX = "pip uninstall -y Flask-Session Flask-Session-Atomic && pip install Flask-Session-Atomic"


@pytest.mark.parametrize("order", ["ours-then-flask-session", "flask-session-then-ours"])
def test_co_installation_with_flask_session_is_refused(
    wheel: Path, tmp_path: Path, order: str
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    first, second = (wheel, FS08) if order.startswith("ours") else (FS08, wheel)
    pip_install(bin_dir, first)
    pip_install(bin_dir, second)
    # Installed after us, Flask-Session's __init__.py replaced ours: the guard that
    # flask_session_guard.pth registers at start-up speaks for us.
    for code in (IMPORT_LIBRARY, START_SERVICE):
        result = run(bin_dir / "python", "-c", code, cwd=tmp_path, check=False)
        assert result.returncode != 0, code
        assert "CoInstallationError: PyPI's Flask-Session is installed" in result.stderr
        assert FIX in result.stderr, result.stderr
    # the fix named in the message works (the library from its wheel, not the index)
    run(bin_dir / "python", "-m", "pip", "uninstall", "-q", "-y", "Flask-Session",
        "Flask-Session-Atomic")  # fmt: skip
    (library,) = wheel.parent.glob("flask_session_atomic-*.whl")
    pip_install(bin_dir, library)
    assert (
        run(
            bin_dir / "python", "-c", IMPORT_LIBRARY + "; " + START_SERVICE, cwd=tmp_path
        ).returncode
        == 0
    )
