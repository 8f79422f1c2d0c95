"""memcached's text protocol, spoken by the memcached store itself on a connection of a
pymemcache pool, for the commands of its hot paths (``get``, ``gets``, ``add``, ``cas``,
``touch``) and for batches of meta commands.

Why not pymemcache's methods: each call checks the connection out of its pool and back
(a lock, a context manager), checks every key again, and builds and reads the command
through general machinery; measured on a session increment (one ``gets`` of two keys,
one ``cas``), that was most of the store's CPU. Here a store operation checks one
connection out for all its commands (:class:`Checkout`), its keys are checked once, when
the store builds them (memcached.py ``_key``), and each reply is read by a parser that
knows its exact end. Batches of meta commands (the per-user index's) are read here too:
pymemcache 4.0's ``raw_command`` keeps only the last chunk of a reply that arrives in
several (a batch of 30 keys lost its first 26 answers).

The rules that keep a connection sound: a command is sent whole and its reply is read
whole before the next is sent; whatever goes wrong while a connection is checked out
(a timeout, a closed socket, an error reply, a reply that is not what the command
answers, an exception of the caller's), the connection is closed and dropped from the
pool, never reused in the middle of a reply. Errors are pymemcache's exception types,
which the store turns into StoreUnavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheClientError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
    MemcacheUnknownError,
)

#: bytes asked of the socket per read
RECV_SIZE = 65536
#: the end of a line of the protocol
CRLF = b"\r\n"
#: the end of a batch of meta commands (``mn``'s reply)
BATCH_END = b"MN\r\n"
#: the end of a retrieval command's reply
_END = b"END"
_VALUE = b"VALUE "
#: a storage command's answer: stored, or refused (``add``: the key exists; ``cas``: the
#: item changed since it was read); ``cas`` of an item that is gone: NOT_FOUND
_STORE_ANSWERS = {b"STORED": True, b"NOT_STORED": False, b"EXISTS": False, b"NOT_FOUND": None}
_TOUCH_ANSWERS = {b"TOUCHED": True, b"NOT_FOUND": False}

T = TypeVar("T")
#: key -> (value, cas unique), as a ``gets`` reply lists them
Found = dict[bytes, tuple[bytes, bytes]]


class Checkout:
    """``with Checkout(node) as client``: one connection of ``node``'s pool (a pymemcache
    ``PooledClient``) for the block. Back to the pool if the block ends normally; closed
    and dropped if anything was raised, as the connection's state is then unknown."""

    __slots__ = ("_pool", "_client")

    def __init__(self, node: Any) -> None:
        self._pool = node.client_pool

    def __enter__(self) -> Any:
        self._client = self._pool.get()
        return self._client

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self._pool.release(self._client)
        else:
            self._pool.destroy(self._client)  # closes it


def exchange(client: Any, command: bytes, parse: Callable[[bytes], T | None]) -> T:
    """Send ``command`` on ``client``'s connection (opened if it is not) and read its
    reply until ``parse(reply)`` gives its result (None: not whole yet). ``parse``
    raises for an error reply or one that is not the command's. Whoever checked the
    client out closes it if this raises (:class:`Checkout`)."""
    sock = client.sock
    if sock is None:
        client._connect()
        sock = client.sock
    sock.sendall(command)
    reply = b""
    while True:
        chunk = sock.recv(RECV_SIZE)
        if not chunk:
            raise MemcacheUnexpectedCloseError()
        reply += chunk
        result = parse(reply)
        if result is not None:
            return result


def raise_error(line: bytes, command: bytes) -> NoReturn:
    """Raise what pymemcache raises for an error reply ``line``; for anything else the
    reply to ``command`` cannot be, MemcacheUnknownError."""
    if line.startswith(b"SERVER_ERROR"):
        raise MemcacheServerError(line.partition(b" ")[2].decode("ascii", "replace"))
    if line.startswith(b"CLIENT_ERROR"):
        raise MemcacheClientError(line.partition(b" ")[2].decode("ascii", "replace"))
    if line == b"ERROR":
        raise MemcacheUnknownCommandError(command)
    raise MemcacheUnknownError(f"memcached answered {line[:64]!r} to {command.decode()}")


def parse_values(reply: bytes) -> Found | None:
    """A ``get``/``gets`` reply: the values found, by key (the cas unique is ``b""`` for
    ``get``); None while it is not whole."""
    found: Found = {}
    at = 0
    while True:
        end = reply.find(CRLF, at)
        if end < 0:
            return None
        line = reply[at:end]
        if line == _END:
            if end + 2 != len(reply):
                raise MemcacheUnknownError("memcached sent more than its reply to a get")
            return found
        if not line.startswith(_VALUE):
            raise_error(line, b"get")
        fields = line.split()
        start = end + 2
        try:
            stop = start + int(fields[3])
        except (IndexError, ValueError):
            raise MemcacheUnknownError(f"memcached answered {line[:64]!r} to a get") from None
        if len(reply) < stop + 2:
            return None
        if reply[stop : stop + 2] != CRLF:
            raise MemcacheUnknownError("memcached sent a value longer than it announced")
        found[fields[1]] = (reply[start:stop], fields[4] if len(fields) > 4 else b"")
        at = stop + 2


def parse_line(reply: bytes) -> bytes | None:
    """A one-line reply (storage commands, ``touch``), without its CRLF; None while it
    is not whole."""
    if not reply.endswith(CRLF):
        return None
    line = reply[:-2]
    if CRLF in line:
        raise MemcacheUnknownError("memcached sent more than one line to one command")
    return line


def get_values(client: Any, command: bytes) -> Found:
    """The items a ``get``/``gets`` ``command`` (whole, with its CRLF) finds."""
    return exchange(client, command, parse_values)


def store(
    client: Any, verb: bytes, key: bytes, value: bytes, expire: int, cas: bytes = b""
) -> bool | None:
    """``add``/``cas`` of ``value`` at ``key`` (flags 0, as pymemcache stores bytes):
    True if stored; False if refused (``add``: the key exists; ``cas``: the item changed
    since its ``gets``); None for ``cas`` of an item that is gone. ``expire`` is
    memcached's exptime (-1: expire at once)."""
    header = b"%s %s 0 %d %d" % (verb, key, expire, len(value))
    if cas:
        header += b" " + cas
    line = exchange(client, b"%s\r\n%s\r\n" % (header, value), parse_line)
    if line in _STORE_ANSWERS:
        return _STORE_ANSWERS[line]
    raise_error(line, verb)


def touch(client: Any, key: bytes, expire: int) -> bool:
    """Give ``key`` a new exptime; False if it is gone."""
    line = exchange(client, b"touch %s %d\r\n" % (key, expire), parse_line)
    if line in _TOUCH_ANSWERS:
        return _TOUCH_ANSWERS[line]
    raise_error(line, b"touch")


def _parse_batch(reply: bytes) -> list[str] | None:
    if not (reply == BATCH_END or reply.endswith(CRLF + BATCH_END)):
        return None
    return reply[: -len(BATCH_END)].decode("ascii", "replace").splitlines()


def pipelined(node: Any, command: bytes) -> list[str]:
    """The reply lines to a batch of quiet meta commands ended by ``mn`` (sent at once
    on one of ``node``'s pooled connections), without the final ``MN``. The caller
    makes every line but the batch's end end in something other than ``MN`` (a meta
    hit's last flag, ``t<seconds>``)."""
    with Checkout(node) as client:
        return exchange(client, command, _parse_batch)
