"""How fast `flask session cleanup` is on its own: N session files, half expired, idle machine.

    .venv/bin/python bench/cleanup_speed.py [--sessions 100000]

Fills a fresh session directory through the filesystem store (the same files the service
writes), expires every other one by moving its mtime (the file store's expiry stamp) an hour
into the past, then times the real command, `flask --app app session cleanup`, as a separate
process. Prints a Markdown table. `bench/run` measures the same command while a load runs
(the `cleanup` scenario); this is the figure for the command by itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from flask import Flask

    from flask_session import Session
    from flask_session.ids import new_session_id

    with tempfile.TemporaryDirectory(prefix="cleanup-speed-") as tmp:
        session_dir = os.path.join(tmp, "sessions")
        app = Flask(__name__, instance_path=tmp)
        app.config.update(SESSION_FILE_DIR=session_dir)
        Session(app)
        store = app.session_interface.store
        value = {"counter": store.codec.encode(1)}
        past = time.time() - 3600
        started = time.monotonic()
        for number in range(args.sessions):
            sid = new_session_id(32)
            store.save(sid, value, [], ttl=3600, create=True)
            if number % 2 == 0:
                os.utime(store._path(sid), (past, past))
        filled = time.monotonic() - started

        command = [sys.executable, "-m", "flask", "--app", "app", "session", "cleanup"]
        env = dict(os.environ, FLASK_SESSION_FILE_DIR=session_dir)
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        left = sum(1 for name in os.listdir(session_dir) if name.endswith(".session"))

    if result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
        return 1
    expired = (args.sessions + 1) // 2
    print(f"Filled {args.sessions:,} session files in {filled:.1f} s; the command said:")
    print(f"> {result.stdout.strip()}")
    print()
    print("| session files | expired | cleanup wall time (with process start-up) | files left |")
    print("|---:|---:|---:|---:|")
    print(f"| {args.sessions:,} | {expired:,} | {took:.2f} s | {left:,} |")
    return 0 if left == args.sessions - expired else 1


if __name__ == "__main__":
    sys.exit(main())
