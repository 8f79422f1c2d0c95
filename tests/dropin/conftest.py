"""Fixtures for the Flask-Session 0.8 drop-in tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.flask_session_08 import flask_session_08_python


@pytest.fixture(scope="session")
def fs08_python() -> Path:
    """Python of a venv with PyPI's Flask-Session 0.8 (built once per run)."""
    return flask_session_08_python()
