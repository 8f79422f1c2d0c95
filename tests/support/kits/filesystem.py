"""The filesystem store: one file per session in SESSION_FILE_DIR."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flask_session.stores.filecounter import FileCounters

from .base import StoreKit

SESSION_SUFFIX = ".session"
#: a session file's name: the SHA-256 of prefix + id, in hex, and the suffix
SESSION_FILE_NAME_LENGTH = 64 + len(SESSION_SUFFIX)


def file_name_for(sid: str, prefix: str = "session:") -> str:
    """The file name of a session id (ids cannot be read back from names: a hash)."""
    return hashlib.sha256((prefix + sid).encode()).hexdigest() + SESSION_SUFFIX


def counter_file_name(name: str = "shared", prefix: str = "session:") -> str:
    """The file name of a counter (the service's shared counter)."""
    return os.path.basename(FileCounters("", prefix, 1).path(name))


def session_files(directory: Path | str) -> set[str]:
    """Names of session files (not temp files, not other files) in ``directory``."""
    if not os.path.exists(directory):
        return set()
    return {
        name
        for name in os.listdir(directory)
        if name.endswith(SESSION_SUFFIX) and len(name) == SESSION_FILE_NAME_LENGTH
    }


class FilesystemKit(StoreKit):
    store_type = session_type = "filesystem"
    rank = 10
    expires_by_cleanup = True
    locks_are_stored = False

    def dump(self, store: Any) -> bytes:
        parts: list[bytes] = []
        for root, _dirs, files in os.walk(store.directory):
            parts.append(root.encode())
            for name in files:
                parts.append(name.encode())
                with open(os.path.join(root, name), "rb") as file:
                    parts.append(file.read())
        return b"\n".join(parts)

    def settings(self, request: pytest.FixtureRequest, session_dir: Path) -> dict[str, Any]:
        return {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(session_dir)}

    def session_names(self, store: Any, prefix: str = "session:") -> set[str]:
        return {name.removesuffix(".session") for name in session_files(store.directory)}

    def holds(self, store: Any, sid: str, prefix: str = "session:") -> bool:
        return file_name_for(sid, prefix) in session_files(store.directory)

    def session_count(self, store: Any, prefix: str = "session:") -> int:
        return len(session_files(store.directory))

    def lock_count(self, store: Any, prefix: str = "session:") -> int:
        return 0  # a session's lock is a flock on its file: nothing is left to count

    def items(self, store: Any) -> list[str]:
        return sorted(os.listdir(store.directory))

    def stored_document(self, store: Any, sid: str) -> bytes | None:
        with open(store._path(sid), "rb") as file:
            return file.read()

    def corrupt(self, store: Any, sid: str) -> None:
        path = store._path(sid)
        expiry = os.stat(path).st_mtime_ns
        with open(path, "r+b") as file:
            file.truncate(3)  # a torn write from outside our atomic writer
        os.utime(path, ns=(expiry, expiry))

    @contextmanager
    def outage(self, request: pytest.FixtureRequest, store: Any) -> Iterator[None]:
        # A regular file where the directory was: every open fails (root ignores
        # permission bits, so a chmod would not do).
        directory = store.directory
        shutil.rmtree(directory)
        with open(directory, "w") as file:
            file.write("not a directory")
        try:
            yield
        finally:
            os.unlink(directory)
            os.makedirs(directory)


KIT = FilesystemKit()
