"""A rolling upgrade from Flask-Session 0.8, as its users meet it: the app both fleets run
(the same file; each fleet has its own ``flask_session`` installed) and clients that
count what they lose. Used by tests/dropin/test_rolling_upgrade.py and
bench/rolling_upgrade.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

#: the app both fleets run: plain read-modify-write code, as a 0.8 app has it; the store
#: as a 0.8 app configures it (ROLLING_STORE, ROLLING_TARGET: a URL, servers or directory)
APP = """
import os

import flask
from flask_session import Session

store, target = os.environ["ROLLING_STORE"], os.environ["ROLLING_TARGET"]
if store == "redis":
    import redis

    config = {"SESSION_REDIS": redis.Redis.from_url(target)}
elif store == "sqlalchemy":
    config = {"SQLALCHEMY_DATABASE_URI": target}
elif store == "memcached":
    from pymemcache.client.base import PooledClient

    host, port = target.rsplit(":", 1)
    # pymemcache's default (noreply) answers a set before memcached has it: a user's next
    # request, on another connection, can read the session before it: 0.8 loses
    # increments so on its own, so its servers here wait for the reply
    client = PooledClient((host, int(port)), default_noreply=False)
    config = {"SESSION_MEMCACHED": client}
else:
    config = {"SESSION_FILE_DIR": target}
    if os.environ.get("ROLLING_FILE_THRESHOLD"):  # 0.8's pruning (ignored here, with a warning)
        config["SESSION_FILE_THRESHOLD"] = int(os.environ["ROLLING_FILE_THRESHOLD"])

app = flask.Flask(__name__)
app.config.update(
    SECRET_KEY="rolling-upgrade",
    SESSION_TYPE=store,
    SESSION_SERIALIZATION_FORMAT=os.environ["ROLLING_FORMAT"],
    **config,
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


@app.post("/flash")
def flash():
    flask.flash(flask.request.args["text"], "info")
    return "ok"


@app.get("/flashes")
def flashes():
    return {"flashes": [[c, m] for c, m in flask.get_flashed_messages(with_categories=True)]}
"""

HTTP_TIMEOUT = 30


@dataclass
class User:
    """One browser: its cookie jar, and what its acknowledged increments add up to."""

    name: str
    http: requests.Session = field(default_factory=requests.Session)
    acknowledged: int = 0
    lost_session: bool = False
    statuses: list[int] = field(default_factory=list)
    #: (server, acknowledged so far, the answer) of each request that found no session
    losses: list[tuple[str, int, Any]] = field(default_factory=list)

    def inc(self, url: str) -> None:
        response = self.http.post(f"{url}/inc", params={"user": self.name}, timeout=HTTP_TIMEOUT)
        self.statuses.append(response.status_code)
        if response.status_code != 200:
            return
        body = response.json()
        if body["user"] != self.name or body["n"] != self.acknowledged + 1:
            self.lost_session = True  # a fresh session, or someone else's
            self.losses.append((url, self.acknowledged, body))
        self.acknowledged = body["n"] if body["user"] == self.name else self.acknowledged


def run_users(users: list[User], route: Callable[[User, int], str], count: int) -> None:
    """Each user sends ``count`` requests in sequence (users in parallel), request ``i``
    to ``route(user, i)``."""

    def one(user: User) -> None:
        for i in range(count):
            user.inc(route(user, i))

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(one, users))


def write_app(directory: Path) -> str:
    """Put the app in ``directory`` (made if missing); returns its spec for a server."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rolling_app.py").write_text(APP)
    return "rolling_app:app"
