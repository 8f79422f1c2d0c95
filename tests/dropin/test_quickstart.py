"""Flask-Session 0.8's README and docs quickstart examples run unchanged.

The example texts are copied from Flask-Session 0.8.0's README.rst and docs/usage.rst;
only a server address or directory is substituted, where the example names one this
test cannot own (localhost:6379, /sessions).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.kits.filesystem import session_files

CACHELIB_EXAMPLE = """
from flask import Flask, session
from flask_session import Session
from cachelib.file import FileSystemCache

app = Flask(__name__)

SESSION_TYPE = 'cachelib'
SESSION_SERIALIZATION_FORMAT = 'json'
SESSION_CACHELIB = FileSystemCache(threshold=500, cache_dir="/sessions"),
app.config.from_object(__name__)
Session(app)
"""

ROUTES = """
@app.route('/set/')
def set():
    session['key'] = 'value'
    return 'ok'

@app.route('/get/')
def get():
    return session.get('key', 'not set')
"""

FILESYSTEM_EXAMPLE = """
from flask import Flask, session
from flask_session import Session

app = Flask(__name__)
# Check Configuration section for more details
SESSION_TYPE = 'filesystem'
app.config.from_object(__name__)
Session(app)
"""

REDIS_QUICKSTART = """
from flask import Flask, session
from flask_session import Session
from redis import Redis

app = Flask(__name__)

SESSION_TYPE = 'redis'
SESSION_REDIS = Redis(host='localhost', port=6379)
app.config.from_object(__name__)
Session(app)
"""


@pytest.fixture
def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import the example as a module of its own (it calls from_object(__name__))."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def run(source: str, module_name: str) -> Any:
        (tmp_path / f"{module_name}.py").write_text(source + ROUTES)
        monkeypatch.delitem(sys.modules, module_name, raising=False)
        return check_example(importlib.import_module(module_name).app)

    return run


def check_example(app: Any) -> Any:
    client = app.test_client()
    assert client.get("/get/").data == b"not set"
    assert client.get("/set/").data == b"ok"
    assert client.get("/get/").data == b"value"
    return app


def test_cachelib_example(tmp_path: Path, run_example: Any) -> None:
    # the example's trailing comma (a 1-tuple) included, as printed in 0.8's docs
    source = CACHELIB_EXAMPLE.replace('"/sessions"', repr(str(tmp_path / "sessions")))
    app = run_example(source, "cachelib_example")
    assert app.session_interface.store.name == "filesystem"
    assert any((tmp_path / "sessions").iterdir())


def test_filesystem_example(run_example: Any) -> None:
    app = run_example(FILESYSTEM_EXAMPLE, "filesystem_example")
    store = app.session_interface.store
    assert store.name == "filesystem"
    # No SESSION_FILE_DIR in the example: the default directory, <instance folder>/
    # flask_session, really holds the session the example just wrote.
    assert store.directory == os.path.join(app.instance_path, "flask_session")
    assert len(session_files(store.directory)) == 1


def test_redis_quickstart(redis_url: str, run_example: Any) -> None:
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    source = REDIS_QUICKSTART.replace("port=6379", f"port={port}").replace(
        "'localhost'", "'127.0.0.1'"
    )
    app = run_example(source, "redis_quickstart")
    app.session_interface.store.redis.close()
