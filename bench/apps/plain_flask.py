"""Target C: the ceiling. The same routes and JSON from plain Flask, no session extension.

Nothing is stored and no cookie is set: the counters are module globals (per worker
process, unsynchronised), so the numbers mean nothing; only the cost of serving the same
JSON through Flask on the same gunicorn configuration matters.
"""

from flask import Flask, jsonify

app = Flask(__name__)

counter = 0
shared = 0


@app.post("/inc")
def inc():
    global counter
    counter += 1
    return jsonify(counter=counter)


@app.get("/counter")
def get_counter():
    return jsonify(counter=counter)


@app.post("/shared/inc")
def shared_inc():
    global shared
    shared += 1
    return jsonify(counter=shared)


@app.get("/healthz")
def healthz():
    return jsonify(ok=True, target="C")
