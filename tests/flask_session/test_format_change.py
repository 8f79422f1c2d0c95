"""Changing SESSION_SERIALIZATION_FORMAT keeps every session (filesystem store).

A session file written in the other format is read (the first byte tells JSON from
msgpack), increments work on it, and it is rewritten in the configured format when the
session is next written. The Redis store's side is in its own tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.flask_session.demo_app import create_app

FORMATS = [("json", "msgpack"), ("msgpack", "json")]


def make(session_dir: Path, fmt: str):
    return create_app(
        {
            "TESTING": True,
            "SESSION_TYPE": "filesystem",
            "SESSION_FILE_DIR": str(session_dir),
            "SESSION_SERIALIZATION_FORMAT": fmt,
        }
    )


def written_format(session_dir: Path) -> str:
    (name,) = [name for name in os.listdir(session_dir) if name.endswith(".session")]
    first = (session_dir / name).read_bytes()[:1]
    return "json" if first == b"{" else "msgpack"


@pytest.mark.parametrize(("old", "new"), FORMATS)
def test_a_session_written_in_the_other_format_is_read_incremented_and_rewritten(
    session_dir, old, new
):
    before, after = make(session_dir, old), make(session_dir, new)
    client = before.test_client()
    client.post("/set/name?value=Zoë")
    for _ in range(3):
        client.post("/incr/n")
    client.post("/set/permanent-flag?value=yes")
    assert written_format(session_dir) == old
    # The same cookie, now served by the app configured with the other format.
    sid = client.get_cookie("session").value
    moved = after.test_client()
    moved.set_cookie("session", sid)
    assert moved.get("/peek").get_json() == {
        "name": "Zoë",
        "n": 3,
        "permanent-flag": "yes",
    }
    assert written_format(session_dir) == old  # reading writes nothing
    assert moved.post("/incr/n").get_json() == {"value": 4}
    assert moved.get_cookie("session").value == sid  # the same session, not a new one
    assert written_format(session_dir) == new  # rewritten in the configured format
    assert moved.get("/get").get_json()["n"] == 4
    # And back: the old app reads the new format too.
    assert client.post("/incr/n").get_json() == {"value": 5}
    assert written_format(session_dir) == old


@pytest.mark.parametrize(("old", "new"), FORMATS)
def test_a_merged_write_on_a_session_of_the_other_format_keeps_its_other_keys(
    session_dir, old, new
):
    client = make(session_dir, old).test_client()
    client.post("/set/a?value=1")
    client.post("/incr/n")
    moved = make(session_dir, new).test_client()
    moved.set_cookie("session", client.get_cookie("session").value)
    moved.post("/set/b?value=2")
    assert written_format(session_dir) == new
    assert moved.get("/get").get_json() == {"a": "1", "b": "2", "n": 1}


def test_a_file_that_is_neither_format_still_gets_a_fresh_session(session_dir, caplog):
    client = make(session_dir, "json").test_client()
    client.post("/incr/n")
    (name,) = [name for name in os.listdir(session_dir) if name.endswith(".session")]
    path = session_dir / name
    mtime = path.stat().st_mtime
    path.write_bytes(b"\x93\x01\x02\x03")  # a msgpack array, not a map
    os.utime(path, (mtime, mtime))
    assert client.post("/incr/n").get_json() == {"value": 1}
    assert "ignoring unreadable session file" in caplog.text
