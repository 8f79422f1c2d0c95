"""gunicorn settings for the counter service: ``gunicorn -c gunicorn.conf.py app:app``.

Overridable from the environment (and, as always with gunicorn, by command-line flags,
which win over this file):

    SESSIONAPP_BIND      address to listen on          (default 127.0.0.1:5000)
    SESSIONAPP_WORKERS   worker processes              (default 2 x usable cores + 1)
    SESSIONAPP_THREADS   threads per worker            (default 4)
    SESSIONAPP_METRICS_BIND, SESSIONAPP_METRICS_ALLOW   GET /metrics on a port of its
                         own, summed over the workers (sessionapp/metrics_server.py)

The variables are read and checked by sessionapp/server_settings.py, shared with the
granian launcher (``make run``, sessionapp/serve.py). The app's own settings (session
store and so on) are FLASK_* variables: see config.py.
"""

import logging
from typing import Any

from sessionapp import server_settings as _server_settings
from sessionapp.metrics_server import Exporter as _Exporter
from sessionapp.metrics_server import MetricsSettings as _MetricsSettings

_SOURCE = "gunicorn.conf.py"

# Checked here, with the other settings, before gunicorn starts anything.
_metrics = _MetricsSettings.from_environ(source=_SOURCE)
_exporter = _Exporter(_metrics, source=_SOURCE) if _metrics is not None else None

# Loopback only by default: put a reverse proxy (TLS, buffering) in front for the world.
bind = _server_settings.bind_address(source=_SOURCE)

# Processes for CPU, threads for waiting on the store. Every counter stays exact with
# any number of both: per-user counters are atomic in the session store, the shared
# counter is a locked file or a Redis INCR.
workers = _server_settings.workers(2 * _server_settings.usable_cores() + 1, source=_SOURCE)
threads = _server_settings.threads(source=_SOURCE)
worker_class = "gthread"

# A request that outlives this is killed along with its worker; the session store frees
# any lock the worker held (the kernel drops its flocks; Redis locks expire).
timeout = 30
graceful_timeout = 10
keepalive = 5

loglevel = "info"
accesslog = "-"

# gunicorn 27 opens a control socket at one fixed path per user (~/.gunicorn/gunicorn.ctl),
# so a second instance on the same machine (a blue/green switch, a test run) fights the
# first for it. Nothing here uses it. Older gunicorn versions ignore this setting.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Send the app's log records (sessionapp, flask_session) through gunicorn's error log.

    Without this they would reach stderr bare, without time or process id, through
    Python's last-resort handler. Workers are forked after this runs and inherit it.
    """
    root = logging.getLogger()
    for handler in server.log.error_log.handlers:
        root.addHandler(handler)
    root.setLevel(server.log.error_log.level)
    if _exporter is not None:
        # Before the workers are forked: they inherit the metrics environment.
        _exporter.prepare()
        _exporter.start(getattr(server.app, "app_uri", None))
        # Kept on the arbiter: a SIGHUP reloads this file, which makes a new _exporter.
        server.sessionapp_exporter = _exporter


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (or was killed): its counts stay, its live gauges go."""
    exporter = getattr(server, "sessionapp_exporter", None)
    if exporter is not None:
        exporter.worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    """Stop the metrics exporter with the server."""
    exporter = getattr(server, "sessionapp_exporter", None)
    if exporter is not None:
        exporter.stop()
