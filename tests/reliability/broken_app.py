"""The seed's mistakes, served with the counter service's routes: loadcheck must fail it.

Per-user state in Flask's default cookie session with ``session["counter"] += 1`` (a
read-modify-write nobody serializes: concurrent requests on one cookie all start from
the same value) and the shared counter in a module-level global (one copy per worker
process, updated without a lock). Served by gunicorn with 2+ workers as
``tests.reliability.broken_app:app``.
"""

from __future__ import annotations

import time

from flask import Flask, jsonify, session

app = Flask(__name__)
app.secret_key = "not-a-secret-only-for-this-test"

counter = 0  # the shared counter: one per process, which is the bug


def _pause() -> None:
    # A moment of real work between read and write, as in any real view; it makes the
    # races show on every run instead of now and then.
    time.sleep(0.002)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok", store="cookie")


@app.route("/inc", methods=["GET", "POST"])
def inc():
    value = session.get("counter", 0)
    _pause()
    session["counter"] = value + 1
    return jsonify(counter=session["counter"])


@app.get("/counter")
def read_counter():
    return jsonify(counter=session.get("counter", 0))


@app.post("/shared/inc")
def shared_inc():
    global counter
    value = counter
    _pause()
    counter = value + 1
    return jsonify(counter=counter)


@app.get("/shared")
def shared():
    return jsonify(counter=counter)
