"""The per-user index (stores/users.py) for the filesystem store: one small file per user.

A user's index is ``<user>.<namespace>.users`` beside the sessions: a JSON object of
session handle -> ``[bind time, label]``. It holds handles (the session files' own
names), never session ids, so the directory still reveals no live id. The namespace is a
digest of ``SESSION_KEY_PREFIX`` (as for counters), and the ``.users`` suffix is one the
session cleanup never removes.

Every change happens under one exclusive ``flock`` on ``.users.<namespace>.lock`` (a
file that is never replaced, so every process locks the same one), and an index file is
replaced atomically (temp file, then ``os.replace``): a reader never sees half of one,
and a killed writer leaves the old one. A session is deleted (under its own lock) before
its entry is dropped, so an interrupted revoke leaves an entry to prune, never a live
session the index has lost. A session counts as live while its file's expiry (its
mtime) is ahead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator

from .common import LockWait
from .filelock import flock_within
from .users import UserSession, session_handle

SUFFIX = ".users"
SESSION_SUFFIX = ".session"
#: what a handle in an index file must look like before a path is built from it
_HANDLE = re.compile(r"[0-9a-f]{64}")

Entries = dict[str, list[object]]


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


class FileUserIndex:
    """The index of one key prefix in one directory. Raises OSError and
    SessionLockTimeout; the store turns OSError into StoreUnavailable."""

    def __init__(
        self,
        directory: str,
        key_prefix: str,
        lock_timeout: float,
        delete_session_file: Callable[[str], None],
        replace_file: Callable[[str, bytes], None],
    ) -> None:
        self.directory = directory
        self.key_prefix = key_prefix
        self.lock_timeout = lock_timeout
        self._delete_session_file = delete_session_file  # under the session's lock
        self._replace_file = replace_file  # atomic: temp file, then os.replace
        self._namespace = hashlib.sha256(key_prefix.encode()).hexdigest()[:16]
        self._lock_path = os.path.join(directory, f".users.{self._namespace}.lock")

    def bind(self, user: str, sid: str, *, label: str, cap: int | None) -> list[str]:
        handle = session_handle(self.key_prefix, sid)
        with self._locked():
            path = self._path(user)
            entries = self._read(path)
            bound_at = entries[handle][0] if handle in entries else time.time()
            entries[handle] = [bound_at, label]
            revoked: list[str] = []
            if cap is not None:
                live = self._live(entries)
                live.sort(key=lambda entry: (entry.handle == handle, entry.bound_at, entry.handle))
                revoked = self._revoke(entries, [e.handle for e in live[: max(0, len(live) - cap)]])
            self._store(path, entries)
        return revoked

    def unbind(self, user: str, sid: str) -> None:
        with self._locked():
            path = self._path(user)
            entries = self._read(path)
            if entries.pop(session_handle(self.key_prefix, sid), None) is not None:
                self._store(path, entries)

    def sessions(self, user: str) -> list[UserSession]:
        with self._locked():
            path = self._path(user)
            entries = self._read(path)
            live = self._live(entries)
            if len(live) != len(entries):
                self._store(path, {entry.handle: entries[entry.handle] for entry in live})
        return sorted(live, key=lambda entry: (entry.bound_at, entry.handle))

    def revoke(self, user: str, handles: Iterable[str] | None, *, keep: str | None) -> list[str]:
        wanted = None if handles is None else set(handles)
        with self._locked():
            path = self._path(user)
            entries = self._read(path)
            targets = [
                handle
                for handle in entries
                if handle != keep and (wanted is None or handle in wanted)
            ]
            revoked = self._revoke(entries, targets)
            self._store(path, entries)
        return revoked

    def prune(self) -> int:
        removed = 0
        ending = f".{self._namespace}{SUFFIX}"
        # An app that never bound a session has no index: then nothing is locked, so
        # cleanup leaves no lock file behind. (An index a bind creates meanwhile holds only
        # that live session: nothing to prune.)
        if not any(name.endswith(ending) for name in os.listdir(self.directory)):
            return 0
        with self._locked():
            for name in os.listdir(self.directory):
                if not name.endswith(ending):
                    continue
                path = os.path.join(self.directory, name)
                entries = self._read(path)
                live = self._live(entries)
                if len(live) != len(entries):
                    removed += len(entries) - len(live)
                    self._store(path, {entry.handle: entries[entry.handle] for entry in live})
        return removed

    # -- internals ---------------------------------------------------------------------

    def _path(self, user: str) -> str:
        return os.path.join(self.directory, f"{user}.{self._namespace}{SUFFIX}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self._lock_path, flags, 0o600)
        except FileNotFoundError:  # the directory was removed under us
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(self._lock_path, flags, 0o600)
        try:
            flock_within(fd, fcntl.LOCK_EX, LockWait(self.lock_timeout, "the per-user index"))
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self, path: str) -> Entries:
        try:
            with open(path, "rb") as file:
                data = json.loads(file.read())
        except FileNotFoundError:
            return {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Not ours: start this user's index again rather than fail every login. The
            # sessions it named live on; they are only no longer listed.
            return {}
        return {
            handle: entry
            for handle, entry in data.items()
            if _HANDLE.fullmatch(handle)
            and isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], (int, float))
            and isinstance(entry[1], str)
        }

    def _store(self, path: str, entries: Entries) -> None:
        if not entries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self._replace_file(path, json.dumps(entries).encode())

    def _session_path(self, handle: str) -> str:
        return os.path.join(self.directory, handle + SESSION_SUFFIX)

    def _live(self, entries: Entries) -> list[UserSession]:
        live = []
        now_ns = time.time_ns()
        for handle, (bound_at, label) in entries.items():
            try:
                expires_ns = os.stat(self._session_path(handle)).st_mtime_ns
            except FileNotFoundError:
                continue
            if expires_ns > now_ns:
                expires_in = (expires_ns - now_ns) / 1e9
                live.append(UserSession(handle, _number(bound_at), str(label), expires_in))
        return live

    def _revoke(self, entries: Entries, handles: list[str]) -> list[str]:
        """Delete the sessions, then drop their entries from ``entries``; the handles
        of those that were live."""
        live = {entry.handle for entry in self._live({h: entries[h] for h in handles})}
        for handle in handles:
            self._delete_session_file(self._session_path(handle))
            entries.pop(handle, None)
        return [handle for handle in handles if handle in live]
