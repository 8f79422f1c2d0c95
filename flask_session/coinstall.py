"""Refusing to run as a mix of this package and PyPI's Flask-Session.

Both install the import name ``flask_session``. pip does not stop that: installing
Flask-Session after this project overwrites our ``__init__.py`` and leaves a mix of
both packages' files; uninstalling it afterwards deletes files we need. Either way the
result must fail loudly at import, naming the fix, instead of half-working.
"""

from __future__ import annotations

import os
from importlib import metadata

from .errors import SessionConfigError

#: this project's distribution name (pyproject.toml's ``[project] name``)
OUR_DISTRIBUTION = "sessionapp"
THEIR_DISTRIBUTION = "Flask-Session"
#: written into our package only (never shipped by Flask-Session): if ``flask_session``
#: lacks it, or an installed Flask-Session claims our files, the packages are mixed
MARKER = "_version.py"

FIX = (
    f"uninstall both and reinstall this project: `pip uninstall -y {THEIR_DISTRIBUTION}"
    f" {OUR_DISTRIBUTION} && pip install <this project>`; if a dependency requires"
    f" {THEIR_DISTRIBUTION}, that dependency cannot share an environment with this"
    " project (it is a drop-in replacement: same import name, same API)"
)


class CoInstallationError(SessionConfigError, ImportError):
    """PyPI's Flask-Session is installed in the same environment as this package."""


def check_not_mixed(package_dir: str) -> None:
    """Raise CoInstallationError if Flask-Session is installed next to this package."""
    try:
        dist = metadata.distribution(THEIR_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return
    files = dist.files or []
    claims_ours = any(
        str(path).replace("\\", "/").startswith("flask_session/")
        and os.path.realpath(str(dist.locate_file(path))).startswith(
            os.path.realpath(package_dir) + os.sep
        )
        for path in files
    )
    if claims_ours or not os.path.exists(os.path.join(package_dir, MARKER)):
        raise CoInstallationError(
            f"PyPI's {THEIR_DISTRIBUTION} {dist.version} is installed in this environment"
            f" ({dist.locate_file('')}), and it writes the same `flask_session` package"
            f" as this project, so the two are mixed and neither works. Fix: {FIX}"
        )
