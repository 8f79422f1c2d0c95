"""Makes ``import flask_session`` fail loudly when PyPI's Flask-Session shares the environment.

Both distributions install the import name ``flask_session``. Installed after this
project, Flask-Session's ``__init__.py`` replaces ours, so no code of ours would run on
``import flask_session`` and the app would silently run a mix of two packages. This
module is imported at interpreter start-up by ``flask_session_guard.pth`` (shipped in the
wheel, at the top of site-packages) and only registers a finder: it costs one string
comparison per import, and looks at installed distributions once, on the first
``import flask_session``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import metadata
from importlib.machinery import ModuleSpec
from types import ModuleType

OURS, THEIRS = "sessionapp", "Flask-Session"
FIX = (
    f"uninstall both and reinstall this project: `pip uninstall -y {THEIRS} {OURS} &&"
    " pip install <this project>`; if a dependency requires Flask-Session, it cannot share"
    " an environment with this project (a drop-in replacement: same import name, same API)"
)


class FlaskSessionGuard:
    """A meta path finder that only ever refuses: it never finds a module itself."""

    _error: ImportError | None = None
    _checked = False

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != "flask_session":
            return None
        if not cls._checked:
            cls._checked = True
            cls._error = mixed_installation_error()
        if cls._error is not None:
            raise cls._error
        return None


def mixed_installation_error() -> ImportError | None:
    """The error to raise if both distributions are installed, else None."""
    try:
        theirs = metadata.distribution(THEIRS)
        metadata.distribution(OURS)
    except metadata.PackageNotFoundError:
        return None
    return ImportError(
        f"PyPI's {THEIRS} {theirs.version} is installed in this environment"
        f" ({theirs.locate_file('')}) next to this project ({OURS}), and both write the"
        f" `flask_session` package, so the two are mixed and neither works. Fix: {FIX}"
    )


def install() -> None:
    """Register the guard once (the .pth file calls this at start-up)."""
    if FlaskSessionGuard not in sys.meta_path:
        sys.meta_path.insert(0, FlaskSessionGuard)
