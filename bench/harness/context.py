"""One benchmark run: its settings, the processes it started, and what it has recorded."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from .apps import Running
from .common import log
from .load import Wrk
from .measure import NoiseMeter, TreeCpu
from .processes import StoreServer

#: a request count far above what 2 cores serve in the run's time: it only stops a runaway
RUNAWAY_REQUESTS_PER_SECOND = 100_000


@dataclass
class Ctx:
    args: argparse.Namespace
    repo: Path
    tmp: Path
    logs: Path
    runs: list = field(default_factory=list)  # one dict per timed wrk run
    checks: list = field(default_factory=list)  # correctness observations
    a_only: dict = field(default_factory=dict)  # live sessions and cleanup (first server)
    skipped: list = field(default_factory=list)
    apps: list[Running] = field(default_factory=list)  # every app started, for the final stop
    stores: list[StoreServer] = field(default_factory=list)

    def our_pids(self) -> list[int]:
        pids = [a.proc.pid for a in self.apps] + [s.pid for s in self.stores]
        return [p for p in pids if p]

    def meter(self) -> NoiseMeter:
        return NoiseMeter(self.our_pids())

    def timed(self, target: Running, method: str, path: str, cookie_file: Path | None) -> dict:
        """One timed wrk run, with the app's CPU per request (its server process and
        workers, in microseconds) and the share of CPU other processes took meanwhile."""
        meter = self.meter()
        cpu = TreeCpu([target.proc.pid] if target.proc.pid else [])
        res = self.wrk(target, method, path, cookie_file).run()
        res["cpu_us"] = cpu.seconds() / res["requests"] * 1e6 if res["requests"] else None
        res["other_cpu"] = meter.share()
        return res

    def wrk(
        self,
        target: Running,
        method: str,
        path: str,
        cookie_file: Path | None,
        duration: int | None = None,
        connections: int | None = None,
        **kw,
    ) -> Wrk:
        duration = duration or self.args.duration
        kw.setdefault("max_requests", duration * RUNAWAY_REQUESTS_PER_SECOND)
        return Wrk(
            target.base,
            method,
            path,
            cookie_file=cookie_file,
            duration=duration,
            connections=connections or self.args.connections,
            threads=self.args.wrk_threads,
            timeout_s=self.args.wrk_timeout,
            **kw,
        )

    def record(
        self, target: Running, sc_key: str, label: str, rnd: int, res: dict, **extra
    ) -> dict:
        row = {
            "server": target.server.name,
            "store": target.store,
            "scenario": sc_key,
            "label": label,
            "target": target.name,
            "round": rnd,
            **{k: v for k, v in res.items() if k != "raw"},
            "wrk": res["raw"],
            **extra,
        }
        self.runs.append(row)
        cpu = f"{res['cpu_us']:5.0f} us/req" if res.get("cpu_us") is not None else ""
        log(
            f"    {target.server.name:8s} {target.store:10s} {label:22s} {target.name}"
            f"  round {rnd}: {res['rps']:7.0f} req/s  p50 {res['p50_ms']:6.2f} ms"
            f"  p99 {res['p99_ms']:7.2f} ms  {cpu}  err {res['socket_errors']}/{res['non2xx']}"
            f"  other CPU {res.get('other_cpu', 0):.0%}"
        )
        return row
