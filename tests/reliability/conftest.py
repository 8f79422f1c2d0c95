"""Fixtures for the reliability and security tests: real stores, real servers, real mounts.

Everything runs against real processes (redis-server, gunicorn) and real filesystems
(tmpfs mounts for disk-full and read-only); nothing is mocked.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: gunicorn spec of the flask_session demo app (configured by FLASK_* variables)
DEMO_APP = "tests.flask_session.demo_app:create_app()"
#: gunicorn spec of the counter service, exactly as operators run it
SERVICE_APP = "app:app"
#: the service plus a test-only hook that delays a response before its session is saved
SLOW_SERVICE_APP = "tests.reliability.slow_service:app"


@pytest.fixture
def in_process_app(app_builder) -> Callable:
    """Build apps for Flask's test client: ``in_process_app(factory, config)``."""
    return app_builder


def needs_service() -> None:
    """Skip unless the counter service (issue 3) is importable."""
    try:
        import sessionapp  # noqa: F401
        from sessionapp import create_app  # noqa: F401
    except ImportError as error:  # pragma: no cover - only while issue 3 is being built
        pytest.skip(f"the counter service is not importable yet: {error}")


# -- mounts ---------------------------------------------------------------------------------------


class Mount:
    """A tmpfs the test mounted itself; ``fill()`` takes all its space, ``read_only()``..."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler.bin"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)])

    def fill(self) -> int:
        """Write a file until the disk is full (ENOSPC); returns the bytes written."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 1):
                while True:
                    try:
                        written += os.write(fd, b"\0" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        """``mode`` is "ro" or "rw". Retries while a writer still has a file open."""
        deadline = time.monotonic() + 10
        while True:
            try:
                _run(["mount", "-o", f"remount,{mode}", str(self.path)])
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def unmount(self) -> None:
        try:
            _run(["umount", str(self.path)])
        except RuntimeError:
            _run(["umount", "-l", str(self.path)])  # busy: detach now, free when unused


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


def mounted_tmpfs(tmp_path: Path, size: str) -> Iterator[Mount]:
    """A tmpfs of ``size`` at tmp_path/"mnt" for a fixture to yield, unmounted at teardown;
    skips unless mounting works (it needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for disk-full/read-only tests needs root")
    mount = Mount(tmp_path / "mnt", size)
    try:
        mount.mount()
    except RuntimeError as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    try:
        yield mount
    finally:
        mount.unmount()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """A 512 KiB tmpfs at tmp_path/"mnt", unmounted at teardown."""
    yield from mounted_tmpfs(tmp_path, "512k")
