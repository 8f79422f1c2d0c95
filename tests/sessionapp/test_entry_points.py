"""The commands in the README: ``make run`` (``python -m sessionapp.serve``: granian),
``gunicorn -c gunicorn.conf.py app:app`` and ``flask --app app run``.

Run as written, with no flags added by the test; only the environment moves the bind
address to a free port and the session directory into a temporary one.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from flask_session import __version__
from sessionapp import serve, server_settings
from tests.support.app_servers import child_pids, is_alive
from tests.support.ports import HOST, free_port

from .conftest import PYTHON, REPO_ROOT

GUNICORN_CONF = REPO_ROOT / "gunicorn.conf.py"


def load_gunicorn_conf() -> dict:
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_conf_defaults():
    conf = load_gunicorn_conf()
    assert conf["bind"] == "127.0.0.1:5000"
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] == 4
    assert conf["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert conf["control_socket_disable"] is True


def test_gunicorn_conf_reads_its_environment(monkeypatch):
    monkeypatch.setenv("SESSIONAPP_BIND", "127.0.0.1:8123")
    monkeypatch.setenv("SESSIONAPP_WORKERS", "3")
    monkeypatch.setenv("SESSIONAPP_THREADS", "8")
    conf = load_gunicorn_conf()
    assert (conf["bind"], conf["workers"], conf["threads"]) == ("127.0.0.1:8123", 3, 8)


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_gunicorn_conf_refuses_a_bad_worker_count(monkeypatch, value):
    monkeypatch.setenv("SESSIONAPP_WORKERS", value)
    with pytest.raises(SystemExit, match="SESSIONAPP_WORKERS"):
        load_gunicorn_conf()


#: settings gunicorn.conf.py names for newer gunicorn versions; older ones ignore names they
#: do not know (the service's lowest gunicorn runs on it: `make test-bounds`)
NEWER_GUNICORN_SETTINGS = {"control_socket_disable"}  # gunicorn 26


def test_gunicorn_conf_names_only_settings_this_gunicorn_knows():
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS} | NEWER_GUNICORN_SETTINGS
    conf = load_gunicorn_conf()
    settings = {
        name
        for name, value in conf.items()
        if not name.startswith("_") and not callable(value) and name not in ("logging", "os")
    }
    assert settings <= known, settings - known
    assert "on_starting" in known


def test_gunicorn_with_the_config_file_serves_the_filesystem_default(command_server, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "SESSIONAPP_BIND": f"{HOST}:{port}",
        "SESSIONAPP_WORKERS": "2",
        "FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions"),
        # gunicorn puts its control socket under $HOME (or $XDG_RUNTIME_DIR) unless the
        # config disables it; a private HOME shows whether it did.
        "HOME": str(home),
        "XDG_RUNTIME_DIR": "",
    }
    server = command_server(
        [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "app:app"], env=env, port=port
    )
    with requests.Session() as http:
        health = http.get(server.url + "/healthz", timeout=10)
        assert health.json() == {"status": "ok", "store": "filesystem"}
        counts = [http.post(server.url + "/inc", timeout=10).json()["counter"] for _ in range(3)]
        assert counts == [1, 2, 3]
        page = http.get(server.url + "/", headers={"Accept": "text/html"}, timeout=10)
        assert 'id="counter" aria-live="polite">3<' in page.text
        assert http.get(server.url + "/static/app.js", timeout=10).status_code == 200
    assert len(list((tmp_path / "sessions").glob("*.session"))) == 1
    assert len(_wait_for_workers(server, 2)) == 2
    log = server.log_text()
    assert "Using worker: gthread" in log
    assert f"Listening at: http://{HOST}:{port}" in log
    assert not (home / ".gunicorn").exists()  # no control socket


def test_gunicorn_sends_the_apps_log_lines_through_its_own_log(command_server, tmp_path):
    """An outage logged by the app shows up with gunicorn's time stamp and pid."""
    port = free_port()
    sessions = tmp_path / "sessions"
    env = {
        "SESSIONAPP_BIND": f"{HOST}:{port}",
        "SESSIONAPP_WORKERS": "1",
        "FLASK_SESSION_FILE_DIR": str(sessions),
    }
    server = command_server(
        [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "app:app"], env=env, port=port
    )
    sessions.rmdir()
    sessions.write_text("not a directory")  # an outage of the filesystem store
    try:
        assert requests.post(server.url + "/inc", timeout=10).status_code == 503
    finally:
        sessions.unlink()
    lines = [line for line in server.log_text().splitlines() if "is unavailable" in line]
    assert lines, server.log_text()
    assert "[ERROR]" in lines[0] and lines[0].startswith("[")


def test_flask_run_serves_the_app(command_server, tmp_path):
    port = free_port()
    env = {"FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions")}
    server = command_server(
        [PYTHON, "-m", "flask", "--app", "app", "run", "--host", HOST, "--port", str(port)],
        env=env,
        port=port,
    )
    with requests.Session() as http:
        assert http.post(server.url + "/inc", timeout=10).json() == {"counter": 1}
        assert http.get(server.url + "/counter", timeout=10).json() == {"counter": 1}


def test_the_makefile_runs_these_commands():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "-m sessionapp.serve" in makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "gunicorn -c gunicorn.conf.py app:app" in makefile.split("\nrun-gunicorn:", 1)[1]
    assert Path(REPO_ROOT / "app.py").exists()


# -- granian: sessionapp/serve.py ----------------------------------------------------------

#: an app log line: [time] [pid] [LEVEL] logger: message
_TIME = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"
APP_LOG_LINE = re.compile(rf"^{_TIME} \[(\d+)\] \[ERROR\] ")
#: an access log line: [time] [pid] [ACCESS] 127.0.0.1 - "POST /inc HTTP/1.1" 200 1.234 ms
ACCESS_LINE = re.compile(
    rf'^{_TIME} \[(\d+)\] \[ACCESS\] 127\.0\.0\.1 - "POST /inc HTTP/1\.1" (200|503) '
)


def test_serve_defaults():
    settings = serve.ServeSettings.from_environ({})
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)
    assert settings.workers == len(os.sched_getaffinity(0))
    assert settings.threads == 4


def test_serve_reads_the_same_environment_as_gunicorn_conf():
    env = {"SESSIONAPP_BIND": "[::1]:8123", "SESSIONAPP_WORKERS": "3", "SESSIONAPP_THREADS": "8"}
    assert serve.ServeSettings.from_environ(env) == serve.ServeSettings("::1", 8123, 3, 8)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSIONAPP_WORKERS", "two"),
        ("SESSIONAPP_WORKERS", "0"),
        ("SESSIONAPP_THREADS", "-1"),
        ("SESSIONAPP_THREADS", "1.5"),
        ("SESSIONAPP_BIND", "localhost"),
        ("SESSIONAPP_BIND", "127.0.0.1:http"),
        ("SESSIONAPP_BIND", "127.0.0.1:70000"),
        ("SESSIONAPP_BIND", ":5000"),
    ],
)
def test_both_launchers_refuse_a_bad_server_setting_by_name(monkeypatch, name, value):
    with pytest.raises(SystemExit, match=name):
        serve.ServeSettings.from_environ({name: value})
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=f"gunicorn.conf.py: {name}"):
        load_gunicorn_conf()


def test_serve_configures_granian_for_production():
    settings = serve.ServeSettings("127.0.0.1", 5000, 2, 4)
    server = serve.build_server(settings, "app:app")
    assert server.interface == "wsgi"
    assert (server.workers, server.blocking_threads) == (2, 4)
    assert server.respawn_failed_workers is True
    assert server.respawn_interval == serve.RESPAWN_INTERVAL_S <= 2
    assert server.http1_settings.header_read_timeout == serve.HEADER_READ_TIMEOUT_MS <= 10_000
    assert server.log_access is True
    assert server.log_config["root"]["handlers"]  # the app's records reach the output


def test_make_run_serves_logs_and_survives_a_killed_worker(command_server, tmp_path):
    """``make run``'s command as written: access log and the app's own log lines carry time
    and worker pid; a worker killed with SIGKILL is replaced and the service goes on."""
    port = free_port()
    sessions = tmp_path / "sessions"
    env = {
        "SESSIONAPP_BIND": f"{HOST}:{port}",
        "SESSIONAPP_WORKERS": "2",
        "FLASK_SESSION_FILE_DIR": str(sessions),
    }
    server = command_server([PYTHON, "-m", "sessionapp.serve"], env=env, port=port)
    workers = _wait_for_workers(server, 2)
    with requests.Session() as http:
        counts = [http.post(server.url + "/inc", timeout=10).json()["counter"] for _ in range(3)]
        assert counts == [1, 2, 3]
        os.kill(workers[0], signal.SIGKILL)
        _wait_for_workers(server, 2, gone=workers[0])
        # granian's workers each listen on their own socket: a replacement counted as a
        # child may not listen yet, so wait until the service answers again
        deadline = time.monotonic() + 20
        while not server.is_ready():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        assert http.post(server.url + "/inc", timeout=10).json()["counter"] == 4
    shutil.rmtree(sessions)
    sessions.write_text("not a directory")  # an outage of the filesystem store
    try:
        assert requests.post(server.url + "/inc", timeout=10).status_code == 503
    finally:
        sessions.unlink()
    deadline = time.monotonic() + 10  # an access line is written after its answer
    while True:
        log = server.log_text()
        access = [ACCESS_LINE.match(line) for line in log.splitlines() if "POST /inc" in line]
        if len(access) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(access) == 5 and all(access), log  # four 200s and the 503
    serving = set(workers) | set(child_pids(server.proc.pid))
    assert {int(match.group(1)) for match in access if match} <= serving, log
    lines = [line for line in log.splitlines() if "is unavailable" in line]
    assert lines, log
    match = APP_LOG_LINE.match(lines[0])
    assert match, lines[0]
    assert int(match.group(1)) in child_pids(server.proc.pid)  # logged by a worker


#: granian's line when a worker is up (2.5: also "Started worker-1 runtime-1")
STARTED_WORKER = re.compile(r"Started worker-\d+\s*$", re.MULTILINE)
#: SIGTERMs with requests in flight, per run of the test below: granian 2.5-2.7 aborted a
#: worker in about 3 of 4 such stops, so three stops all but always catch a regression
SHUTDOWN_ROUNDS = 3


def test_make_run_stops_without_a_panic_with_requests_in_flight(command_server, tmp_path):
    """SIGTERM while clients keep posting: every worker stops cleanly. granian before 2.8
    aborted workers here ("panic in a function that cannot unwind"), hence granian>=2.8 in
    service/pyproject.toml, which `make test-bounds` holds to this test."""
    for round_ in range(SHUTDOWN_ROUNDS):
        port = free_port()
        env = {
            "SESSIONAPP_BIND": f"{HOST}:{port}",
            "SESSIONAPP_WORKERS": "2",
            "FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions"),
        }
        server = command_server([PYTHON, "-m", "sessionapp.serve"], env=env, port=port)
        _wait_for_workers(server, 2)
        _wait_for_log(server, STARTED_WORKER, 2)  # stopping a worker still starting: not this
        answered = threading.Semaphore(0)
        stopping = threading.Event()
        clients = [
            threading.Thread(target=_post_until, args=(server.url, stopping, answered))
            for _ in range(2)
        ]
        for client in clients:
            client.start()
        assert answered.acquire(timeout=10), server.log_text()  # requests are in flight
        server.stop()
        stopping.set()
        for client in clients:
            client.join(timeout=10)
        assert "panicked" not in server.log_text(), f"round {round_}:\n{server.log_text()}"


def _post_until(url: str, stopping: threading.Event, answered: threading.Semaphore) -> None:
    """POST /inc until ``stopping`` (at most 2000 times), a fresh connection each, as many
    clients do; ``answered`` is released for each answer."""
    for _ in range(2000):
        if stopping.is_set():
            return
        try:
            requests.post(url + "/inc", timeout=2)
            answered.release()
        except requests.RequestException:  # refused once the socket is closed
            pass


def _wait_for_log(server, pattern: re.Pattern[str], count: int, limit: float = 20) -> None:
    """Until ``pattern`` matches ``count`` times in the server's log."""
    deadline = time.monotonic() + limit
    while len(pattern.findall(server.log_text())) < count:
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)


def _wait_for_workers(server, count: int, gone: int | None = None, limit: float = 20) -> list[int]:
    """The server's `count` workers, once they run (and `gone`, a killed one, is not one)."""
    deadline = time.monotonic() + limit
    while True:
        workers = child_pids(server.proc.pid)
        if len(workers) == count and (gone is None or not is_alive(gone)):
            return workers
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)


CONSOLE_SCRIPT = str(Path(PYTHON).parent / "sessionapp")


@pytest.mark.parametrize("argv", [[PYTHON, "-m", "sessionapp.serve"], [CONSOLE_SCRIPT]])
def test_serve_refuses_a_bad_app_setting_at_once(tmp_path, argv):
    """Not a respawn loop of crashing workers: exit 1 before listening, naming the setting."""
    env = {
        **os.environ,
        "SESSIONAPP_BIND": f"{HOST}:{free_port()}",
        "FLASK_SESSION_FILE_DIR": str(tmp_path / "s"),
        "FLASK_SESSION_COOKIE_SECURE": "maybe",
    }
    started = time.monotonic()
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == serve.EXIT_BAD_SETTING, result
    assert "SESSION_COOKIE_SECURE is 'maybe'" in result.stderr
    assert "Listening" not in result.stdout + result.stderr
    assert time.monotonic() - started < 30


#: an app.py that would betray being imported: it leaves a marker file and serves nothing
HOSTILE_APP = """\
from pathlib import Path
Path(__file__).with_name("imported").touch()
raise SystemExit("the foreign app.py was imported")
"""


def test_the_console_script_serves_the_service_not_an_app_py_of_the_current_directory(
    command_server, tmp_path
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text(HOSTILE_APP)
    port = free_port()
    env = {
        "SESSIONAPP_BIND": f"{HOST}:{port}",
        "SESSIONAPP_WORKERS": "1",
        "FLASK_SESSION_FILE_DIR": str(tmp_path / "sessions"),
    }
    server = command_server([CONSOLE_SCRIPT], env=env, port=port, cwd=elsewhere)
    with requests.Session() as http:
        assert [http.post(server.url + "/inc", timeout=10).json()["counter"] for _ in range(2)] == [
            1,
            2,
        ]
    assert not (elsewhere / "imported").exists(), server.log_text()
    assert (
        serve.DEFAULT_APP
        in subprocess.run(
            [CONSOLE_SCRIPT, "--help"], cwd=elsewhere, capture_output=True, text=True, timeout=30
        ).stdout
    )


def test_the_app_check_resolves_targets_as_granian_does(tmp_path, monkeypatch):
    """module:name, a dotted name, module:factory(), looked up in the current directory
    first; a missing name is the error text, and nothing is imported in this process."""
    (tmp_path / "here_app.py").write_text(
        "class holder:\n    app = 'nested'\napp = 'plain'\ndef make():\n    return 'built'\n"
    )
    monkeypatch.chdir(tmp_path)
    for target in ["here_app:app", "here_app", "here_app:holder.app", "here_app:make()"]:
        assert serve.check_app(*serve.split_target(target)) is None, target
    assert "missing" in serve.check_app("here_app:missing", False)
    assert "here_app" not in sys.modules


def test_serve_uses_no_private_granian_name():
    """Only granian's documented API (the Granian class, constants, http): a private
    name (granian._internal, granian._anything) may change in any release."""
    imports = [
        (source.name, line.strip())
        for source in (REPO_ROOT / "sessionapp").glob("*.py")
        for line in re.findall(r"^\s*(?:from|import) granian.*$", source.read_text(), re.M)
    ]
    assert ("serve.py", "from granian import Granian") in imports  # the scan sees them
    assert [hit for hit in imports if re.search(r"\._|import _", hit[1])] == []


@pytest.mark.parametrize("argv", [[PYTHON, "-m", "sessionapp.serve"], [CONSOLE_SCRIPT]])
def test_version_prints_the_projects_version_and_exits_0(argv, tmp_path):
    done = subprocess.run(
        [*argv, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"sessionapp {__version__}\n", "")


def test_shared_settings_module_is_what_gunicorn_conf_uses():
    conf = load_gunicorn_conf()
    assert conf["threads"] == server_settings.DEFAULT_THREADS
    assert conf["bind"] == server_settings.DEFAULT_BIND
