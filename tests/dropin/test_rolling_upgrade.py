"""A rolling upgrade from Flask-Session 0.8 loses no session (issue 17).

Real Flask-Session 0.8 servers (gunicorn from 0.8's own venv) and this project's servers
(granian) serve one Redis at once, running the same app file: each only has a different
``flask_session`` installed. Clients, each sending its requests in sequence as a browser
does, are split in three groups: some move to the new fleet once, some alternate
between the fleets on every request, some stay on 0.8 while the new servers come up.
Then everyone is on the new fleet, the 0.8 fleet stops, the transition is ended
(``SESSION_08_SERVERS`` off, ``flask session upgrade-08 --finish``), and every session
and every acknowledged increment is still there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support.flask_session_08 import GunicornServer08

#: the app both fleets run: plain read-modify-write code, as a 0.8 app has it
APP = """
import os

import flask
import redis
from flask_session import Session

app = flask.Flask(__name__)
app.config.update(
    SECRET_KEY="rolling-upgrade",
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["ROLLING_REDIS_URL"]),
    SESSION_SERIALIZATION_FORMAT=os.environ["ROLLING_FORMAT"],
)
app.config.from_prefixed_env()
Session(app)


@app.get("/healthz")
def healthz():
    return "ok"


@app.post("/inc")
def inc():
    flask.session["n"] = flask.session.get("n", 0) + 1
    flask.session.setdefault("user", flask.request.args["user"])
    return {"n": flask.session["n"], "user": flask.session["user"]}
"""

USERS_PER_GROUP = 5
REQUESTS_PER_PHASE = 12
HTTP_TIMEOUT = 30


@dataclass
class User:
    """One browser: its cookie jar, and what its acknowledged increments add up to."""

    name: str
    http: requests.Session = field(default_factory=requests.Session)
    acknowledged: int = 0
    lost_session: bool = False
    statuses: list[int] = field(default_factory=list)

    def inc(self, url: str) -> None:
        response = self.http.post(f"{url}/inc", params={"user": self.name}, timeout=HTTP_TIMEOUT)
        self.statuses.append(response.status_code)
        if response.status_code != 200:
            return
        body = response.json()
        if body["user"] != self.name or body["n"] != self.acknowledged + 1:
            self.lost_session = True  # a fresh session, or someone else's
        self.acknowledged = body["n"] if body["user"] == self.name else self.acknowledged


def run_users(users: list[User], route: Callable[[User, int], str], count: int) -> None:
    """Each user sends ``count`` requests in sequence (users in parallel), request ``i``
    to ``route(user, i)``."""

    def one(user: User) -> None:
        for i in range(count):
            user.inc(route(user, i))

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(one, users))


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_a_rolling_upgrade_on_redis_loses_no_session_and_no_increment(
    fs08_python: Path, tmp_path: Path, redis_url: str, granian_server: Any, fmt: str
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "rolling_app.py").write_text(APP)
    env = {"ROLLING_REDIS_URL": redis_url, "ROLLING_FORMAT": fmt}
    old = GunicornServer08(
        "rolling_app:app", python=fs08_python, env=env, cwd=app_dir, workers=2, threads=4
    ).start()
    new_env = {**env, "PYTHONPATH": str(app_dir), "FLASK_SESSION_08_SERVERS": "true"}
    new = None
    try:
        groups: dict[str, list[User]] = {
            group: [User(f"{group}-{i}") for i in range(USERS_PER_GROUP)]
            for group in ("move", "alternate", "stay")
        }
        everyone = [user for users in groups.values() for user in users]
        # Before the roll: everyone's session is made and used on 0.8.
        run_users(everyone, lambda user, i: old.url, 3)
        new = granian_server("rolling_app:app", env=new_env, workers=2, threads=4)
        # The roll: both fleets serve; the load balancer sends each group its way.
        routes = {
            "move": lambda user, i: old.url if i < 2 else new.url,
            "alternate": lambda user, i: new.url if i % 2 == 0 else old.url,
            "stay": lambda user, i: old.url,
        }
        run_users(
            everyone,
            lambda user, i: routes[user.name.split("-")[0]](user, i),
            REQUESTS_PER_PHASE,
        )
        # Everyone on the new fleet; then no 0.8 server is left.
        run_users(everyone, lambda user, i: new.url, 3)
        old.close()
        new.close()
        # The transition ended: the setting off, every 0.8 copy dropped by the command.
        new = granian_server(
            "rolling_app:app", env={**new_env, "FLASK_SESSION_08_SERVERS": "false"}, workers=2
        )
        finished = flask_cli(app_dir, new_env, "session", "upgrade-08", "--finish")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "in the store: 0 " in finished.stdout
        run_users(everyone, lambda user, i: new.url, 2)

        lost_sessions = [user.name for user in everyone if user.lost_session]
        statuses = {status for user in everyone for status in user.statuses}
        expected = 3 + REQUESTS_PER_PHASE + 3 + 2
        lost_increments = sum(expected - user.acknowledged for user in everyone)
        assert (lost_sessions, lost_increments, statuses) == ([], 0, {200})
        client = redis.Redis.from_url(redis_url)
        try:
            legacy = [
                key for key in client.scan_iter(match="session:*") if client.type(key) == b"string"
            ]
        finally:
            client.close()
        assert legacy == []  # every session is in this project's layout now
    finally:
        old.close()
        if new is not None:
            new.close()


def flask_cli(app_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app rolling_app ARGS`` with this project's Python."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "rolling_app", *args],
        cwd=app_dir,
        env={**os.environ, **env, "FLASK_SESSION_08_SERVERS": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
