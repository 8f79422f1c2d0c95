"""Process facts through psutil, and the statistics over rounds.

- ``TreeCpu``: CPU seconds a process and its descendants (a server's workers) spend
  between two points: the app's in-process CPU per request.
- ``NoiseMeter``: how much CPU processes that are not part of the benchmark took during a
  run, as a share of all cores: a busy neighbour makes figures noisy, and this says so.
- ``summarize``: the medians over interleaved rounds, one row per server, store, scenario
  and target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import psutil

BUSY = 0.10  # share of CPU taken by other processes above which a run is flagged as noisy


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process in the trees rooted at ``pids``."""
    out: dict[int, float] = {}
    for pid in pids:
        for proc in _tree(pid):
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            out[proc.pid] = t.user + t.system
    return out


class TreeCpu:
    """CPU the process trees rooted at ``pids`` spend from now to ``seconds()``. A process
    that ended meanwhile (a respawned worker) is not counted; one that started is, whole."""

    def __init__(self, pids: Iterable[int]):
        self.pids = [p for p in pids if p]
        self.before = _cpu_by_pid(self.pids)

    def seconds(self) -> float:
        after = _cpu_by_pid(self.pids)
        return sum(t - self.before.get(pid, 0.0) for pid, t in after.items())


def _machine_busy() -> float:
    t = psutil.cpu_times()
    # irq/softirq time is left out: loopback traffic between wrk and the servers is mostly
    # softirq work that no process is charged for, and it is ours, not a neighbour's.
    return t.user + t.nice + t.system + getattr(t, "steal", 0.0)


def _own_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system  # children: reaped wrk runs


class NoiseMeter:
    """The share of all cores that processes outside the benchmark (not our servers, the
    stores, wrk or this runner) took from now to ``share()``."""

    def __init__(self, pids: Iterable[int]):
        self.t0 = time.monotonic()
        self.ours = TreeCpu(pids)
        self.busy0, self.own0 = _machine_busy(), _own_seconds()

    def share(self) -> float:
        elapsed = time.monotonic() - self.t0
        if elapsed <= 0:
            return 0.0
        busy = _machine_busy() - self.busy0
        ours = self.ours.seconds() + _own_seconds() - self.own0
        return max(0.0, busy - ours) / (elapsed * (psutil.cpu_count() or 1))


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarize(runs: list[dict]) -> list[dict]:
    """Medians over rounds per (server, store, scenario, target), with ratios of req/s to
    B, C and D in the same server, store and scenario (``vs_B`` and so on)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        key = (r["server"], r["store"], r["scenario"], r["label"], r["target"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (server, store, scen, label, target), rs in groups.items():
        cpu = [r["cpu_us"] for r in rs if r.get("cpu_us") is not None]
        rows.append(
            {
                "server": server,
                "store": store,
                "scenario": scen,
                "label": label,
                "target": target,
                "rounds": len(rs),
                "rps": median([r["rps"] for r in rs]),
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p99_ms": median([r["p99_ms"] for r in rs]),
                "cpu_us": median(cpu),
                "socket_errors": sum(r["socket_errors"] for r in rs),
                "non2xx": sum(r["non2xx"] for r in rs),
                "other_cpu_max": max(r.get("other_cpu", 0) for r in rs),
            }
        )
    by = {(r["server"], r["store"], r["scenario"], r["target"]): r for r in rows}
    for r in rows:
        for ref in ("B", "C", "D"):
            other = by.get((r["server"], r["store"], r["scenario"], ref))
            r[f"vs_{ref}"] = r["rps"] / other["rps"] if other and other["rps"] else None
    return rows
