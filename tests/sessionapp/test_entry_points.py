"""The commands in the README: ``gunicorn -c gunicorn.conf.py app:app`` and ``flask --app app run``.

Run as written, with no flags added by the test; only the environment moves the bind
address to a free port and the session directory into a temporary one.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest
import requests

from tests.support.app_servers import child_pids
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


def test_gunicorn_conf_names_only_settings_this_gunicorn_knows():
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
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
    assert len(child_pids(server.proc.pid)) == 2
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


def test_the_makefile_runs_this_config():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "gunicorn -c gunicorn.conf.py app:app" in makefile
    assert Path(REPO_ROOT / "app.py").exists()
