"""The package version and distribution: the one place each is written (pyproject.toml reads
the version from here)."""

__version__ = "0.2.0"
#: the distribution that installs this package (pip install names it, with an extra)
DISTRIBUTION = "Flask-Session-Atomic"


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` of this distribution."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
