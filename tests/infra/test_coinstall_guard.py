"""The one co-installation check (flask_session_guard): what it finds, and that it speaks
where no code of ours runs on ``import flask_session``.

The wheel installs (ours then Flask-Session, and the reverse) are in
tests/dropin/test_install.py; here, the editable install `make venv` makes, against a real
Flask-Session 0.8 (the benchmark's venv, tests/support/flask_session_08.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import flask_session_guard
from tests.support.flask_session_08 import flask_session_08_python

REPO_ROOT = Path(__file__).resolve().parents[2]
GUARD_ON_META_PATH = (
    "import sys; print(any(getattr(finder, '__name__', '') == 'FlaskSessionGuard'"
    " for finder in sys.meta_path))"
)


@pytest.mark.parametrize(
    ("name", "project"),
    [
        ("flask_session-0.8.0.dist-info", "flask_session"),
        ("Flask_Session-0.7.1.dist-info", "flask_session"),
        ("Flask_Session-0.4.0-py3.11.egg-info", "flask_session"),
        ("Flask_Session.egg-info", "flask_session"),
        ("flask_session_atomic-0.2.0.dist-info", "flask_session_atomic"),  # ours: not theirs
        ("flask_session", None),  # a package, not metadata
        ("flask_sqlalchemy-3.1.1.dist-info", "flask_sqlalchemy"),
    ],
)
def test_metadata_directory_names(name: str, project: str | None) -> None:
    assert flask_session_guard.metadata_dir_project(name) == project


@pytest.fixture(scope="module")
def their_site_packages() -> Path:
    """site-packages of a venv where PyPI's Flask-Session 0.8 is really installed."""
    python = flask_session_08_python()
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return Path(purelib)


def test_finds_a_real_flask_session_and_not_ours(their_site_packages: Path) -> None:
    error = flask_session_guard.mixed_installation_error([str(their_site_packages)])
    assert error is not None
    message = str(error)
    assert "flask_session-0.8.0.dist-info" in message
    assert "pip uninstall -y Flask-Session Flask-Session-Atomic" in message
    # this environment (make venv: our library editable, no Flask-Session) is clean
    assert flask_session_guard.mixed_installation_error() is None


def test_editable_install_has_the_guard_at_start_up(tmp_path: Path) -> None:
    """setup.py adds the guard's .pth to the editable wheel: a fresh interpreter of this
    venv has it on sys.meta_path before anything imports flask_session_guard."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    assert (site_packages / "flask_session_guard.pth").is_file()
    result = subprocess.run(
        [sys.executable, "-c", GUARD_ON_META_PATH], cwd=tmp_path, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "True"


def test_editable_install_refuses_a_flask_session_that_shadows_it(
    their_site_packages: Path, tmp_path: Path
) -> None:
    """Flask-Session's package first on sys.path: ``import flask_session`` would run its
    code and none of ours, yet it fails naming the fix (the start-up guard speaks)."""
    env = {**os.environ, "PYTHONPATH": str(their_site_packages)}
    result = subprocess.run(
        [sys.executable, "-c", "import flask_session"], cwd=tmp_path, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "flask_session_guard.CoInstallationError" in result.stderr, result.stderr
    assert "PyPI's Flask-Session is installed" in result.stderr
    # what it would have imported without the guard: Flask-Session's own package
    bypass = subprocess.run(
        [sys.executable, "-S", "-c", "import flask_session; print(flask_session.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert bypass.stdout.startswith(str(their_site_packages))


def test_an_incomplete_package_is_refused(tmp_path: Path) -> None:
    """Uninstalling Flask-Session after a mix deletes the files both shipped, our
    ``__init__.py`` among them: the guard beside the package says so."""
    site = tmp_path / "site"
    (site / "flask_session" / "stores").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "flask_session_guard.py", site)
    script = "import flask_session_guard as g; print(g.mixed_installation_error([]))"
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "package in" in result.stdout and "is incomplete" in result.stdout
    (site / "flask_session" / "__init__.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "None"
