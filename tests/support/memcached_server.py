"""A real memcached (Debian's package) on a free loopback port, for tests.

Usage::

    with MemcachedServer() as server:
        server.servers        # "127.0.0.1:<port>", for SESSION_MEMCACHED_SERVERS
        server.flush()        # forget everything (between tests)
        server.stop()         # an outage: the port refuses connections
        server.start()        # back on the same port, empty (memcached keeps nothing)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

from pymemcache.client.base import Client

from .ports import HOST, free_port
from .procs import stop_process, track, untrack

INSTALL_HINT = (
    "memcached is not installed. Run `make test` (it installs the Debian package when "
    "running as root) or `sudo apt-get install -y memcached`."
)


def find_memcached() -> str:
    found = shutil.which("memcached") or (
        "/usr/bin/memcached" if os.access("/usr/bin/memcached", os.X_OK) else None
    )
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


class MemcachedServer:
    def __init__(
        self, *, memory_mb: int = 64, max_item_size: str | None = None, ready_timeout: float = 10.0
    ) -> None:
        self._binary = find_memcached()
        self.port = free_port()
        self.memory_mb = memory_mb
        #: memcached's -I (its item size limit, "1m" by default), e.g. "512k"
        self.max_item_size = max_item_size
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="test-memcached-"))
        self.log_path = self.dir / "memcached.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> Client:
        """A new pymemcache client that waits for replies; the caller closes it."""
        return Client((HOST, self.port), connect_timeout=2, timeout=5, default_noreply=False)

    def start(self) -> MemcachedServer:
        if self.running:
            return self
        args = [
            self._binary,
            "-l", HOST,
            "-p", str(self.port),
            "-U", "0",  # no UDP
            "-m", str(self.memory_mb),
            "-c", "1024",
        ]  # fmt: skip
        if self.max_item_size is not None:
            args += ["-I", self.max_item_size]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # memcached refuses to run as root without -u
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        track(self.proc)
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=10)
            untrack(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        client = self.client()
        try:
            client.flush_all(noreply=False)
        finally:
            client.close()

    def __enter__(self) -> MemcachedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                untrack(self.proc)
                raise RuntimeError(
                    f"memcached exited with code {self.proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("memcached did not start listening")
            time.sleep(0.05)


def memcached_keys(host: str, port: int) -> list[str]:
    """Every live key in a memcached server (``lru_crawler metadump all``), for tests that
    look into the store; memcached has no other way to list keys."""
    found: list[str] = []
    now = time.time()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        buffer = b""
        while not buffer.endswith(b"END\r\n") and not buffer.startswith(b"ERROR"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    for line in buffer.decode(errors="replace").splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "key" not in fields:
            continue
        expires = int(fields.get("exp", "-1"))
        if expires != -1 and expires <= now:
            continue
        found.append(unquote(fields["key"]))
    return found
