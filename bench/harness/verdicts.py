"""The targets in bench/targets.toml, checked against a run's figures.

Each entry becomes one row per server and store it applies to: what was measured, the
threshold, and met / MISSED / not measured. The file holds the thresholds and where they
apply; this module only knows how to measure each ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tomllib  # Python 3.11+: bench/run's python3

from .common import TARGETS_FILE
from .scenarios import SCENARIOS

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Verdict:
    what: str
    issue: int
    measured: str
    threshold: str
    verdict: str  # met | MISSED | not measured | a pointer elsewhere


def load(path: Path = TARGETS_FILE) -> list[dict]:
    with open(path, "rb") as f:
        return tomllib.load(f)["target"]


def _judge(value: float | None, spec: dict) -> str:
    if value is None:
        return NOT_MEASURED
    if "min" in spec:
        return "met" if value >= spec["min"] else "MISSED"
    strict = spec["kind"].startswith("cleanup")  # "< 10 s", not "<="
    ok = value < spec["max"] if strict else value <= spec["max"]
    return "met" if ok else "MISSED"


def _threshold(spec: dict) -> str:
    if spec["kind"] == "cleanup_seconds":
        return f"< {spec['max']:g} s"
    if "min" in spec:
        return f">= {spec['min']:.2f}x"
    return ("< " if spec["kind"].startswith("cleanup") else "<= ") + f"{spec['max']:.2f}x"


# --- one function per kind: (spec, rows of one server and store, the run) -> (value, text)

Measure = Callable[[dict, dict, dict], tuple[float | None, str]]


def _ratio(spec: dict, by: dict, run: dict) -> tuple[float | None, str]:
    a, b = by.get((spec["scenario"], spec["target"])), by.get((spec["scenario"], spec["than"]))
    if not a or not b or not b["rps"]:
        return None, "—"
    x = a["rps"] / b["rps"]
    return x, f"{x:.2f}x ({a['rps']:,.0f} vs {b['rps']:,.0f} req/s)"


def _p99(spec: dict, by: dict, run: dict) -> tuple[float | None, str]:
    pairs = [
        (by[(s.key, spec["target"])], by[(s.key, spec["than"])])
        for s in SCENARIOS
        if (s.key, spec["target"]) in by and (s.key, spec["than"]) in by
    ]
    pairs = [(a, b) for a, b in pairs if b["p99_ms"]]
    if not pairs:
        return None, "—"
    a, b = max(pairs, key=lambda p: p[0]["p99_ms"] / p[1]["p99_ms"])
    x = a["p99_ms"] / b["p99_ms"]
    return x, f"{x:.2f}x, worst {a['label']}: {a['p99_ms']:.1f} vs {b['p99_ms']:.1f} ms"


def _live(spec: dict, by: dict, run: dict) -> tuple[float | None, str]:
    live = sorted(
        (r for (sc, t), r in by.items() if sc.startswith("live-") and t == "A"),
        key=lambda r: int(r["scenario"].split("-")[1]),
    )
    if len(live) < 2:
        return None, "—"
    x = live[-1]["rps"] / live[0]["rps"]
    n_small, n_big = (int(r["scenario"].split("-")[1]) for r in (live[0], live[-1]))
    return x, (
        f"{x:.2f}x ({n_big:,}: {live[-1]['rps']:,.0f} vs {n_small:,}: {live[0]['rps']:,.0f} req/s)"
    )


def _cleanup_seconds(spec: dict, by: dict, run: dict) -> tuple[float | None, str]:
    c = run.get("cleanup")
    if not c or c["exit_code"] != 0:
        return None, "—" if not c else f"exit {c['exit_code']}"
    return c["seconds"], f"{c['seconds']:.2f} s for {c['files_before']:,} files"


def _cleanup_max_over_p99(spec: dict, by: dict, run: dict) -> tuple[float | None, str]:
    c = run.get("cleanup")
    if not c or c["max_over_baseline_p99"] is None:
        return None, "—"
    x = c["max_over_baseline_p99"]
    return x, f"{x:.2f}x (max {c['during']['max_ms']:.1f} ms, p99 {c['baseline']['p99_ms']:.1f} ms)"


MEASURES: dict[str, Measure] = {
    "ratio": _ratio,
    "p99": _p99,
    "live": _live,
    "cleanup_seconds": _cleanup_seconds,
    "cleanup_max_over_p99": _cleanup_max_over_p99,
}


def evaluate(specs: list[dict], rows: list[dict], a_only: dict, caveat: str = "") -> list[Verdict]:
    """One Verdict per target and per server and store it applies to that the run
    measured (one "not measured" row when it measured none of them)."""
    measured = sorted({(r["server"], r["store"]) for r in rows})
    out = []
    for spec in specs:
        kind, what, issue = spec["kind"], spec["what"], spec.get("issue", 0)
        if kind == "elsewhere":
            out.append(Verdict(what, issue, "—", "—", f"see `{spec['command']}`"))
            continue
        if kind not in MEASURES:
            raise ValueError(f"bench/targets.toml: unknown kind {kind!r} in {what!r}")
        if kind.startswith("cleanup"):
            value, text = MEASURES[kind](spec, {}, a_only)
            where = [a_only["cleanup"]["server"]] if a_only.get("cleanup") else []
            verdict = _judge(value, spec)
            label = f"{what} ({where[0]})" if where else what
            out.append(Verdict(label, issue, text, _threshold(spec), _with(verdict, caveat)))
            continue
        servers, stores = spec.get("servers", ["*"]), spec.get("stores", ["*"])
        places = [
            (sv, st)
            for sv, st in measured
            if ("*" in servers or sv in servers) and ("*" in stores or st in stores)
        ]
        rows_out = []
        for sv, st in places:
            by = {
                (r["scenario"], r["target"]): r
                for r in rows
                if r["server"] == sv and r["store"] == st
            }
            value, text = MEASURES[kind](spec, by, a_only)
            if value is None:
                continue
            verdict = _with(_judge(value, spec), caveat)
            rows_out.append(Verdict(f"{what} ({sv}, {st})", issue, text, _threshold(spec), verdict))
        out += rows_out or [Verdict(what, issue, "—", _threshold(spec), NOT_MEASURED)]
    return out


def _with(verdict: str, caveat: str) -> str:
    if not caveat or verdict == NOT_MEASURED:
        return verdict
    return f"{verdict} ({caveat}: indicative only)"
