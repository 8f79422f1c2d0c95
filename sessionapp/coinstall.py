"""Refuse to start on a mix of this project's ``flask_session`` and PyPI's Flask-Session.

Runs before the service imports ``flask_session``: if Flask-Session was installed after
this project, its ``__init__.py`` replaced ours and ``import flask_session`` runs its
code, so the check in ``flask_session/__init__.py`` cannot speak; this one can.
"""

from __future__ import annotations

import importlib.util
import os


def refuse_mixed_flask_session() -> None:
    """Raise ImportError naming the fix if ``flask_session`` is not purely ours."""
    spec = importlib.util.find_spec("flask_session")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    package_dir = locations[0] if locations else None
    if package_dir is None or not os.path.exists(os.path.join(package_dir, "__init__.py")):
        raise ImportError(
            "the flask_session package is incomplete (was PyPI's Flask-Session uninstalled"
            " after this project? it removes files the two share). Fix: `pip uninstall -y"
            " Flask-Session sessionapp && pip install <this project>`"
        )
    from flask_session.coinstall import check_not_mixed  # our file: Flask-Session has none

    check_not_mixed(package_dir)
