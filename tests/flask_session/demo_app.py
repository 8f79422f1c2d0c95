"""A small app exercising flask_session, for the contract tests and their gunicorn runs.

Served by gunicorn as ``tests.flask_session.demo_app:create_app()``, configured through
``FLASK_*`` environment variables (``FLASK_SESSION_TYPE=redis`` ...).
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, jsonify, request, session

from flask_session import Session, SessionReleased, read_only_session


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()
    app.config.update(config or {})
    Session(app)

    def mark_started() -> None:
        # ?mark=<path>: create the file once the view has the session, so that a test
        # can send its next request exactly then (not after a guessed sleep)...
        mark = request.args.get("mark")
        if mark:
            Path(mark).touch()

    def mark_finished() -> None:
        # ... and <path>.done when the view returns (before its response is saved), so
        # that a test can tell whether another request finished before it
        mark = request.args.get("mark")
        if mark:
            Path(f"{mark}.done").touch()

    @app.get("/healthz")
    def healthz():
        return "ok"  # never touches the session

    @app.post("/rmw/<key>")
    def read_modify_write(key: str):
        # The seed's recipe, made safe by the session lock.
        value = session.get(key, 0)
        time.sleep(float(request.args.get("delay", 0)))
        session[key] = value + 1
        return jsonify(value=session[key])

    @app.post("/incr/<key>")
    def incr(key: str):
        return jsonify(value=session.incr(key, int(request.args.get("by", 1))))

    @app.get("/get")
    def get():
        return jsonify(dict(session))

    @app.post("/set/<key>")
    def set_key(key: str):
        session.get(key)  # read first, so a delay below happens with the session loaded
        mark_started()
        time.sleep(float(request.args.get("delay", 0)))
        session[key] = request.args.get("value", "x")
        mark_finished()
        return jsonify(dict(session))

    @app.post("/deep/<key>")
    def set_deep(key: str):
        # A value nested ?levels= deep: lists (default), dicts (?kind=dict) or tuples.
        kind = request.args.get("kind", "list")
        value: object = 0
        for _ in range(int(request.args.get("levels", 10))):
            value = {"d": value} if kind == "dict" else (value,) if kind == "tuple" else [value]
        session[key] = value
        return jsonify(sorted(session))

    @app.post("/blob/<key>")
    def set_blob(key: str):
        # A string of ?size= characters: a session as large as a test needs.
        session[key] = "x" * int(request.args.get("size", 1))
        return jsonify(sorted(session))

    @app.post("/delete/<key>")
    def delete_key(key: str):
        session.pop(key, None)
        return jsonify(dict(session))

    @app.post("/release-early/<key>")
    def release_early(key: str):
        # A long view that saves and releases the session before its slow part; a write
        # after the release is refused (SessionReleased), a read still works.
        session[key] = request.args.get("value", "x")
        session.save_and_release()
        mark_started()
        time.sleep(float(request.args.get("delay", 0)))
        try:
            session[f"{key}-late"] = "late"
        except SessionReleased as error:
            refused = str(error)
        else:
            refused = None
        mark_finished()
        return jsonify(value=session.get(key), refused=refused)

    @app.post("/clear")
    def clear():
        time.sleep(float(request.args.get("delay", 0)))
        session.clear()
        return jsonify({})

    # -- the per-user index: log in (regenerate, bind), list, revoke, log out --------

    @app.post("/login/<user>")
    def login(user: str):
        session["user"] = user
        app.session_interface.regenerate(session)
        cap = request.args.get("cap")
        revoked = app.session_interface.bind_user(
            session,
            user,
            label=request.headers.get("User-Agent", ""),
            max_sessions=int(cap) if cap else None,
        )
        return jsonify(revoked=revoked)

    @app.get("/sessions")
    def user_sessions():
        iface = app.session_interface
        current = iface.session_handle(session)
        found = iface.user_sessions(session["user"])
        return jsonify([{"label": s.label, "current": s.handle == current} for s in found])

    @app.post("/revoke-others")
    def revoke_others():
        user = session["user"]
        return jsonify(revoked=app.session_interface.revoke_user_sessions(user, keep=session))

    @app.post("/revoke-all")
    def revoke_all():
        return jsonify(revoked=app.session_interface.revoke_user_sessions(session["user"]))

    @app.post("/logout")
    def logout():
        app.session_interface.unbind_user(session, session["user"])
        session.clear()
        return jsonify({})

    @app.post("/regenerate")
    def regenerate():
        session.get("x")  # loaded (and locked) first, so a delay below holds the lock
        time.sleep(float(request.args.get("delay", 0)))
        app.session_interface.regenerate(session)
        return jsonify(dict(session))

    @app.get("/slow-read")
    def slow_read():
        # Reads the session, then takes ?delay= seconds (a report, a dashboard's slow XHR).
        seen = dict(session)
        mark_started()
        time.sleep(float(request.args.get("delay", 0)))
        mark_finished()
        return jsonify(seen)

    @app.get("/peek")
    @read_only_session
    def peek():
        return jsonify(dict(session))

    @app.get("/peek-async")
    @read_only_session
    async def peek_async():  # Flask's async views (asgiref): the decorator keeps it async
        return jsonify(dict(session))

    @app.post("/peek-then-write-async")
    @read_only_session
    async def peek_then_write_async():
        session["x"] = 1  # refused: the view is read-only
        return "written"

    @app.post("/peek-then-write")
    @read_only_session
    def peek_then_write():
        session["x"] = 1  # refused: the view is read-only
        return "written"

    @app.post("/peek-then-mutate")
    @read_only_session
    def peek_then_mutate():
        session.get("items", []).append("lost")  # in place: not saved, logged
        return jsonify(dict(session))

    @app.get("/untouched")
    def untouched():
        return "no session here"

    return app
