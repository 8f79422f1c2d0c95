"""Release-ready distributions: both build (sdist, then the wheel from it) and pass
``twine check``, hold what they should, and the library installs alone.

The library (Flask-Session-Atomic, ../pyproject.toml) must install with Flask and msgspec
only; the service (sessionapp, service/pyproject.toml) brings granian, gunicorn and Redis.
"""

from __future__ import annotations

import email.parser
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import requests

import flask_session
from tests.support.app_servers import AppServer
from tests.support.ports import HOST

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRARY, SERVICE = "Flask-Session-Atomic", "sessionapp"
#: everything `pip install Flask-Session-Atomic` may bring: Flask, its dependencies, msgspec
LIBRARY_CLOSURE = {
    "flask-session-atomic", "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous",
    "click", "blinker", "msgspec", "pip", "setuptools",
}  # fmt: skip
SERVICE_ONLY = {"granian", "gunicorn", "redis", "hiredis"}

APP = """\
import os

import flask_session
from flask import Flask, session

app = Flask(__name__)
app.config.update(SESSION_TYPE="filesystem", SESSION_FILE_DIR=os.environ["SESSION_DIR"])
flask_session.Session(app)


@app.get("/healthz")
def healthz():
    return {"flask_session": flask_session.__file__}


@app.post("/inc")
def inc():
    session["n"] = session.get("n", 0) + 1
    return {"n": session["n"]}
"""


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of both projects (sdist, then each wheel built from its sdist),
    into one directory; fails on any deprecation the build backend reports."""
    out = tmp_path_factory.mktemp("dist")
    for project in (REPO_ROOT, REPO_ROOT / "service"):
        result = run(sys.executable, "-m", "build", "-o", out, project)
        output = result.stdout + result.stderr
        assert "Deprecat" not in output and "deprecat" not in output, output
    return out


def built(dist: Path, pattern: str) -> Path:
    (path,) = dist.glob(pattern)
    return path


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_twine_check_passes(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert len(files) == 4, files  # two sdists, two wheels
    result = run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert result.stdout.count("PASSED") == 4, result.stdout


def test_library_metadata(dist: Path) -> None:
    meta = wheel_metadata(built(dist, "flask_session_atomic-*.whl"))
    assert meta["Name"] == LIBRARY
    assert meta["Version"] == flask_session.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "Flask-Session" in meta["Summary"] and "never install both" in meta["Summary"]
    assert "Framework :: Flask" in meta.get_all("Classifier")
    required = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert {r.split(">")[0].lower() for r in required} == {"flask", "msgspec"}
    assert set(meta.get_all("Provides-Extra")) == {
        "redis", "hiredis", "sqlalchemy", "memcached", "cachelib", "metrics",
    }  # fmt: skip
    # test and dev tools are dependency groups, never a published extra
    assert not any("pytest" in r or "mypy" in r for r in meta.get_all("Requires-Dist"))


def test_library_wheel_holds_the_library_only(dist: Path) -> None:
    with zipfile.ZipFile(built(dist, "flask_session_atomic-*.whl")) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {
        "flask_session", "flask_session_guard.py", "flask_session_guard.pth",
        f"flask_session_atomic-{flask_session.__version__}.dist-info",
    }  # fmt: skip


def test_library_sdist_holds_tests_docs_and_licenses(dist: Path) -> None:
    with tarfile.open(built(dist, "flask_session_atomic-*.tar.gz")) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "LICENSE", "README.md", "CHANGES.md", "flask_session_guard.pth", "docs/flask_session.md",
        "tests/conftest.py", "tests/flask_session/test_session_contract.py",
        "tests/dropin/fs08/LICENSE", "tests/dropin/fs08/test_basic.py",
        "tests/flask_compat/LICENSE", "tests/flask_compat/test_flask_sessions.py",
    ):  # fmt: skip
        assert needed in names, needed
    assert not any("__pycache__" in name for name in names)


def test_service_metadata_follows_the_library(dist: Path) -> None:
    meta = wheel_metadata(built(dist, "sessionapp-*.whl"))
    assert meta["Name"] == SERVICE
    assert meta["Version"] == flask_session.__version__  # one release, two distributions
    required = meta.get_all("Requires-Dist")
    assert f"{LIBRARY}[hiredis,metrics]=={flask_session.__version__}" in required
    assert {r.split(">")[0] for r in required} >= {"granian", "gunicorn"}
    with zipfile.ZipFile(built(dist, "sessionapp-*.whl")) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        config = archive.read("sessionapp/default_config.py").decode()
    assert tops == {"sessionapp", f"sessionapp-{flask_session.__version__}.dist-info"}
    assert config == (REPO_ROOT / "config.py").read_text()  # a copy of the symlink's target


class FlaskRunServer(AppServer):
    """``python -m flask --app APP run`` (Werkzeug's server, one process) from a venv."""

    kind = "flask-run"

    def __init__(self, app_spec: str, *, python: Path, **kwargs: object) -> None:
        super().__init__(app_spec, workers=0, threads=None, **kwargs)  # type: ignore[arg-type]
        self.python = python

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "flask", "--app", self.app_spec, "run",
            "--host", HOST, "--port", str(self.port),
        ]  # fmt: skip


def test_the_library_installs_alone_and_serves(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(
        python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--find-links", dist, built(dist, "flask_session_atomic-*.whl"),
    )  # fmt: skip
    listed = run(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check")
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert installed <= LIBRARY_CLOSURE, installed - LIBRARY_CLOSURE
    assert not installed & SERVICE_ONLY

    app_dir, session_dir = tmp_path / "app", tmp_path / "sessions"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    env = {"SESSION_DIR": str(session_dir)}
    server = FlaskRunServer("app", python=python, cwd=app_dir, env=env)
    with server, requests.Session() as http:
        where = http.get(f"{server.url}/healthz", timeout=10).json()["flask_session"]
        assert where.startswith(str(venv))  # the installed wheel, not this checkout
        assert [http.post(f"{server.url}/inc", timeout=10).json()["n"] for _ in range(3)] == [
            1, 2, 3,
        ]  # fmt: skip
    assert len(list(session_dir.iterdir())) >= 1  # kept in files on the server side

    # a store whose client is not installed is refused at start-up, naming the extra
    redis_app = (
        "import flask, flask_session\n"
        "app = flask.Flask('x')\n"
        "app.config.update(SESSION_TYPE='redis', SESSION_REDIS_URL='redis://127.0.0.1:1/0')\n"
        "flask_session.Session(app)\n"
    )
    refused = subprocess.run(
        [str(python), "-c", redis_app], cwd=app_dir, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "SessionConfigError" in refused.stderr, refused.stderr
    assert "pip install 'Flask-Session-Atomic[redis]'" in refused.stderr
