"""The floor under any Redis-backed session: plain Flask plus one Redis INCR per request.

Served by bench/redis_floor.py with ``FLOOR_VARIANT`` = ``plain`` (no Redis), ``socket`` (one
INCR over a bare per-thread socket) or ``redis-py`` (one INCR through redis-py, as the
session store uses it: retries off, hiredis when installed).
"""

import os
import socket
import threading

import redis
from flask import Flask, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry

VARIANT = os.environ["FLOOR_VARIANT"]
REDIS_URL = os.environ["FLOOR_REDIS_URL"]

app = Flask(__name__)
client = redis.Redis.from_url(REDIS_URL, retry=Retry(NoBackoff(), 0))
_per_thread = threading.local()


def incr_over_socket() -> int:
    sock = getattr(_per_thread, "sock", None)
    if sock is None:
        host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
        sock = _per_thread.sock = socket.create_connection((host, int(port)))
    sock.sendall(b"*2\r\n$4\r\nINCR\r\n$5\r\nfloor\r\n")
    return int(sock.recv(64)[1:-2])


@app.get("/healthz")
def healthz():
    return "ok"


@app.post("/inc")
def inc():
    if VARIANT == "plain":
        return jsonify(counter=1)
    if VARIANT == "socket":
        return jsonify(counter=incr_over_socket())
    return jsonify(counter=client.incr("floor"))
