"""Plain HTTP for the reliability tests: one new connection per request, never a retry.

A retried POST could apply an increment twice, and a reused keep-alive connection can
fail because a killed worker held it rather than because this request failed; either
would blur what the tests count. So every request here opens its own connection and a
failure is reported as "no answer" (``Reply.status == 0``), never retried.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import psutil

HOST = "127.0.0.1"


@dataclass
class Reply:
    """An HTTP answer, or ``status == 0`` with ``error`` when none came."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None
    elapsed: float = 0.0

    @property
    def answered(self) -> bool:
        return self.status != 0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def cookie(self, name: str) -> str | None:
        """The value this answer sets for cookie ``name`` ("" when it deletes it)."""
        for header in self.set_cookies:
            parsed = SimpleCookie()
            try:
                parsed.load(header)
            except CookieError:
                continue
            if name in parsed:
                morsel = parsed[name]
                return "" if morsel["max-age"] == "0" else morsel.value
        return None

    def cookie_attributes(self, name: str) -> str | None:
        """The raw Set-Cookie header for cookie ``name``."""
        for header in self.set_cookies:
            if header.startswith(name + "="):
                return header
        return None


def port_of(base_url: str) -> int:
    return urlsplit(base_url).port  # type: ignore[return-value]


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 15.0,
) -> Reply:
    """One request on a new connection; never raises for network failures."""
    all_headers = {"Accept": "application/json"}
    if cookie is not None:
        all_headers["Cookie"] = cookie
    all_headers.update(headers or {})
    if method in ("POST", "PUT", "PATCH") and "Content-Length" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection(HOST, port_of(base_url), timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body or None, headers=all_headers)
        return read_reply(conn, started)
    except (OSError, http.client.HTTPException) as error:
        return Reply(error=f"{type(error).__name__}: {error}", elapsed=time.monotonic() - started)
    finally:
        conn.close()


def read_reply(conn: http.client.HTTPConnection, started: float) -> Reply:
    response = conn.getresponse()
    body = response.read()
    return Reply(
        status=response.status,
        headers={name.lower(): value for name, value in response.getheaders()},
        set_cookies=response.headers.get_all("Set-Cookie") or [],
        body=body,
        elapsed=time.monotonic() - started,
    )


class PendingRequest:
    """A request sent now and answered later, on a connection we can trace to its worker.

    ``PendingRequest(url)`` connects; ``worker(pids)`` says which worker accepted the
    connection; ``send(...)`` sends the request; ``reply()`` waits for the answer.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.server_port = port_of(base_url)
        self.conn = http.client.HTTPConnection(HOST, self.server_port, timeout=timeout)
        self.conn.connect()
        self.local_port: int = self.conn.sock.getsockname()[1]  # type: ignore[union-attr]
        self.started = time.monotonic()

    def worker(self, worker_pids: list[int], timeout: float = 5.0) -> int:
        """PID of the worker that accepted this connection (waits for the accept)."""
        deadline = time.monotonic() + timeout
        while True:
            pid = worker_serving(worker_pids, self.server_port, self.local_port)
            if pid is not None:
                return pid
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker of {worker_pids} accepted port {self.local_port}")
            time.sleep(0.01)

    def send(
        self,
        method: str,
        path: str,
        *,
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> PendingRequest:
        headers = {"Accept": "application/json", "Content-Length": "0", **(headers or {})}
        if cookie is not None:
            headers["Cookie"] = cookie
        self.started = time.monotonic()
        self.conn.request(method, path, headers=headers)
        return self

    def close(self) -> None:
        self.conn.close()

    def reply(self) -> Reply:
        try:
            return read_reply(self.conn, self.started)
        except (OSError, http.client.HTTPException) as error:
            return Reply(error=f"{type(error).__name__}: {error}")
        finally:
            self.conn.close()


def connect_to_worker(
    base_url: str,
    worker_pids: list[int],
    *,
    avoid: int | None = None,
    want: int | None = None,
    attempts: int = 50,
) -> PendingRequest:
    """A connection accepted by worker ``want`` (or by any worker but ``avoid``)."""
    for _ in range(attempts):
        pending = PendingRequest(base_url)
        pid = pending.worker(worker_pids)
        if (want is None or pid == want) and pid != avoid:
            return pending
        pending.close()
    raise RuntimeError(f"no connection landed on the wanted worker after {attempts} tries")


#: how long raw_exchange waits for an answer before it ends its side of the connection
RAW_ANSWER_WAIT_S = 1.0


def raw_exchange(base_url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a new connection; return every byte answered until close."""
    with socket.create_connection((HOST, port_of(base_url)), timeout=timeout) as sock:
        sock.sendall(data)
        # No answer yet: the server may be waiting for more header or body bytes. Ending
        # our side makes it answer (or close) at once instead of at its timeout. Not at
        # once for every request: granian (hyper) drops a request whose client half-closed
        # before the answer was written.
        readable, _, _ = select.select([sock], [], [], RAW_ANSWER_WAIT_S)
        if not readable:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def raw_status(answer: bytes) -> int:
    """The status code of the first HTTP response in ``answer`` (0: nothing answered)."""
    if not answer.startswith(b"HTTP/"):
        return 0
    return int(answer.split(b" ", 2)[1])


def worker_serving(worker_pids: list[int], server_port: int, client_port: int) -> int | None:
    """The worker process holding the server end of the connection from ``client_port``.

    The listening socket is shared, but an accepted connection belongs to the one worker
    that took it (psutil reads the process's sockets).
    """
    for pid in worker_pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp4")
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            local, remote = conn.laddr, conn.raddr
            if local and remote and (local.port, remote.port) == (server_port, client_port):
                return pid
    return None


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB."""
    return int(psutil.Process(pid).memory_info().rss // 1024)
