"""The production server: the counter service on granian (``make run``, ``sessionapp``).

``python -m sessionapp.serve [options] [APP]`` is to granian what gunicorn.conf.py is to
gunicorn. It reads the same environment (sessionapp/server_settings.py):

    SESSIONAPP_BIND      address to listen on, host:port   (default 127.0.0.1:5000)
    SESSIONAPP_WORKERS   worker processes                  (default: usable cores)
    SESSIONAPP_THREADS   blocking (WSGI) threads per worker (default 4)
    SESSIONAPP_METRICS_BIND, SESSIONAPP_METRICS_ALLOW   GET /metrics on a port of its
                         own, summed over the workers (sessionapp/metrics_server.py)

and serves APP (default ``sessionapp.wsgi:app``, the service itself, imported from the
installed package whatever the current directory holds, never an ``app.py`` found there;
``module:factory()`` calls a factory) with:

- failed workers respawned (a worker killed by ``kill -9`` is replaced), SIGHUP respawning
  all workers gracefully, and ``--workers-max-rss MiB`` recycling workers that grow;
- a deadline on reading request headers, so slow clients (one byte a second) are cut off
  instead of holding a connection open forever; granian reads headers in Rust, outside
  the worker threads, so they never stall the requests of other clients meanwhile;
- an access log, and the app's own log records (``sessionapp``, ``flask_session``) with
  time, process id and level, like granian's own lines;
- workers started as fresh interpreters (``spawn``), each importing the app itself.

A wrong setting (a bad variable above, or an app setting that ``create_app`` refuses) stops
it before it listens, with a message naming the setting and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_session import __version__

from . import server_settings
from .metrics_server import Exporter, MetricsSettings

#: a client that has not sent its complete request headers within this is disconnected
HEADER_READ_TIMEOUT_MS = 5_000
#: pause between starting a replacement worker and stopping the old one (reload, recycling)
RESPAWN_INTERVAL_S = 1.0
#: seconds a stopping worker gets to finish its requests before it is killed
WORKERS_KILL_TIMEOUT_S = 10
#: how granian starts its worker processes (see main)
WORKER_START_METHOD = "spawn"
#: exit status when a setting is refused (like gunicorn's "worker failed to boot": not 0)
EXIT_BAD_SETTING = 1

_SOURCE = "sessionapp.serve"
#: the service, from the installed package: the same app as the repository's app.py
DEFAULT_APP = "sessionapp.wsgi:app"

_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
_ACCESS_FORMAT = "[%(asctime)s] [%(process)d] [ACCESS] %(message)s"
#: granian's fields for one request (its default adds a second time stamp)
ACCESS_LOG_FORMAT = '%(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f ms'
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
#: granian configures logging from this in each (spawned) worker: the root logger gets the
#: handler, so records of the app's loggers,
#: which propagate, come out in the same format as granian's own lines.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {"format": _LOG_FORMAT, "datefmt": _DATE_FORMAT},
        "access": {"format": _ACCESS_FORMAT, "datefmt": _DATE_FORMAT},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}


@dataclass(frozen=True)
class ServeSettings:
    """What the environment asks for; `from_environ` refuses a bad value by name."""

    host: str
    port: int
    workers: int
    threads: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        bind = server_settings.bind_address(environ, source=_SOURCE)
        host, port = server_settings.split_bind(bind, source=_SOURCE)
        # One process per core, granian's advice: its Rust I/O threads do what gunicorn's
        # extra workers were for. (A quick check on a shared 2-core machine: on the
        # filesystem store 3 workers did ~1.2x of 2, on Redis no clear difference; raise
        # SESSIONAPP_WORKERS where requests wait on the disk.)
        workers = server_settings.workers(server_settings.usable_cores(), environ, source=_SOURCE)
        threads = server_settings.threads(environ, source=_SOURCE)
        return cls(host=host, port=port, workers=workers, threads=threads)


def split_target(target: str) -> tuple[str, bool]:
    """``"mod:factory()"`` -> ``("mod:factory", True)`` (gunicorn's spelling of a factory)."""
    if target.endswith("()"):
        return target[:-2], True
    return target, False


def load_app(target: str, factory: bool) -> Any:
    """Import ``module:name`` (``name`` may be dotted; ``app`` if left out) and return the
    app, called first when `factory`: how granian's workers resolve the target, with the
    current directory first on ``sys.path`` as there. Our own code, not granian's loader,
    which lives in its private ``granian._internal`` (no public equivalent)."""
    module_name, _, name = target.partition(":")
    sys.path.insert(0, os.getcwd())
    app: Any = importlib.import_module(module_name)
    for attribute in (name or "app").split("."):
        app = getattr(app, attribute)
    return app() if factory else app


def check_app(target: str, factory: bool) -> str | None:
    """Build the app once in a throwaway child process; the error text if it fails.

    A child, so that nothing the app opens at build time (a store client, a file) stays
    open in the server's main process for its lifetime; granian itself never notices a
    broken app: with respawn on, it replaces crashing workers forever.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        status = 0
        try:
            load_app(target, factory)
        except BaseException as exc:  # noqa: BLE001 - any failure is the message
            status = EXIT_BAD_SETTING
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            os.write(write_end, message.encode(errors="replace"))
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) == 0:
        return None
    return message or f"building {target} failed (status {wait_status})"


def build_server(
    settings: ServeSettings,
    target: str,
    *,
    factory: bool = False,
    workers_max_rss: int | None = None,
    rss_sample_interval: int = 30,
) -> Any:
    """The granian server object for `settings`, not yet serving."""
    # granian's documented embedding API: the Granian class and its option types
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    return Granian(
        target,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        factory=factory,
        workers=settings.workers,
        blocking_threads=settings.threads,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_INTERVAL_S,
        workers_kill_timeout=WORKERS_KILL_TIMEOUT_S,
        workers_max_rss=workers_max_rss,
        rss_sample_interval=rss_sample_interval,
        log_enabled=True,
        log_access=True,
        log_access_format=ACCESS_LOG_FORMAT,
        log_dictconfig=LOGGING,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionapp",
        description="Serve the counter service on granian (settings: SESSIONAPP_* variables).",
    )
    parser.add_argument(
        "app",
        nargs="?",
        default=DEFAULT_APP,
        help=f"WSGI app, module:name or module:factory() (default: {DEFAULT_APP})",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--workers-max-rss",
        type=int,
        metavar="MIB",
        help="gracefully replace a worker whose memory exceeds MIB mebibytes",
    )
    parser.add_argument(
        "--rss-sample-interval",
        type=int,
        default=30,
        metavar="SECONDS",
        help="how often worker memory is checked (default 30)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Check every setting, then serve until SIGINT/SIGTERM; exit 1 on a refused setting."""
    args = _parser().parse_args(argv)
    settings = ServeSettings.from_environ()
    metrics = MetricsSettings.from_environ(source=_SOURCE)
    exporter = Exporter(metrics, source=_SOURCE) if metrics is not None else None
    if exporter is not None:
        exporter.prepare()  # before the app is checked: it is checked with metrics on
    target, factory = split_target(args.app)
    problem = check_app(target, factory)
    if problem is not None:
        print(f"{_SOURCE}: {target} cannot start: {problem}", file=sys.stderr)
        if exporter is not None:
            exporter.stop()  # nothing started yet: removes its directory
        raise SystemExit(EXIT_BAD_SETTING)
    # Fresh interpreters for the workers, not forks of this process: granian forks its
    # replacement workers from a process with threads (one watching each worker), and a
    # fork taken while one of them held a lock left replacements hung before they listened
    # (seen here under kill -9 of two workers in quick succession).
    multiprocessing.set_start_method(WORKER_START_METHOD, force=True)
    server = build_server(
        settings,
        target,
        factory=factory,
        workers_max_rss=args.workers_max_rss,
        rss_sample_interval=args.rss_sample_interval,
    )
    if exporter is None:
        server.serve()
        return
    exporter.start(target + ("()" if factory else ""))
    try:
        # Granian has no hook for a worker's exit: nothing is lost, as the workers keep
        # counters and histograms only (their files outlive them); gunicorn.conf.py
        # marks its exited workers dead all the same.
        server.serve()
    finally:
        exporter.stop()


if __name__ == "__main__":
    main()
