"""WSGI entry point that works from any directory: ``gunicorn sessionapp.wsgi:app``."""

from . import create_app

app = create_app()
