"""A Flask-Login app (the real extension) on flask_session, for issue 23's tests and bench.

Served as ``tests.flask_session.login_app:create_app()``, configured through ``FLASK_*``
environment variables like the demo app. ``login_required`` views only read the session
(Flask-Login reads ``_user_id``, ``_id`` and the session's length on every request); the
POST routes change it.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, jsonify, request, session
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user

from flask_session import Session


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "login-app-test-key"  # Flask-Login's remember cookie signs with it
    app.config.from_prefixed_env()
    app.config.update(config or {})
    Session(app)
    manager = LoginManager(app)

    @manager.user_loader
    def load_user(user_id: str) -> User:
        return User(user_id)

    def pause() -> None:
        # ?mark=<path>: create the file once the view has the user (a test's signal);
        # ?delay=<seconds>: then take that long; then create <path>.done
        mark = request.args.get("mark")
        if mark:
            Path(mark).touch()
        time.sleep(float(request.args.get("delay", 0)))
        if mark:
            Path(f"{mark}.done").touch()

    @app.get("/healthz")
    def healthz():
        return "ok"

    @app.post("/login/<user_id>")
    def login(user_id: str):
        login_user(User(user_id))
        return jsonify(user=user_id)

    @app.get("/api/<int:part>")
    @login_required
    def api(part: int):
        # One of a dashboard's XHRs: who is asking, then the (slow) work.
        pause()
        return jsonify(user=current_user.id, part=part)

    @app.get("/report")
    @login_required
    def report():
        # A long read-only view (an export, a report); ?release=1 saves and releases the
        # session first (session.save_and_release()), as a long view can.
        if request.args.get("release"):
            session.save_and_release()
        pause()
        return jsonify(user=current_user.id)

    @app.post("/cart/add")
    @login_required
    def cart_add():
        # Read-modify-write of the seed's kind: exact under the session's lock.
        session["cart"] = session.get("cart", 0) + 1
        return jsonify(cart=session["cart"])

    return app
