"""The filesystem store: one file per session in ``SESSION_FILE_DIR``; no server needed.

Layout and rules:

* A session's file is ``sha256(SESSION_KEY_PREFIX + sid).session``. No path is ever
  built from cookie text, and a directory listing does not reveal live session ids.
* The file holds one JSON or msgpack document (key -> value). A file in the format that
  is not configured is still read (a JSON document starts with ``{``, which no msgpack
  map does) and is rewritten in the configured format when the session is next
  written, so changing SESSION_SERIALIZATION_FORMAT, or a rolling deploy across the
  change, logs nobody out. Its **mtime is its expiry
  time**: refreshing a session is one ``utime`` call instead of a rewrite, and cleanup
  needs only ``stat``.
* Writes are atomic: a temp file (``.*.tmp``, mode 0600) in the same directory, then
  ``os.replace``. A reader never sees a half-written file, even if a writer is killed.
* Every write (save, incr, delete, cleanup) happens under the file's flock, so merges
  and increments are atomic across processes. Readers need no lock.
* Store-wide counters are ``*.counter`` files beside the sessions (see filecounter.py),
  and the per-user index ``*.users`` files (see fileusers.py).
* A rolling upgrade (``SESSION_08_SERVERS``): each session is also kept as Flask-Session
  0.8's cachelib file beside its own, and 0.8's writes are read back (filesystem08.py).

Why not cachelib's ``FileSystemCache``: its ``get`` answers ``None`` both for a missing
key and for an I/O error, so a failing disk would look like an empty session and the
next write would overwrite real data; it has no lock that spans read-modify-write across
processes, so merges and ``inc`` lose updates; and its temp-file replace changes the
file's inode, so a lock cannot be taken on the data file itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import struct
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..codecs import DecodeError
from ..errors import OutageLog, SessionConfigError, StoreUnavailable
from ..readers import Setting, directory
from .base import PERMANENT_KEY, CleanupReport, IncrResult, Loaded, Store
from .common import ErrorGuard, at_rest_name, decode_int
from .documents import codec_of, recode
from .filecounter import FileCounters
from .filelock import FileLock, lock_existing, same_file
from .filesystem08 import (
    copy_digest,
    digest,
    is_08_name,
    parse_08,
    read_08,
    unlink_08,
    with_copy,
    write_08,
)
from .fileusers import FileUserIndex
from .legacy import LegacyCacheLibFiles, adopt
from .upgrade08 import (
    MARKER_FOUND,
    PROBE_SECONDS,
    Count08,
    Serves08,
    refuse_finish_while_serving_08,
    serves_08_at_start,
)
from .users import KeptUserIndex

if TYPE_CHECKING:
    from ..settings import SessionSettings

logger = logging.getLogger(__name__)

SUFFIX = ".session"
#: the rolling upgrade's marker (upgrade08.py): one per directory, as 0.8's files are
MARKER_08_FILE = ".upgrade-08"
#: its content: cachelib's header with the latest expiry it can hold (so 0.8's pruning,
#: which deletes expired files, then files by that number from the smallest, deletes it
#: last, and reads it without a warning), then what it is
_HEADER_08 = struct.Struct("I")
MARKER_08_CONTENT = (
    _HEADER_08.pack(0xFFFFFFFF) + b"flask_session: a rolling upgrade from 0.8 is on\n"
)
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
_SESSION_NAME_LENGTH = 64 + len(SUFFIX)  # sha256 hex digest + suffix

#: What an OS error means, in words fit for the log and for a client.
OS_ERROR_REASONS = {
    errno.ENOSPC: "the session store's disk is full",
    errno.EDQUOT: "the session store's disk quota is used up",
    errno.EROFS: "the session store is read-only",
    errno.EACCES: "the session store refused access",
    errno.EPERM: "the session store refused access",
}


class FileSystemStore(Store, KeptUserIndex, Serves08):
    """Sessions in files (module docstring); store-wide counters too (``Counters``), and
    the per-user index (``UserIndex``, fileusers.py)."""

    name = "filesystem"
    settings = (
        Setting(
            "SESSION_FILE_DIR",
            lambda instance_path: os.path.join(instance_path, "flask_session"),
            directory,
            "directory of the filesystem store (default <instance folder>/flask_session),"
            " created with mode 0700",
        ),
    )

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> FileSystemStore:
        file_dir = settings.store["SESSION_FILE_DIR"]
        legacy = LegacyCacheLibFiles(file_dir, settings.key_prefix)
        return cls(
            directory=file_dir,
            legacy=legacy,
            serves_08=settings.fs08_servers,
            **cls.common(settings),
        )

    def __init__(
        self,
        *,
        directory: str,
        legacy: LegacyCacheLibFiles | None = None,
        serves_08: bool | str = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.directory = os.path.abspath(directory)
        #: Flask-Session 0.8's files in this directory, carried over on first use
        self.legacy = legacy
        #: SESSION_08_SERVERS: keep every session as 0.8's file too (filesystem08.py);
        #: resolved at the end, once the directory can be searched, when it is "auto"
        self.serves_08 = False
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as error:
            raise SessionConfigError(
                f"SESSION_FILE_DIR {self.directory!r} cannot be created: {error.strerror}"
            ) from error
        self._outage = OutageLog(logger, f"session directory {self.directory}")
        self._error_guard = ErrorGuard(self._translate_error, self._outage.succeeded)
        self._counters = FileCounters(self.directory, self.key_prefix, self.lock_timeout)
        self._users = FileUserIndex(
            self.directory,
            self.key_prefix,
            self.lock_timeout,
            delete_session_file=self._delete_revoked,
            replace_file=lambda path, data: self._replace(path, data, ttl=None),
        )
        if legacy is not None:
            self.serves_08 = serves_08_at_start(self, serves_08, self.name)

    # -- the store verbs ---------------------------------------------------------------

    def load(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        path = self._path(sid)
        with self._errors():
            if self.serves_08:
                self._sync_08(sid)
            if lock:
                held = lock_existing(path, self.lock_timeout, "the session")
                if held is None:
                    return self._load_adopted(sid, lock=lock, refresh_ttl=refresh_ttl)
                fd = held.fd
            else:
                held = None
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return self._load_adopted(sid, lock=lock, refresh_ttl=refresh_ttl)
            keep = False
            try:
                found = self._read_document(fd, path)
                if found is None:
                    return None
                values, copy = found
                if copy is None or self.serves_08:
                    if refresh_ttl is not None:
                        self._refresh(fd, path, refresh_ttl)
                    keep = held is not None
                    return Loaded(values, lock=held)
            finally:
                if held is None:
                    os.close(fd)
                elif not keep:
                    held.release()
            # The transition is over and the session still names a 0.8 copy: one last
            # read of it, then the session is this package's only; then load again.
            self._finish_one_08(path, self._paths_08(sid))
        return self.load(sid, lock=lock, refresh_ttl=refresh_ttl)

    def save(
        self,
        sid: str,
        changed: dict[str, bytes],
        deleted: Iterable[str],
        *,
        ttl: float,
        create: bool,
        lock: FileLock | None = None,
    ) -> bool:
        path = self._path(sid)
        if self.serves_08 and lock is None:  # (a held lock was taken after a sync)
            with self._errors():
                self._sync_08(sid)
        with self._errors(), self._locked(path, lock) as fd:
            values = self._read_live(fd, path) if fd is not None else None
            if values is None:
                if not create:
                    return False  # gone (cleared, expired): never bring it back
                values = {}
            values.update(changed)
            for key in deleted:
                values.pop(key, None)
            if not values:
                if fd is not None:
                    os.unlink(path)
                    unlink_08(self._paths_08(sid))  # cleared for 0.8's servers too
                return False
            self._write_session(sid, path, values, ttl)
            return True

    def delete(self, sid: str, *, lock: FileLock | None = None) -> None:
        with self._errors():
            self._delete_file(self._path(sid), lock)
            # 0.8's copy or file too: a deleted session must not come back from it
            unlink_08(self._paths_08(sid))

    def _delete_revoked(self, path: str) -> None:
        """Delete a revoked session's file (the per-user index names it by path), and
        0.8's copy of it, so a revoked session cannot come back from 0.8's layout."""
        self._delete_file(path)
        if self.legacy is not None and path.endswith(SUFFIX):
            # 0.8's sha256-named file is ours without the suffix (filesystem08.py); an
            # md5-named one (cachelib before 0.13) cannot be told from the path
            unlink_08([path[: -len(SUFFIX)]])

    def _delete_file(self, path: str, lock: FileLock | None = None) -> None:
        """Delete a session's file under its lock (``lock``, or one taken here)."""
        with self._locked(path, lock) as fd:
            if fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def incr(
        self, sid: str, key: str, amount: int, *, ttl: float, create: bool
    ) -> IncrResult | None:
        path = self._path(sid)
        if self.serves_08:
            with self._errors():
                self._sync_08(sid)
        with self._errors(), self._locked(path, None) as fd:
            values = self._read_live(fd, path) if fd is not None else None
            if values is None and fd is None and not create and self._adopt(sid):
                return self.incr(sid, key, amount, ttl=ttl, create=create)
            if values is None:
                if not create:
                    return None
                values = {}
            new_value = decode_int(self.codec, values.get(key), key) + amount
            values[key] = self.codec.encode(new_value)
            self._write_session(sid, path, values, ttl)
            return IncrResult(new_value, values.get(PERMANENT_KEY))

    def release(self, sid: str, lock: FileLock) -> None:
        lock.release()

    def cleanup(self, *, stale_temp_after: float) -> CleanupReport:
        report = CleanupReport()
        now_ns = time.time_ns()
        stale_before = time.time() - stale_temp_after
        with self._errors(), os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(SUFFIX) and len(name) == _SESSION_NAME_LENGTH:
                    try:
                        expired = entry.stat(follow_symlinks=False).st_mtime_ns <= now_ns
                    except FileNotFoundError:
                        continue
                    if expired and self._remove_if_expired(entry.path):
                        report.expired_removed += 1
                        report.removed_paths.append(entry.path)
                    else:
                        report.live_kept += 1
                elif name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                    # A writer's temp file lives for microseconds; an old one is what a
                    # killed writer left behind. ctime, because writers set the mtime.
                    try:
                        if entry.stat(follow_symlinks=False).st_ctime < stale_before:
                            os.unlink(entry.path)
                            report.temp_removed += 1
                            report.removed_paths.append(entry.path)
                    except FileNotFoundError:
                        continue
        if self.legacy is not None:  # Flask-Session 0.8's expired files, never carried over
            with self._errors():
                report.expired_removed += self.legacy.cleanup()
        report.index_removed = self.prune_user_index()
        return report

    def ping(self) -> None:
        # Really write: permission bits say nothing to root, and only a write finds a
        # full disk.
        with self._errors():
            fd, temp_path = self._create_temp_file()
            try:
                os.write(fd, b"ping")
            finally:
                os.close(fd)
                os.unlink(temp_path)

    def counter_incr(self, name: str) -> int:
        with self._errors():
            return self._counters.incr(name)

    def counter_value(self, name: str) -> int:
        with self._errors():
            return self._counters.value(name)

    def counter_reset(self, name: str) -> None:
        with self._errors():
            self._counters.reset(name)

    def count_sessions(self, deadline: float) -> int | None:
        """One listing of the directory: the session files whose expiry (mtime) is ahead."""
        found = 0
        now_ns = time.time_ns()
        with self._errors(), os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                if not (name.endswith(SUFFIX) and len(name) == _SESSION_NAME_LENGTH):
                    continue
                if time.monotonic() > deadline:
                    return None
                try:
                    if entry.stat(follow_symlinks=False).st_mtime_ns > now_ns:
                        found += 1
                except FileNotFoundError:
                    continue
        return found

    def counter_path(self, name: str) -> str:
        """Where counter ``name`` is kept (for operators and tests)."""
        return self._counters.path(name)

    # -- helpers -----------------------------------------------------------------------

    def _adopt(self, sid: str) -> bool:
        """Carry Flask-Session 0.8's file for ``sid`` over (see stores/legacy.py); while
        0.8 servers may serve (SESSION_08_SERVERS) ``_sync_08`` reads it instead, in place."""
        if self.legacy is None or self.serves_08:
            return False
        return adopt(
            self.legacy,
            sid,
            self.codec.encode,
            lambda values, ttl: self.save(sid, values, [], ttl=ttl, create=True),
            lambda: os.path.exists(self._path(sid)),
            self.lock_timeout,
        )

    def _load_adopted(self, sid: str, *, lock: bool, refresh_ttl: float | None) -> Loaded | None:
        """``load`` for an id with no file of ours: 0.8's session if it has one."""
        if not self._adopt(sid):
            return None
        return self.load(sid, lock=lock, refresh_ttl=refresh_ttl)

    def _path(self, sid: str) -> str:
        return os.path.join(self.directory, at_rest_name(self.key_prefix, sid) + SUFFIX)

    @contextlib.contextmanager
    def _locked(self, path: str, held: FileLock | None) -> Iterator[int | None]:
        """The locked file's descriptor for one write: under the caller's lock (``held``)
        or a short one of ours; None if there is no file.

        Either way the lock is released on the way out: a held lock ends with the
        request's save, and a write replaces the file, which ends any lock on the old one.
        """
        if held is None:
            held = lock_existing(path, self.lock_timeout, "the session")
        try:
            yield None if held is None else held.fd
        finally:
            if held is not None:
                held.release()

    def _read_live(self, fd: int, path: str) -> dict[str, bytes] | None:
        """The session in ``fd``, or None if it has expired or cannot be decoded."""
        found = self._read_document(fd, path)
        return None if found is None else found[0]

    def _read_document(self, fd: int, path: str) -> tuple[dict[str, bytes], str | None] | None:
        """The session in ``fd`` and the digest of the 0.8 copy it names (None: none), or
        None if it has expired or cannot be decoded."""
        info = os.fstat(fd)
        if info.st_mtime_ns <= time.time_ns():
            return None
        # Files are replaced, never changed in place, so the size fstat saw is the size.
        data = os.pread(fd, info.st_size, 0)
        written_by = codec_of(data, self.codec)
        try:
            values = recode(written_by.decode_document(data), written_by, self.codec)
            return values, copy_digest(values, self.codec)
        except (DecodeError, TypeError) as error:
            logger.warning(
                "ignoring unreadable session file %s (not %s%s): %s; the client gets a new session",
                path,
                written_by.name,
                "" if written_by is self.codec else f" that converts to {self.codec.name}",
                error,
            )
            return None

    def _write(self, path: str, values: dict[str, bytes], ttl: float) -> None:
        """Replace ``path`` atomically with ``values``, expiring ``ttl`` seconds from now."""
        self._replace(path, self.codec.encode_document(values), ttl=ttl)

    def _replace(self, path: str, data: bytes, *, ttl: float | None) -> None:
        """Replace ``path`` atomically with ``data``; with ``ttl``, its expiry (mtime)."""
        fd, temp_path = self._create_temp_file()
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if ttl is not None:  # before the rename: a reader never sees a wrong expiry
                    _set_expiry(fd, ttl)
            finally:
                os.close(fd)
            os.replace(temp_path, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_path)
            raise

    # -- a rolling upgrade from Flask-Session 0.8 (filesystem08.py) ------------------------

    def _paths_08(self, sid: str) -> list[str]:
        """Where 0.8 keeps ``sid``'s file (one path per hash cachelib used)."""
        return self.legacy.paths(sid) if self.legacy is not None else []

    def _write_session(self, sid: str, path: str, values: dict[str, bytes], ttl: float) -> None:
        """``_write``, and while 0.8 servers may serve, 0.8's file first (see
        filesystem08.py for why first)."""
        if self.serves_08:
            paths = self._paths_08(sid)
            target = next((p for p in paths if os.path.exists(p)), paths[0])
            try:
                copy = write_08(target, values, self.codec, ttl)
            except TypeError as error:
                logger.warning(
                    "session %s… not written for Flask-Session 0.8's servers: %s", sid[:6], error
                )
            else:
                values = with_copy(values, self.codec, copy)
        self._write(path, values, ttl)

    def _sync_08(self, sid: str) -> None:
        """Bring this package's file up to 0.8's (inside ``_errors``): a 0.8 file a 0.8
        server wrote since replaces the session's values; one it deleted (a cleared
        session) deletes the session here; a 0.8 session not yet here is read in."""
        path = self._path(sid)
        paths = self._paths_08(sid)
        found = self._peek(path)
        legacy = next((data for p in paths if (data := read_08(p)) is not None), None)
        if found is not None and (found[1] is None or (legacy and digest(legacy) == found[1])):
            return  # in step (the common case, no lock), or never copied for 0.8
        if found is None and legacy is None:
            return
        with self._locked(path, None) as fd:
            found = self._read_document(fd, path) if fd is not None else None
            if found is not None and found[1] is None:
                return
            legacy_path = next((p for p in paths if os.path.exists(p)), paths[0])
            legacy = read_08(legacy_path)
            if legacy is None:
                if found is not None:  # a 0.8 server cleared the session
                    os.unlink(path)
                return
            if found is not None and digest(legacy) == found[1]:
                return
            parsed = parse_08(legacy, self.codec, legacy_path)
            if parsed is not None:
                self._write(path, with_copy(parsed.values, self.codec, digest(legacy)), parsed.ttl)

    def _peek(self, path: str) -> tuple[dict[str, bytes], str | None] | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return self._read_document(fd, path)
        finally:
            os.close(fd)

    def _finish_one_08(self, path: str, paths_08: list[str]) -> bool:
        """The transition is over: read 0.8's copy of the session at ``path`` if a 0.8
        server wrote it since, keep the session here only, delete the 0.8 file. False if
        there is no session here."""
        with self._locked(path, None) as fd:
            found = self._read_document(fd, path) if fd is not None else None
            if fd is None or found is None:
                return False
            values, copy = found
            ttl = (os.fstat(fd).st_mtime_ns - time.time_ns()) / 1e9
            for legacy_path in paths_08:
                legacy = read_08(legacy_path)
                if legacy is not None and copy is not None and digest(legacy) != copy:
                    parsed = parse_08(legacy, self.codec, legacy_path)
                    if parsed is not None:
                        values, ttl = parsed.values, parsed.ttl
                    break
            if ttl > 0:
                self._write(path, values, ttl)
            unlink_08(paths_08)
            return True

    def _files_08(self) -> Iterator[tuple[str, str | None]]:
        """Each 0.8 session file, and this package's file for the same session (None for
        md5-named files, whose session id cannot be told from the name)."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if is_08_name(entry.name):
                    ours = entry.path + SUFFIX if len(entry.name) == 64 else None
                    yield entry.path, ours

    def count_08(self) -> Count08:
        with self._errors():
            return Count08.of(
                ours is not None and os.path.exists(ours) for _path, ours in self._files_08()
            )

    def finish_08(self) -> Count08:
        refuse_finish_while_serving_08(self.serves_08)
        moved = Count08()
        with self._errors():
            for path_08, ours in list(self._files_08()):
                if ours is None:
                    continue  # md5-named: carried over on first use, by its id
                if os.path.exists(ours) and self._finish_one_08(ours, [path_08]):
                    moved.mirrored += 1
                    continue
                legacy = read_08(path_08)
                parsed = parse_08(legacy, self.codec, path_08) if legacy is not None else None
                if parsed is not None:
                    self._write(ours, parsed.values, parsed.ttl)
                    moved.not_carried_over += 1
                unlink_08([path_08])
            unlink_08([self._marker_path_08()])
        return moved

    def holds_08(self) -> str | None:
        """The transition's marker file, or else the first live 0.8 session file in the
        directory (a bounded listing); finding one writes the marker."""
        marker = self._marker_path_08()
        with self._errors():
            if os.path.exists(marker):
                return MARKER_FOUND
            found = self._first_file_08(time.monotonic() + PROBE_SECONDS)
            if found is None:
                return None
            self._replace(marker, MARKER_08_CONTENT, ttl=None)
        return f"Flask-Session 0.8's session file {found} (the transition's marker is now set)"

    def _first_file_08(self, deadline: float) -> str | None:
        """The name of a live 0.8 session file, or None (none, or ``deadline`` passed)."""
        now = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if time.monotonic() > deadline:
                    return None
                if not is_08_name(entry.name):
                    continue
                data = read_08(entry.path)
                if data is not None and len(data) >= _HEADER_08.size:
                    (expires,) = _HEADER_08.unpack_from(data)
                    if not expires or expires > now:
                        return entry.name
        return None

    def _marker_path_08(self) -> str:
        return os.path.join(self.directory, MARKER_08_FILE)

    def _create_temp_file(self) -> tuple[int, str]:
        """A new, empty, private file next to the sessions (what tempfile.mkstemp does,
        without its per-call overhead on this hot path)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            temp_path = os.path.join(
                self.directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
            )
            try:
                return os.open(temp_path, flags, 0o600), temp_path
            except FileExistsError:  # 64 random bits: practically never
                continue
            except FileNotFoundError:  # the directory was removed under us: make it again
                os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def _refresh(self, fd: int, path: str, ttl: float) -> None:
        """Push the expiry out, if the filesystem lets us: a read must not fail for it.

        On a read-only or otherwise refusing filesystem the session is still served from
        what was read; its expiry simply stays where it was until writes work again.
        """
        try:
            _set_expiry(fd, ttl)
        except OSError as error:
            logger.debug("could not push out the expiry of %s: %s", path, error)

    def _remove_if_expired(self, path: str) -> bool:
        """Delete an expired session file unless a request holds it or renewed it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a request is using it right now: not expired in any way that matters
            mine = os.fstat(fd)
            if mine.st_mtime_ns > time.time_ns() or not same_file(mine, path):
                return False  # renewed, or replaced by a writer, while we looked
            os.unlink(path)
            return True
        finally:
            os.close(fd)

    def _errors(self) -> ErrorGuard:
        """Turn OS errors into StoreUnavailable, logged once per outage."""
        return self._error_guard

    def _translate_error(self, error: BaseException) -> BaseException | None:
        if not isinstance(error, OSError):
            return None
        self._outage.failed(error)
        reason = getattr(error, "reason", None) or OS_ERROR_REASONS.get(
            error.errno or 0, "the session store cannot be used"
        )
        return StoreUnavailable(
            f"the session directory {self.directory} cannot be used:"
            f" {error.strerror or error} ({reason})",
            reason=reason,
        )


def _set_expiry(fd: int, ttl: float) -> None:
    expires_ns = time.time_ns() + int(ttl * 1_000_000_000)
    os.utime(fd, ns=(expires_ns, expires_ns))
