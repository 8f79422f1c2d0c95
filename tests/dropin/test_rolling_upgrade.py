"""A rolling upgrade from Flask-Session 0.8 loses no session (issue 17).

Real Flask-Session 0.8 servers (gunicorn from 0.8's own venv) and this project's servers
(granian) serve one Redis at once, running the same app file: each only has a different
``flask_session`` installed. Clients, each sending its requests in sequence as a browser
does, are split in three groups: some move to the new fleet once, some alternate
between the fleets on every request, some stay on 0.8 while the new servers come up.
The new fleet has no setting: ``SESSION_08_SERVERS``'s default, ``auto``, finds 0.8's
sessions as each server starts. Then everyone is on the new fleet, the 0.8 fleet stops,
the transition is ended (``SESSION_08_SERVERS = False``, ``flask session upgrade-08
--finish``), and every session and every acknowledged increment is still there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.flask_session_08 import GunicornServer08, run_08
from tests.support.rolling import HTTP_TIMEOUT, User, run_users, write_app

USERS_PER_GROUP = 5
REQUESTS_PER_PHASE = 12


#: each store as the test's fixtures serve it: (SESSION_TYPE, the target's fixture)
STORES = {
    "redis": ("redis", "redis_url"),
    "postgresql": ("sqlalchemy", "postgres_url"),
    "memcached": ("memcached", "memcached_servers"),
    "filesystem": ("filesystem", "tmp_path"),
}


@pytest.mark.parametrize(
    ("store", "fmt"),
    [
        ("redis", "msgpack"),
        ("redis", "json"),
        ("postgresql", "msgpack"),
        ("memcached", "json"),
        ("filesystem", "json"),
    ],
)
def test_a_rolling_upgrade_loses_no_session_and_no_increment(
    fs08_python: Path,
    tmp_path: Path,
    granian_server: Any,
    request: pytest.FixtureRequest,
    store: str,
    fmt: str,
) -> None:
    store_type, fixture = STORES[store]
    target = str(request.getfixturevalue(fixture))
    if store == "filesystem":
        target = str(tmp_path / "sessions")
    if store == "postgresql":  # psycopg 3 in both venvs (SQLAlchemy's plain URL is psycopg2)
        target = target.replace("postgresql://", "postgresql+psycopg://", 1)
    app_dir = tmp_path / "app"
    app_spec = write_app(app_dir)
    env = {"ROLLING_STORE": store_type, "ROLLING_TARGET": target, "ROLLING_FORMAT": fmt}
    if store == "postgresql":
        # The 0.8 fleet was serving before the roll, so its table exists. Made here once:
        # 0.8 creates it as each worker builds the app, and two workers doing that at the
        # same moment race in PostgreSQL's catalog (one dies: 0.8's race, not the roll's).
        make_table = f"import os; os.environ.update({env!r}); import rolling_app"
        run_08(fs08_python, make_table, cwd=app_dir)
    old = GunicornServer08(
        app_spec, python=fs08_python, env=env, cwd=app_dir, workers=2, threads=4
    ).start()
    # No setting: the new fleet's default ('auto') finds 0.8's sessions at start-up.
    new_env = {**env, "PYTHONPATH": str(app_dir)}
    new = None
    try:
        groups: dict[str, list[User]] = {
            group: [User(f"{group}-{i}") for i in range(USERS_PER_GROUP)]
            for group in ("move", "alternate", "stay")
        }
        everyone = [user for users in groups.values() for user in users]
        # Before the roll: everyone's session is made and used on 0.8.
        run_users(everyone, lambda user, i: old.url, 3)
        new = granian_server(app_spec, env=new_env, workers=2, threads=4)
        # the new fleet says why it serves the transition, and how to end it
        assert "serving a rolling upgrade from Flask-Session 0.8" in new.log_text()
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
        # A message flashed on one fleet is shown by the other (Flask keeps it as a tuple).
        for user in groups["alternate"]:
            for writer, reader in ((new, old), (old, new)):
                text = f"from {writer.kind} to {reader.kind}"
                user.statuses.append(
                    user.http.post(f"{writer.url}/flash", params={"text": text}).status_code
                )
                shown = user.http.get(f"{reader.url}/flashes", timeout=HTTP_TIMEOUT)
                user.statuses.append(shown.status_code)
                assert shown.json() == {"flashes": [["info", text]]}
        # Everyone on the new fleet; then no 0.8 server is left.
        run_users(everyone, lambda user, i: new.url, 3)
        old.close()
        new.close()
        # The transition ended: the setting off, every 0.8 copy dropped by the command.
        new = granian_server(
            app_spec, env={**new_env, "FLASK_SESSION_08_SERVERS": "false"}, workers=2
        )
        finished = flask_cli(app_dir, new_env, "session", "upgrade-08", "--finish")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        shared_layout = store in ("postgresql", "memcached")
        assert ("nothing to carry over" if shared_layout else "in the store: 0 ") in (
            finished.stdout
        )
        if store == "postgresql":  # every row moved to its hashed key: no id at rest
            assert "Moved " in finished.stdout and "Moved 0 " not in finished.stdout, (
                finished.stdout
            )
        run_users(everyone, lambda user, i: new.url, 2)

        lost_sessions = [(user.name, user.losses) for user in everyone if user.lost_session]
        statuses = {status for user in everyone for status in user.statuses}
        expected = 3 + REQUESTS_PER_PHASE + 3 + 2
        lost_increments = sum(expected - user.acknowledged for user in everyone)
        assert (lost_sessions, lost_increments, statuses) == ([], 0, {200})
        if store == "redis":  # every session is in this project's layout now
            client = redis.Redis.from_url(target)
            try:
                legacy = [
                    k for k in client.scan_iter(match="session:*") if client.type(k) == b"string"
                ]
            finally:
                client.close()
            assert legacy == []
    except BaseException:
        for server in (old, new):  # shown by pytest with the failure
            if server is not None:
                print(f"--- {server.kind} log ---\n{server.log_tail()}")
        raise
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
