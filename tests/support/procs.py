"""Process bookkeeping shared by the server helpers.

Every process a helper starts is tracked until it has been reaped, and anything still
running when the interpreter exits is killed, so an aborted test run leaves no server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess

_live: set[subprocess.Popen[bytes]] = set()


def track(proc: subprocess.Popen[bytes]) -> None:
    _live.add(proc)


def untrack(proc: subprocess.Popen[bytes]) -> None:
    _live.discard(proc)


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group the helper created (start_new_session=True)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10
) -> int:
    """Send `sig`, wait up to `timeout` s, then SIGKILL; also kill leftovers in its group.

    Returns the exit code. Reaping the process here avoids ResourceWarnings from Popen.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    # Children that outlived their parent (e.g. workers of a killed master).
    _kill_group(proc, signal.SIGKILL)
    return proc.returncode


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        _kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    _live.clear()
