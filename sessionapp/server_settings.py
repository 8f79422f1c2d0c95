"""The server settings both launchers read: ``sessionapp.serve`` (granian) and gunicorn.conf.py.

    SESSIONAPP_BIND      address to listen on, host:port     (default 127.0.0.1:5000)
    SESSIONAPP_WORKERS   worker processes                    (default: each launcher's own)
    SESSIONAPP_THREADS   threads per worker                  (default 4)

A bad value stops the launcher before anything starts, with a message naming the variable
(``SystemExit``), never a server that half starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

BIND_VAR = "SESSIONAPP_BIND"
WORKERS_VAR = "SESSIONAPP_WORKERS"
THREADS_VAR = "SESSIONAPP_THREADS"

#: loopback only by default: put a reverse proxy (TLS, buffering) in front for the world
DEFAULT_BIND = "127.0.0.1:5000"
#: threads per worker: they wait on the store, so a few per core pay off
DEFAULT_THREADS = 4
_MAX_PORT = 65535


def usable_cores() -> int:
    """CPUs this process may run on (honours taskset and cgroup cpusets), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def positive_int(
    name: str, default: int, environ: Mapping[str, str] | None = None, *, source: str = "sessionapp"
) -> int:
    """The whole number >= 1 in variable `name`, `default` when unset or blank."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{source}: {name} must be a whole number of at least 1, not {raw!r}")
    return value


def bind_address(environ: Mapping[str, str] | None = None, *, source: str = "sessionapp") -> str:
    """SESSIONAPP_BIND as ``host:port`` (IPv6 hosts in brackets), checked; the default if unset."""
    env = os.environ if environ is None else environ
    raw = env.get(BIND_VAR, "").strip()
    if not raw:
        return DEFAULT_BIND
    split_bind(raw, source=source)
    return raw


def split_bind(
    bind: str, *, source: str = "sessionapp", name: str = BIND_VAR
) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; ``"[::1]:8000"`` -> ``("::1", 8000)``; a bad
    value is refused naming variable ``name``."""
    host, sep, port_text = bind.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text) if port_text.isdigit() else 0
    if not sep or not host or not 1 <= port <= _MAX_PORT:
        raise SystemExit(
            f"{source}: {name} must be host:port (e.g. 127.0.0.1:5000), not {bind!r}"
        )
    return host, port


def workers(
    default: int, environ: Mapping[str, str] | None = None, *, source: str = "sessionapp"
) -> int:
    """SESSIONAPP_WORKERS, `default` when unset (each launcher has its own)."""
    return positive_int(WORKERS_VAR, default, environ, source=source)


def threads(environ: Mapping[str, str] | None = None, *, source: str = "sessionapp") -> int:
    """SESSIONAPP_THREADS, DEFAULT_THREADS when unset."""
    return positive_int(THREADS_VAR, DEFAULT_THREADS, environ, source=source)
