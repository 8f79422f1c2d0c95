"""The counter service's ``GET /metrics``: every worker's session metrics, on a port of its own.

Off unless ``SESSIONAPP_METRICS_BIND`` is set; read and checked by both launchers
(``sessionapp/serve.py`` for granian, ``gunicorn.conf.py``) before anything starts:

    SESSIONAPP_METRICS_BIND    host:port of the metrics listener   (unset: no metrics)
    SESSIONAPP_METRICS_ALLOW   client networks answered, comma-separated
                               (default 127.0.0.0/8,::1: loopback only)

With it set, the launcher (:class:`Exporter`):

1. points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory (the one given, emptied of
   earlier runs' files, or a temporary one removed at exit) and sets
   ``FLASK_SESSION_METRICS=prometheus`` (unless set) before any worker starts, so every
   worker, and every worker that replaces one, writes its metrics to files of its own
   there (``prometheus_client``'s multiprocess mode);
2. binds the listener's socket itself (a taken port stops the launcher, naming the
   setting) and hands it to one exporter process, ``python -m sessionapp.metrics_server``,
   which answers ``GET /metrics`` with the sum over every worker's files (those of
   exited workers too: a worker killed by ``kill -9`` keeps what it counted) plus the
   store's live-session count, asked at each scrape; any other client than the allowed
   networks gets 403. The exporter exits with the launcher (it watches its parent).

The exporter is a separate process rather than a thread of the server's main process:
it builds the app once to get its session store (for the live count), and nothing the app
opens should live in the process that forks gunicorn's workers (sessionapp/serve.py
checks the app in a child for the same reason).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flask_session._version import install_hint

from . import server_settings

BIND_VAR = "SESSIONAPP_METRICS_BIND"
ALLOW_VAR = "SESSIONAPP_METRICS_ALLOW"
#: prometheus_client's multiprocess directory (its name for it)
MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
#: the app setting that turns the library's metrics on in every worker
APP_METRICS_VAR = "FLASK_SESSION_METRICS"
#: loopback only, unless SESSIONAPP_METRICS_ALLOW says more
DEFAULT_ALLOW = "127.0.0.0/8,::1"
METRICS_PATH = "/metrics"
#: seconds between the exporter's checks that its launcher still runs
PARENT_CHECK_INTERVAL_S = 0.5
#: seconds a scrape client gets to send its request
CLIENT_TIMEOUT_S = 10
#: seconds the exporter gets to exit on SIGTERM before it is killed
STOP_TIMEOUT_S = 5
HTTP_OK = 200
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsSettings:
    """Where the listener binds and whom it answers; :meth:`from_environ` checks both."""

    host: str
    port: int
    allow: tuple[Network, ...]

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, source: str = "sessionapp"
    ) -> MetricsSettings | None:
        """The settings, None when metrics are off; SystemExit naming a bad variable."""
        env = os.environ if environ is None else environ
        bind = env.get(BIND_VAR, "").strip()
        allow_text = env.get(ALLOW_VAR, "").strip()
        if not bind:
            if allow_text:
                raise SystemExit(
                    f"{source}: {ALLOW_VAR} is set but {BIND_VAR} is not; set {BIND_VAR}"
                    " (e.g. 127.0.0.1:9464) to serve /metrics"
                )
            return None
        host, port = server_settings.split_bind(bind, source=source, name=BIND_VAR)
        return cls(host=host, port=port, allow=parse_allow(allow_text or DEFAULT_ALLOW, source))


def parse_allow(text: str, source: str = "sessionapp") -> tuple[Network, ...]:
    """``"127.0.0.0/8,::1"`` -> networks; SystemExit naming SESSIONAPP_METRICS_ALLOW."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SystemExit(
                f"{source}: {ALLOW_VAR} must be IP addresses or networks, comma-separated"
                f" (e.g. 127.0.0.1,10.0.0.0/8), not {text!r}: {item!r} is neither"
            ) from None
    return tuple(networks)


def is_allowed(address: str, allow: Sequence[Network]) -> bool:
    """Whether a client at ``address`` may read the metrics."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in allow)


class Exporter:
    """The launcher's side: the environment for the workers, the socket, the process."""

    def __init__(self, settings: MetricsSettings, *, source: str) -> None:
        self.settings = settings
        self.source = source
        self.directory: str | None = None
        self._owned_directory = False
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Refuse a missing prometheus_client; set up the directory and the workers'
        environment. Call before any worker starts (and before the app is built)."""
        # Looked for, not imported: prometheus_client picks its in-memory or multiprocess
        # values once, at import, from PROMETHEUS_MULTIPROC_DIR, and gunicorn's workers
        # are forks of this process: an import here before the variable is set would
        # leave every worker counting in its own memory.
        if importlib.util.find_spec("prometheus_client") is None:
            raise SystemExit(
                f"{self.source}: {BIND_VAR} is set but prometheus_client is not installed:"
                f" {install_hint('metrics')}"
            )
        given = os.environ.get(MULTIPROC_VAR, "").strip()
        if given:
            path = Path(given)
            if not path.is_dir():
                raise SystemExit(f"{self.source}: {MULTIPROC_VAR} {given!r} is not a directory")
            for stale in path.glob("*.db"):  # an earlier run's counts are not this run's
                stale.unlink()
            self.directory = str(path)
        else:
            self.directory = tempfile.mkdtemp(prefix="sessionapp-metrics-")
            self._owned_directory = True
        os.environ[MULTIPROC_VAR] = self.directory
        os.environ.setdefault(APP_METRICS_VAR, "prometheus")

    def start(self, app_target: str | None) -> None:
        """Bind the listener and start the exporter process, counting the live sessions
        of ``app_target``'s store (None: no live count). SystemExit naming
        SESSIONAPP_METRICS_BIND if the address is unusable."""
        if self.directory is None:
            self.prepare()
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as error:
            self.stop()
            raise SystemExit(
                f"{self.source}: {BIND_VAR} {host}:{port} cannot be bound: {error.strerror}"
            ) from None
        allow = ",".join(str(network) for network in self.settings.allow)
        env = {key: value for key, value in os.environ.items() if key != APP_METRICS_VAR}
        with listener:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sessionapp.metrics_server",
                    "--fd",
                    str(listener.fileno()),
                    "--allow",
                    allow,
                    "--parent",
                    str(os.getpid()),
                    *([app_target] if app_target else []),
                ],
                pass_fds=(listener.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )

    def worker_exited(self, pid: int) -> None:
        """A worker is gone: drop its live gauges' files (gunicorn's child_exit)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop the exporter process and remove a directory made for this run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._owned_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


# -- the exporter process ----------------------------------------------------------------


def load_app(target: str) -> Any:
    """The WSGI app ``module:name`` (``module:factory()`` calls a factory)."""
    spec, factory = (target[:-2], True) if target.endswith("()") else (target, False)
    module_name, _, attribute = spec.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in (attribute or "app").split("."):
        found = getattr(found, part)
    return found() if factory else found


def build_registry(app_target: str | None) -> Any:
    """Every worker's metrics summed, plus the live-session count of the app's store."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from flask_session import ServerSideSessionInterface
    from flask_session.prometheus import LiveSessionsCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if not app_target:
        return registry
    try:
        app = load_app(app_target)
    except Exception:  # the workers' metrics are still worth serving
        logger.exception("%s could not be built: no live-session count", app_target)
        return registry
    interface = getattr(app, "session_interface", None)
    if isinstance(interface, ServerSideSessionInterface):
        registry.register(LiveSessionsCollector(interface.store))
    return registry


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsHTTPServer
    timeout = CLIENT_TIMEOUT_S

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not is_allowed(self.client_address[0], self.server.allow):
            self._answer(HTTP_FORBIDDEN, b"403 Forbidden: metrics are not served to this address\n")
            return
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self._answer(HTTP_NOT_FOUND, b"404 Not Found: try /metrics\n")
            return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self._answer(HTTP_OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        logger.debug("%s %s", self.client_address[0], format % args)


class _MetricsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, registry: Any, allow: tuple[Network, ...]) -> None:
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family
        self.registry = registry
        self.allow = allow


def _watch_parent(parent: int, server: _MetricsHTTPServer) -> None:
    """Stop serving once the launcher is gone (even killed by SIGKILL)."""
    stopped = threading.Event()
    while not stopped.wait(PARENT_CHECK_INTERVAL_S):
        if os.getppid() != parent:
            server.shutdown()
            return


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve /metrics for sessionapp's workers")
    parser.add_argument("--fd", type=int, required=True, help="the bound listening socket")
    parser.add_argument("--allow", default=DEFAULT_ALLOW, help="client networks answered")
    parser.add_argument("--parent", type=int, required=True, help="the launcher's pid")
    parser.add_argument(
        "app", nargs="?", help="module:name of the WSGI app whose live sessions are counted"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(process)d] [%(levelname)s] %(message)s")
    sock = socket.socket(fileno=args.fd)
    server = _MetricsHTTPServer(sock, build_registry(args.app), parse_allow(args.allow))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=_watch_parent, args=(args.parent, server), daemon=True).start()
    host, port = sock.getsockname()[:2]
    logger.info("serving %s on %s:%s", METRICS_PATH, host, port)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
