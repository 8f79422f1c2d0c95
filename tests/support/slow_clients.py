"""Slow-header clients: connections that send their request headers one byte at a time.

The classic slowloris load. Each of `count` connections sends the next byte of a request
head that never ends, one byte per `interval` seconds; when the server closes one (its
header deadline), that is counted in `cut_off` and the client connects again, so the
load lasts as long as the context. Used by the tests and bench/slow_clients.py.

    with SlowHeaderClients(HOST, port, count=40) as slow:
        ...  # normal requests meanwhile
    print(slow.cut_off)
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from dataclasses import dataclass
from itertools import cycle

#: a request head that never ends: the server waits for the blank line
_HEAD = b"POST /inc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nX-Slow: " + b"a" * 4096
_CONNECT_TIMEOUT_S = 5.0


class SlowHeaderClients:
    """`count` slowloris connections to host:port while the context is open (thread-driven)."""

    def __init__(self, host: str, port: int, *, count: int = 40, interval: float = 1.0) -> None:
        self.host, self.port, self.count, self.interval = host, port, count, interval
        self.cut_off = 0  # connections the server closed before their headers were complete
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-header-clients", daemon=True)

    def __enter__(self) -> SlowHeaderClients:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _connect(self) -> tuple[socket.socket, cycle[int]] | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=_CONNECT_TIMEOUT_S)
        except OSError:
            return None
        sock.setblocking(False)
        self.connects += 1
        return sock, cycle(_HEAD)

    def _run(self) -> None:
        clients: list[tuple[socket.socket, cycle[int]] | None] = [
            self._connect() for _ in range(self.count)
        ]
        try:
            while not self._stop.wait(self.interval):
                for index, client in enumerate(clients):
                    if client is None or not self._send_one(*client):
                        if client is not None:
                            client[0].close()
                            self.cut_off += 1
                        clients[index] = self._connect()
        finally:
            for client in clients:
                if client is not None:
                    client[0].close()

    @staticmethod
    def _send_one(sock: socket.socket, head: cycle[int]) -> bool:
        """Send one more byte; False once the server has closed (or answered) the connection."""
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:  # EOF or an error answer (408/400): either way the server is done with it
            return False
        try:
            sock.send(bytes([next(head)]))
        except OSError:
            return False
        return True


@dataclass
class Outcome:
    """One normal request: its status (0: no answer) and how long it took."""

    status: int
    seconds: float


def normal_requests(
    host: str,
    port: int,
    *,
    duration: float,
    max_requests: int,
    pause: float = 0.0,
    path: str = "/inc",
    timeout: float = 20.0,
) -> list[Outcome]:
    """POST `path` one after another, each on a new connection, `pause` seconds apart, for
    `duration` seconds or `max_requests` requests, whichever ends first; a request still
    running at the end of the window is waited for (up to `timeout`) and counted."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and len(outcomes) < max_requests:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        started = time.perf_counter()
        try:
            conn.request("POST", path, headers={"Accept": "application/json"})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            conn.close()
        outcomes.append(Outcome(status, time.perf_counter() - started))
        time.sleep(pause)
    return outcomes
