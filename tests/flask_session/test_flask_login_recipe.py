"""Issue 20, item 5: the Flask-Login recipe in docs/flask_session.md, run as it stands on
the real Flask-Login, on every store that keeps the per-user index."""

from __future__ import annotations

import re
import time
import types
from pathlib import Path

import pytest
from flask import Flask, jsonify
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)

from flask_session import Session
from flask_session.stores.users import UserIndex, session_handle

from .test_session_contract import sid_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "flask_session.md"
MARKER = "<!-- recipe: flask-login -->"


def recipe() -> types.ModuleType:
    """The docs' Flask-Login block, as a module."""
    text = DOCS.read_text()
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S)
    assert found, f"no python block after {MARKER} in {DOCS}"
    module = types.ModuleType("flask_login_recipe")
    exec(compile(found.group(1), str(DOCS), "exec"), module.__dict__)  # noqa: S102
    return module


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def create_login_app(config: dict) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", **config)
    Session(app)
    login = LoginManager(app)
    login.user_loader(User)
    steps = recipe()
    steps.track_logins(app, max_sessions=3)

    @app.post("/login/<name>")
    def log_in(name: str):
        login_user(User(name))
        return jsonify(user=name)

    @app.post("/logout")
    def log_out():
        logout_user()
        return jsonify({})

    @app.get("/me")
    def me():
        return jsonify(user=current_user.get_id() if current_user.is_authenticated else None)

    @app.post("/password")
    @login_required
    def change_password():
        return jsonify(revoked=len(steps.sign_out_other_sessions(app, current_user)))

    return app


@pytest.fixture
def login_app(app_builder, store_config) -> Flask:
    app = app_builder(create_login_app, {"TESTING": True, **store_config})
    assert isinstance(app.session_interface.store, UserIndex)  # every store keeps one
    return app


def test_login_regenerates_and_binds_logout_unbinds(login_app):
    iface = login_app.session_interface
    browser = login_app.test_client()
    browser.post("/login/alice", headers={"User-Agent": "laptop"})
    prefix = login_app.config["SESSION_KEY_PREFIX"]
    assert browser.get("/me").json == {"user": "alice"}
    (entry,) = iface.user_sessions("alice")
    assert (entry.handle, entry.label) == (session_handle(prefix, sid_of(browser)), "laptop")
    browser.post("/logout")
    assert browser.get("/me").json == {"user": None}
    assert iface.user_sessions("alice") == []


def test_a_planted_id_does_not_become_the_logged_in_session(app_builder, store_config):
    """Fixation: the attacker logs in to their own account and plants that cookie on
    the victim, who then logs in. Within SESSION_REGENERATE_GRACE the planted id still
    reaches the session (the documented trade-off), with no new id handed out; after
    it, it reaches nothing."""
    config = {"TESTING": True, **store_config, "SESSION_REGENERATE_GRACE": 1}
    app = app_builder(create_login_app, config)
    attacker = app.test_client()
    attacker.post("/login/mallory")
    planted = sid_of(attacker)
    victim = app.test_client()
    victim.set_cookie("session", planted)
    victim.post("/login/alice")
    logged_in_at = time.time()
    assert sid_of(victim) != planted
    within = attacker.get("/me")
    assert within.json == {"user": "alice"}
    assert "Set-Cookie" not in within.headers
    time.sleep(max(0.0, logged_in_at + 1.2 - time.time()))
    assert attacker.get("/me").json == {"user": None}
    assert victim.get("/me").json == {"user": "alice"}
    # the session moved from mallory's index to alice's, it is in hers only
    iface = app.session_interface
    assert iface.user_sessions("mallory") == []
    assert len(iface.user_sessions("alice")) == 1


def test_a_password_change_signs_out_the_other_sessions(login_app):
    laptop, phone, tablet = (login_app.test_client() for _ in range(3))
    for device in (laptop, phone, tablet):
        device.post("/login/alice")
    assert laptop.post("/password").json == {"revoked": 2}
    assert phone.get("/me").json == {"user": None}
    assert tablet.get("/me").json == {"user": None}
    assert laptop.get("/me").json == {"user": "alice"}
    assert len(login_app.session_interface.user_sessions("alice")) == 1


def test_a_fourth_login_revokes_the_oldest(login_app):
    devices = [login_app.test_client() for _ in range(4)]
    for device in devices:
        device.post("/login/alice")
    assert devices[0].get("/me").json == {"user": None}
    assert [d.get("/me").json["user"] for d in devices[1:]] == ["alice"] * 3
