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
import socket
import time
from urllib.parse import unquote

from pymemcache.client.base import Client

from .ports import HOST
from .server_process import ServerProcess

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


class MemcachedServer(ServerProcess):
    """One memcached on 127.0.0.1 (TCP only), `memory_mb` of cache; it keeps nothing on disk.

    ``max_item_size`` is memcached's -I (its item size limit, "1m" by default), e.g. "512k".
    """

    kind = "memcached"

    def __init__(
        self,
        *,
        port: int | None = None,
        memory_mb: int = 64,
        max_item_size: str | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self._binary = find_memcached()
        self.memory_mb = memory_mb
        self.max_item_size = max_item_size
        super().__init__(port=port, ready_timeout=ready_timeout)

    @property
    def servers(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self) -> Client:
        """A new pymemcache client that waits for replies; the caller closes it."""
        return Client((HOST, self.port), connect_timeout=2, timeout=5, default_noreply=False)

    def flush(self) -> None:
        client = self.client()
        try:
            client.flush_all(noreply=False)
        finally:
            client.close()

    def command(self) -> list[str]:
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
        return args

    def is_ready(self) -> bool:
        """memcached answers ``version`` (not merely: something accepts connections there)."""
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION ")
        except OSError:
            return False


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
