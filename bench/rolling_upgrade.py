"""A rolling upgrade on one session directory, side by side with Flask-Session 0.8 alone: a table.

    .venv/bin/python bench/rolling_upgrade.py [--users 40] [--requests 20] [--threshold 10]

The same app file (tests/support/rolling.py) served by two fleets on one directory:
``0.8 alone`` is two Flask-Session 0.8 gunicorn servers (its own venv, as
bench/.venv-flask-session has it); ``rolling`` is one 0.8 server and one of this
project's (granian, ``SESSION_08_SERVERS`` on); ``rolling, threshold 0`` the same with
the 0.8 server's pruning off (``SESSION_FILE_THRESHOLD = 0``, the docs' advice). Each user
makes its session on 0.8, then sends ``--requests`` increments in sequence, alternating
between the fleets. 0.8's ``--threshold`` (``SESSION_FILE_THRESHOLD``) is set low so that
its pruning, which a busy 0.8 directory meets at 500 files, happens within the run.
Prints, per scenario: sessions lost (a user's increment found no session, or another's),
acknowledged increments lost, and non-200 answers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.app_servers import AppServer, GranianServer  # noqa: E402
from tests.support.flask_session_08 import (  # noqa: E402
    GunicornServer08,
    flask_session_08_python,
)
from tests.support.rolling import User, run_users, write_app  # noqa: E402

#: requests each user makes on 0.8 before the roll (its session is 0.8's)
FIRST_ON_08 = 2


def scenario(
    name: str,
    users: int,
    requests: int,
    env: dict[str, str],
    start_other: Callable[[str, dict[str, str], Path], AppServer],
) -> tuple[str, int, int, int]:
    with tempfile.TemporaryDirectory(prefix="rolling-") as temp:
        app_dir = Path(temp) / "app"
        spec = write_app(app_dir)
        env = {**env, "ROLLING_TARGET": str(Path(temp) / "sessions")}
        python = flask_session_08_python()
        old = GunicornServer08(spec, python=python, env=env, cwd=app_dir, workers=2, threads=4)
        other: AppServer | None = None
        try:
            old.start()
            other = start_other(spec, env, app_dir).start()
            clients = [User(f"user-{i}") for i in range(users)]
            run_users(clients, lambda user, i: old.url, FIRST_ON_08)
            urls = (old.url, other.url)
            run_users(clients, lambda user, i: urls[(i + 1) % 2], requests)
        finally:
            old.close()
            if other is not None:
                other.close()
    lost = sum(user.lost_session for user in clients)
    acked = sum(FIRST_ON_08 + requests - user.acknowledged for user in clients)
    errors = sum(status != 200 for user in clients for status in user.statuses)
    return name, lost, acked, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--threshold", type=int, default=10)
    args = parser.parse_args()
    base = {"ROLLING_STORE": "filesystem", "ROLLING_FORMAT": "json"}
    pruning = {**base, "ROLLING_FILE_THRESHOLD": str(args.threshold)}
    python = flask_session_08_python()

    def another_08(spec: str, env: dict[str, str], app_dir: Path) -> AppServer:
        return GunicornServer08(spec, python=python, env=env, cwd=app_dir, workers=2, threads=4)

    def ours(spec: str, env: dict[str, str], app_dir: Path) -> AppServer:
        new_env = {**env, "PYTHONPATH": str(app_dir), "FLASK_SESSION_08_SERVERS": "true"}
        return GranianServer(spec, env=new_env, workers=2, threads=4)

    rows = [
        scenario("0.8 alone", args.users, args.requests, pruning, another_08),
        scenario("rolling", args.users, args.requests, pruning, ours),
        scenario("rolling, threshold 0", args.users, args.requests, {**base}, ours),
    ]
    print(
        f"{args.users} users x ({FIRST_ON_08} + {args.requests}) requests, alternating"
        f" fleets; 0.8's SESSION_FILE_THRESHOLD {args.threshold}"
    )
    print(f"{'scenario':<22} {'sessions lost':>14} {'increments lost':>16} {'non-200':>8}")
    for name, lost, acked, errors in rows:
        print(f"{name:<22} {lost:>14} {acked:>16} {errors:>8}")


if __name__ == "__main__":
    main()
