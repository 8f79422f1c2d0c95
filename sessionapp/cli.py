"""The ``sessionapp`` command: the service on gunicorn, from any directory.

``sessionapp [gunicorn options]`` runs ``gunicorn -c python:sessionapp.gunicorn_conf
sessionapp.wsgi:app`` (the repository's gunicorn.conf.py, shipped in the package), so
``SESSIONAPP_BIND``, ``SESSIONAPP_WORKERS`` and gunicorn's own flags work as with
``make run``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run the service; extra arguments go to gunicorn (e.g. ``--bind 0.0.0.0:8000``)."""
    from gunicorn.app.wsgiapp import run

    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["sessionapp", "-c", "python:sessionapp.gunicorn_conf", *args, "sessionapp.wsgi:app"]
    run()
