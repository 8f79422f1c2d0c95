"""Issue 4, point 7: ``python -m sessionapp.loadcheck URL`` (or the ``loadcheck`` console
script) as an operator runs it.

Run as a real command against a real granian: the service on both stores must pass
every check (exit 0); the seed's mistakes (tests/reliability/broken_app.py: Flask's
cookie session with ``session["counter"] += 1`` and a module-global shared counter, 2
workers) must fail (exit 1); an unreachable or unhealthy URL is a clear one-line error
(exit 2), never a traceback.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from flask_session import __version__
from sessionapp.loadcheck import CookieJar, Target, Unusable
from tests.reliability.conftest import SERVICE_APP, needs_service
from tests.support.app_servers import REPO_ROOT
from tests.support.ports import free_port

#: the two ways to run it: as a module, and the console script of the service's distribution
AS_MODULE = [sys.executable, "-m", "sessionapp.loadcheck"]
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "loadcheck")]


def loadcheck(
    *args: str, timeout: float = 180, command: list[str] = AS_MODULE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rows(output: str) -> dict[str, str]:
    """Table rows: check name -> result column."""
    result = {}
    for line in output.splitlines():
        for status in ("ok", "FAIL", "note"):
            if line.endswith("  " + status):
                result[line.strip().split("  ")[0]] = status
    return result


def test_service_passes_every_check_on_both_stores(granian_server, store_env, store_type):
    needs_service()
    server = granian_server(SERVICE_APP, env=store_env, workers=2, threads=4)
    done = loadcheck(server.url, "--exclusive")
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert len(table) == 6 and set(table.values()) == {"ok"}, table
    assert "100/100" in done.stdout and "counter 1 -> 321" in done.stdout
    assert "OK: every check exact" in done.stdout
    assert done.stderr == ""  # not a terminal and no --progress: no progress bar


@pytest.mark.parametrize("command", [AS_MODULE, CONSOLE_SCRIPT], ids=["module", "script"])
def test_broken_server_fails_with_exit_status_1(granian_server, command):
    """Module-global counter + Flask's cookie session under 2 workers: the seed's bugs."""
    server = granian_server("tests.reliability.broken_app:app", workers=2, threads=4)
    done = loadcheck(
        server.url, "--clients", "30", "--requests", "10", "--progress", command=command
    )
    print(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["same cookie: 16 threads x 10 POST /inc"] == "FAIL"
    assert table["shared counter: 30 concurrent POST /shared/inc"] == "FAIL"
    assert "increments lost" in done.stdout and "handed out twice" in done.stdout
    assert "FAILED" in done.stdout
    assert "[" in done.stderr and "requests" in done.stderr  # the progress bar, forced on


@pytest.mark.parametrize("command", [AS_MODULE, CONSOLE_SCRIPT], ids=["module", "script"])
def test_unreachable_url_is_a_clear_error_not_a_traceback(command):
    done = loadcheck(f"http://127.0.0.1:{free_port()}", "--request-timeout", "2", command=command)
    assert done.returncode == 2
    assert done.stderr.startswith("loadcheck: cannot reach http://127.0.0.1:")
    assert "Connection refused" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_unhealthy_service_is_a_clear_error(granian_server, redis_server, redis_url):
    needs_service()
    env = {"FLASK_SESSION_TYPE": "redis", "FLASK_SESSION_REDIS_URL": redis_url}
    server = granian_server(SERVICE_APP, env=env, workers=1, threads=2)
    redis_server.stop()
    try:
        done = loadcheck(server.url)
    finally:
        redis_server.start()
    assert done.returncode == 2
    assert "answered 503" in done.stderr and "not healthy" in done.stderr
    assert "Traceback" not in done.stderr


def test_time_limit_bounds_the_run_and_fails_it(granian_server, tmp_path):
    needs_service()
    env = {"FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions")}
    server = granian_server(SERVICE_APP, env=env, workers=1, threads=2)
    done = loadcheck(server.url, "--clients", "2000", "--requests", "50", "--timeout", "1.5",
                     timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert "time limit of 1.5 s reached" in done.stdout


@pytest.mark.parametrize(
    "args", [["--clients", "0"], ["--timeout", "-1"], ["ftp://example.org"], []]
)
def test_bad_arguments_exit_2(args):
    done = loadcheck(*args, timeout=30)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [AS_MODULE, CONSOLE_SCRIPT], ids=["module", "script"])
def test_version_prints_the_projects_version_and_exits_0(command):
    done = loadcheck("--version", timeout=30, command=command)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"loadcheck {__version__}\n", "")


def test_target_parsing():
    assert Target.parse("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert Target.parse("https://example.org/app/").base == "https://example.org:443/app"
    with pytest.raises(Unusable):
        Target.parse("ftp://example.org")


def test_cookie_jar_follows_set_cookie_like_a_browser():
    jar = CookieJar()
    jar.update(["session=abc; Expires=Wed, 21 Oct 2099 07:28:00 GMT; HttpOnly; Path=/"])
    assert jar.header() == "session=abc"
    jar.update(["session=def; Path=/"])
    assert jar.header() == "session=def"
    jar.update(["session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"])
    assert jar.header() is None


def test_progress_bar_is_drawn_when_stderr_is_a_terminal(granian_server):
    """Without --progress the bar appears only on a terminal: stderr on a real pty here."""
    server = granian_server("tests.reliability.broken_app:app", workers=1, threads=2)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sessionapp.loadcheck", server.url,
             "--clients", "5", "--requests", "3", "--threads", "2"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        drawn = b""
        while select.select([leader], [], [], 0.2)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 1  # the broken app fails the same-cookie check
    assert b"\r[" in drawn and b"requests" in drawn and b"100%" in drawn, drawn[-300:]
