"""WSGI entry point: ``gunicorn -c gunicorn.conf.py app:app`` or ``flask --app app run``.

Settings come from config.py and FLASK_* environment variables (see README.md).
"""

from sessionapp import create_app

app = create_app()
