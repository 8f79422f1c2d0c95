"""The one check that PyPI's Flask-Session does not share an environment with this library.

Both distributions install the import name ``flask_session`` and pip does not stop that.
Installed after this library, Flask-Session's ``__init__.py`` replaces ours, so no code of
ours runs on ``import flask_session`` and the app silently runs a mix of two packages;
uninstalled afterwards, it deletes files the two share. Either way ``import flask_session``
must fail loudly, naming the fix.

:func:`refuse_mixed_installation` is the check, and two places call it:

- ``flask_session_guard.pth``, at the top of site-packages (the wheel ships it; setup.py
  adds it to editable installs), imports this module at interpreter start-up, which puts
  :class:`FlaskSessionGuard` first on ``sys.meta_path``. It is the one that can speak when
  Flask-Session's ``__init__.py`` replaced ours.
- ``flask_session/__init__.py``, for interpreters that never read the ``.pth`` (the package
  on ``PYTHONPATH`` rather than in site-packages, ``python -S``, embedded interpreters).

What start-up pays: importing this module, which imports nothing the interpreter has not
already loaded (``sys``, ``os``; never ``importlib.metadata``, which costs tens of
milliseconds), and one string comparison per later import. The check itself runs once per
process, on the first ``import flask_session``: one directory listing per ``sys.path``
entry. ``bench/startup.py`` measures both.
"""

import os
import sys

# Nothing else at run time: start-up imports this module, so it imports only what every
# interpreter has loaded before site-packages (annotations are strings for that reason).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

#: this library's distribution, and the one it replaces
OURS, THEIRS = "Flask-Session-Atomic", "Flask-Session"
#: THEIRS as installers spell it in metadata directory names (lower case, "_" for "-")
THEIRS_DIR_NAME = "flask_session"
FIX = (
    f"`pip uninstall -y {THEIRS} {OURS} && pip install {OURS}` (from a checkout of this"
    f" project: `pip install -e .`). If a dependency requires {THEIRS}, it cannot share an"
    f" environment with {OURS}: a drop-in replacement, same import name, same API"
)


class CoInstallationError(ImportError):
    """PyPI's Flask-Session is installed in the same environment as this library."""


def metadata_dir_project(name: str) -> "str | None":
    """The normalised project name of an installed distribution's metadata directory
    (``Flask_Session-0.8.0.dist-info``, ``flask_session-0.8.0-py3.11.egg-info``), else None."""
    lower = name.lower()
    for suffix in (".dist-info", ".egg-info"):
        if lower.endswith(suffix):
            return lower[: -len(suffix)].split("-", 1)[0].replace(".", "_")
    return None


def find_theirs(path: "Sequence[str]") -> "str | None":
    """The metadata directory of an installed Flask-Session on ``path``, else None."""
    for entry in path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, or a directory that does not exist
            continue
        for name in names:
            if metadata_dir_project(name) == THEIRS_DIR_NAME:
                return os.path.join(entry or ".", name)
    return None


def mixed_installation_error(
    path: "Sequence[str] | None" = None,
) -> "CoInstallationError | None":
    """The error to raise if Flask-Session is installed on ``path`` (default sys.path), or
    if it was and its uninstallation left our package without its ``__init__.py``."""
    theirs = find_theirs(sys.path if path is None else path)
    if theirs is not None:
        return CoInstallationError(
            f"PyPI's {THEIRS} is installed in this environment ({theirs}) next to {OURS};"
            " both write the `flask_session` package, so the two are mixed and neither"
            f" works. Fix: {FIX}"
        )
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.join(here, "flask_session")
    if os.path.isdir(package) and not os.path.exists(os.path.join(package, "__init__.py")):
        return CoInstallationError(
            f"the flask_session package in {here} is incomplete: uninstalling {THEIRS}"
            f" removed files it shared with {OURS}. Fix: {FIX}"
        )
    return None


class FlaskSessionGuard:
    """A meta path finder that only ever refuses: it never finds a module itself."""

    #: the check's verdict, once it has run (it runs once per process)
    verdict: "CoInstallationError | None" = None
    checked = False

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname == "flask_session":
            refuse_mixed_installation()
        return None


def refuse_mixed_installation() -> None:
    """Raise CoInstallationError, naming the fix, if Flask-Session shares the environment."""
    if not FlaskSessionGuard.checked:
        FlaskSessionGuard.verdict = mixed_installation_error()
        FlaskSessionGuard.checked = True
    if FlaskSessionGuard.verdict is not None:
        raise FlaskSessionGuard.verdict


def install() -> None:
    """Put the guard first on sys.meta_path, once (importing this module does it)."""
    if FlaskSessionGuard not in sys.meta_path:
        sys.meta_path.insert(0, FlaskSessionGuard)


install()
