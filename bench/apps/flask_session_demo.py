"""Target B: the seed's recipe on PyPI Flask-Session 0.8, as a user would write it.

Run only from bench/.venv-flask-session with bench/apps as the working directory: PyPI's
Flask-Session imports as ``flask_session``, the same name as this repository's own package,
so the repository root must never be on ``sys.path`` here (the runner checks /healthz).

Configured by the runner through the environment:
    BENCH_SESSION_TYPE   filesystem | redis | sqlalchemy | memcached
    BENCH_SESSION_DIR    directory for the filesystem store
    BENCH_REDIS_URL      redis://127.0.0.1:PORT/N for the redis store
    BENCH_SQLALCHEMY_URL the database of the sqlalchemy store (Flask-SQLAlchemy, as 0.8 wants)
    BENCH_MEMCACHED_SERVERS  127.0.0.1:PORT of the memcached store
"""

import os
from importlib.metadata import version

import redis
from flask import Flask, jsonify, session

import flask_session
from flask_session import Session

# The seed-style demo: module-level config picked up by from_object, defaults otherwise
# (Flask-Session's filesystem store keeps its default threshold of 500 files).
SESSION_TYPE = os.environ.get("BENCH_SESSION_TYPE", "filesystem")
if SESSION_TYPE == "redis":
    SESSION_REDIS = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
elif SESSION_TYPE == "sqlalchemy":
    SQLALCHEMY_DATABASE_URI = os.environ["BENCH_SQLALCHEMY_URL"]
elif SESSION_TYPE == "memcached":
    from pymemcache.client.base import PooledClient

    # PooledClient: 0.8 takes any client; a plain Client is not safe under gthread workers.
    host, _, port = os.environ["BENCH_MEMCACHED_SERVERS"].rpartition(":")
    SESSION_MEMCACHED = PooledClient((host, int(port)))
else:
    SESSION_FILE_DIR = os.environ.get("BENCH_SESSION_DIR", "flask_session")

app = Flask(__name__)
app.config.from_object(__name__)
if SESSION_TYPE == "sqlalchemy":
    from flask_sqlalchemy import SQLAlchemy

    app.config["SESSION_SQLALCHEMY"] = SQLAlchemy(app)
Session(app)

# The seed's shared counter: a module global. Every gunicorn worker process has its own
# copy and the threads inside a worker race on it, so numbers repeat across clients.
counter = 0


@app.post("/inc")
def inc():
    session["counter"] = session.get("counter", 0) + 1
    return jsonify(counter=session["counter"])


@app.get("/counter")
def get_counter():
    return jsonify(counter=session.get("counter", 0))


@app.post("/shared/inc")
def shared_inc():
    global counter
    counter += 1
    return jsonify(counter=counter)


@app.get("/healthz")
def healthz():
    return jsonify(
        ok=True,
        target="B",
        session_type=SESSION_TYPE,
        flask_session_version=version("Flask-Session"),
        flask_session_file=flask_session.__file__,
    )
