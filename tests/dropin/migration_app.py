"""An app on this package serving a store Flask-Session 0.8 wrote (for gunicorn runs).

Configured from the environment: ``FLASK_SESSION_TYPE``, ``FLASK_SESSION_FILE_DIR``...
"""

from typing import Any

import flask

from flask_session import Session, current_session

app = flask.Flask(__name__)
app.config.update(SECRET_KEY="migration-test-secret")
app.config.from_prefixed_env()
Session(app)


@app.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@app.post("/incr")
def incr() -> Any:
    """Atomic increment (the store adds; no session lock held by the request)."""
    return {"counter": current_session.incr("counter")}


@app.post("/rmw")
def read_modify_write() -> Any:
    """Read-modify-write under the session lock."""
    flask.session["rmw"] = flask.session.get("rmw", 0) + 1
    return {"rmw": flask.session["rmw"], "name": flask.session.get("name")}


@app.get("/read")
def read() -> Any:
    return {key: flask.session.get(key) for key in ("counter", "rmw", "name")}
