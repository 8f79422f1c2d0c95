"""The ``sessionapp`` command: the service on granian, from any directory.

``sessionapp [--workers-max-rss MIB] [APP]`` runs ``python -m sessionapp.serve`` (see there):
``SESSIONAPP_BIND``, ``SESSIONAPP_WORKERS`` and ``SESSIONAPP_THREADS`` work as with
``make run``. It serves ``sessionapp.wsgi:app``, imported from the installed package,
wherever it is run: never an ``app.py`` of the current directory. For gunicorn
instead: ``gunicorn -c python:sessionapp.gunicorn_conf sessionapp.wsgi:app``.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the service on granian; see ``sessionapp --help``."""
    from .serve import main as serve

    serve(argv)
