"""The one gunicorn configuration every target runs with (A, B and C alike).

Passed with ``-c`` so that a project's own ./gunicorn.conf.py is never picked up instead;
the runner adds only ``--bind 127.0.0.1:<free port>``.
"""

workers = 4
threads = 4
worker_class = "gthread"
loglevel = "warning"
accesslog = None
graceful_timeout = 5
