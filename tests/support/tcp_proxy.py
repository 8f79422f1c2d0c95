"""A small TCP proxy on 127.0.0.1 that can lose a reply, for tests of retries.

Usage::

    with TcpProxy(redis_server.port) as proxy:
        client = redis.Redis(host="127.0.0.1", port=proxy.port)
        proxy.drop_reply(b"EVALSHA")   # the next command containing these bytes is
        client.evalsha(...)            # delivered, its reply thrown away and the
                                       # connection closed: the client sees a lost reply

Each connection is served by one thread that copies bytes both ways until either side
closes; ``close()`` ends everything. ``proxy.delay = 0.2`` holds every chunk coming back
from the target for that long. ``TcpProxy(port, lag=0.5)`` instead delivers what the target
sends 0.5 s after it arrived, without slowing the stream down, and drops what it still
holds when the target's side closes: between a replica and its master, that is
replication lag that a master's crash turns into lost writes. Nothing here parses the
protocol: a "command" is one chunk read from the client, which is what a client sends for
one small command.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import threading
import time

from .ports import HOST

CHUNK = 65536
#: how long a dropped command's reply is awaited before the connection is cut anyway
REPLY_WAIT_S = 5.0


class TcpProxy:
    """Forwards ``HOST:port`` to ``target_host:target_port``."""

    def __init__(self, target_port: int, *, target_host: str = HOST, lag: float = 0.0) -> None:
        self.target = (target_host, target_port)
        #: seconds between a chunk's arrival from the target and its delivery (see above)
        self.lag = lag
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)  # accept() wakes up to notice close()
        self.port: int = self._listener.getsockname()[1]
        self._guard = threading.Lock()
        self._drop_marker: bytes | None = None
        self._drops_left = 0
        #: replies thrown away so far
        self.dropped = 0
        #: seconds each chunk from the target waits before it is passed on (e.g. put the
        #: proxy between a replica and its primary to make replication lag)
        self.delay = 0.0
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def drop_reply(self, marker: bytes, count: int = 1) -> None:
        """Lose the replies to the next ``count`` commands whose bytes contain ``marker``:
        each is delivered, its reply read and discarded, and the client's connection
        closed."""
        with self._guard:
            self._drop_marker = marker
            self._drops_left = count

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._guard:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._guard:
                self._sockets.update((client, server))
            thread = threading.Thread(
                target=self._pump, args=(client, server), name="tcp-proxy-conn", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _should_drop(self, chunk: bytes) -> bool:
        with self._guard:
            if self._drops_left and self._drop_marker is not None and self._drop_marker in chunk:
                self._drops_left -= 1
                return True
            return False

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        lagged = _Lagged(client, self.lag) if self.lag else None
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.2)
                for source in readable:
                    chunk = source.recv(CHUNK)
                    if not chunk:
                        if lagged is not None and source is server:
                            lagged.drop()  # lost with the target, as a dead master's stream
                        return
                    if source is client:
                        server.sendall(chunk)
                        if self._should_drop(chunk):
                            server.settimeout(REPLY_WAIT_S)
                            with contextlib.suppress(OSError):
                                server.recv(CHUNK)  # the reply, thrown away
                            with self._guard:
                                self.dropped += 1
                            return
                    elif lagged is not None:
                        lagged.put(chunk)
                    else:
                        if self.delay:
                            time.sleep(self.delay)
                        client.sendall(chunk)
        except OSError:
            return
        finally:
            if lagged is not None:
                lagged.stop()
            with self._guard:
                self._sockets.discard(client)
                self._sockets.discard(server)
            client.close()
            server.close()


class _Lagged:
    """Sends chunks to ``sink`` ``lag`` seconds after they were put, in order, from a
    thread of its own (so reading goes on at full speed)."""

    def __init__(self, sink: socket.socket, lag: float) -> None:
        self.sink = sink
        self.lag = lag
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._deliver, name="tcp-proxy-lag", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        with self._ready:
            self._queue.append((time.monotonic() + self.lag, chunk))
            self._ready.notify()

    def drop(self) -> None:
        with self._ready:
            self._queue.clear()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._queue.clear()
            self._ready.notify()
        self._thread.join(timeout=5)

    def _deliver(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopped:
                    self._ready.wait(0.2)
                if self._stopped:
                    return
                due, chunk = self._queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with self._ready:
                if self._stopped:  # the target closed meanwhile: this chunk dies with it
                    return
            try:
                self.sink.sendall(chunk)
            except OSError:
                return
