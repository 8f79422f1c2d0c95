"""gunicorn settings for the counter service: ``gunicorn -c gunicorn.conf.py app:app``.

Overridable from the environment (and, as always with gunicorn, by command-line flags,
which win over this file):

    SESSIONAPP_BIND      address to listen on          (default 127.0.0.1:5000)
    SESSIONAPP_WORKERS   worker processes              (default 2 x usable cores + 1)
    SESSIONAPP_THREADS   threads per worker            (default 4)

The app's own settings (session store and so on) are FLASK_* variables: see config.py.
"""

import logging
import os
from typing import Any


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (taskset, cgroups cpusets)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(
            f"gunicorn.conf.py: {name} must be a whole number of at least 1, not {raw!r}"
        )
    return value


# Loopback only by default: put a reverse proxy (TLS, buffering) in front for the world.
bind = os.environ.get("SESSIONAPP_BIND", "").strip() or "127.0.0.1:5000"

# Processes for CPU, threads for waiting on the store. Every counter stays exact with
# any number of both: per-user counters are atomic in the session store, the shared
# counter is a locked file or a Redis INCR.
workers = _positive_int("SESSIONAPP_WORKERS", 2 * _usable_cores() + 1)
threads = _positive_int("SESSIONAPP_THREADS", 4)
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
