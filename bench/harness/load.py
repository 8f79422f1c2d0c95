"""wrk: one run over bench/wrk/session.lua, bounded in time and in requests.

The Lua script prints its results as one ``BENCH_JSON {...}`` line from its ``done()``
hook; nothing scrapes wrk's text output.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import subprocess
import time
from pathlib import Path

from .common import LUA, BenchError

HARD_TIMEOUT_SLACK = 30  # s past -d after which a wrk that has not ended is killed
MARKER_POLL = 0.05  # s


class Wrk:
    """One wrk run; ``finish()`` returns the summary of its JSON line."""

    def __init__(
        self,
        url: str,
        method: str,
        path: str,
        *,
        cookie_file: Path | None,
        duration: int,
        connections: int,
        threads: int,
        timeout_s: int,
        max_requests: int = 0,
        marker_dir: Path | None = None,
    ):
        self.threads = max(1, min(threads, connections))
        self.duration = duration
        per_thread = math.ceil(max_requests / self.threads) if max_requests else 0
        self.marker_dir = marker_dir
        marker = str(marker_dir / "stopped-") if marker_dir else ""
        self.cmd = [
            "wrk", f"-t{self.threads}", f"-c{connections}", f"-d{duration}s",
            "--timeout", f"{timeout_s}s", "-s", str(LUA), url + path,
            "--", str(cookie_file) if cookie_file else "-", method, path,
            str(per_thread), str(self.threads), marker,
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Wrk:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        return self

    def interrupt(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # wrk stops its threads and still runs done()

    def _all_threads_stopped(self) -> bool:
        """Each thread that reached its request count has left a marker file (wrk itself
        would wait for -d to pass)."""
        if not self.marker_dir:
            return False
        return len(list(self.marker_dir.glob("stopped-*"))) >= self.threads

    def finish(self) -> dict:
        assert self.proc is not None
        deadline = time.monotonic() + self.duration + HARD_TIMEOUT_SLACK
        while self.proc.poll() is None:
            if self._all_threads_stopped():
                self.interrupt()
            if time.monotonic() > deadline:
                self.proc.kill()
                break
            time.sleep(MARKER_POLL)
        out, err = self.proc.communicate(timeout=HARD_TIMEOUT_SLACK)
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                return summarize(json.loads(line[len("BENCH_JSON ") :]))
        raise BenchError(
            f"wrk printed no BENCH_JSON line (exit {self.proc.returncode}):\n"
            f"$ {shlex.join(self.cmd)}\n{out[-2000:]}\n{err[-2000:]}"
        )

    def run(self) -> dict:
        return self.start().finish()


def summarize(raw: dict) -> dict:
    """Requests/s, latency percentiles in ms, and error counts from wrk's raw figures."""
    e = raw["errors"]
    secs = raw["duration_us"] / 1e6 or 1e-9
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 3),
        "rps": raw["requests"] / secs,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "socket_errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
        "non2xx": e["status"],
        "ok": raw["requests"] - e["status"],
        "raw": raw,
    }


def write_cookie_file(path: Path, cookies: list[str]) -> Path:
    path.write_text("".join(c + "\n" for c in cookies))
    return path
