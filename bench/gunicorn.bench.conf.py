"""The gunicorn settings every app runs with when the server is gunicorn (A, B, C, D alike).

Passed with ``-c`` so that a project's own ./gunicorn.conf.py is never picked up instead;
the runner adds ``--bind 127.0.0.1:<free port>``, ``--workers`` and ``--threads`` (the
same for every app; see bench/harness/servers.py for the defaults).
"""

worker_class = "gthread"
loglevel = "warning"
accesslog = None
graceful_timeout = 5
