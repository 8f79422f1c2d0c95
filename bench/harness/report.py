"""The Markdown report of a run: per server, throughput with ratios, then latency and
CPU; the correctness footnotes; A's live-sessions and cleanup results; the targets."""

from __future__ import annotations

import statistics

from .apps import DESCRIPTIONS, NAMES
from .measure import BUSY
from .scenarios import SCENARIOS
from .verdicts import Verdict

STORE_ORDER = ("filesystem", "redis", "sqlite", "postgresql", "memcached")


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}x"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _scenario_order(key: str) -> int:
    order = {s.key: i for i, s in enumerate(SCENARIOS)}
    if key in order:
        return order[key]
    return 10 + int(key.split("-")[1]) if key.startswith("live-") else 99


def _groups(rows: list[dict], server: str) -> list[tuple[str, str, str, dict[str, dict]]]:
    """(store, scenario, label, {target: row}) for one server, in report order."""
    out: dict[tuple[str, str, str], dict[str, dict]] = {}
    for r in rows:
        if r["server"] == server and not r["scenario"].startswith("live-"):
            out.setdefault((r["store"], r["scenario"], r["label"]), {})[r["target"]] = r
    keys = sorted(out, key=lambda k: (STORE_ORDER.index(k[0]), _scenario_order(k[1])))
    return [(*k, out[k]) for k in keys]


def _mark(scenario: str, target: str) -> str:
    if scenario == "shared" and target in ("B", "C"):
        return " ¹"
    if scenario == "contention" and target in ("A", "B", "D"):
        return " ²"
    return ""


def server_tables(rows: list[dict], server: str, targets: list[str]) -> list[str]:
    L = [
        f"| store: scenario | {' | '.join(targets)} | A/B | A/C | A/D |",
        "|---|" + "---:|" * (len(targets) + 3),
    ]
    groups = _groups(rows, server)
    for store, scen, label, by in groups:
        cells = [_num(by[t]["rps"], ",.0f") + _mark(scen, t) if t in by else "—" for t in targets]
        a = by.get("A", {})
        L.append(
            f"| {store}: {label} | {' | '.join(cells)} |"
            f" {_ratio(a.get('vs_B'))} | {_ratio(a.get('vs_C'))} | {_ratio(a.get('vs_D'))} |"
        )
    L += ["", f"| store: scenario | p99 ms {' / '.join(targets)} | CPU µs per request"
          f" {' / '.join(targets)} | errors / non-2xx |", "|---|---:|---:|---|"]  # fmt: skip
    for store, _scen, label, by in groups:
        p99 = " / ".join(_num(by[t]["p99_ms"], ".1f") if t in by else "—" for t in targets)
        cpu = " / ".join(_num(by[t]["cpu_us"], ".0f") if t in by else "—" for t in targets)
        errs = ", ".join(
            f"{t} {by[t]['socket_errors']}/{by[t]['non2xx']}"
            for t in targets
            if t in by and (by[t]["socket_errors"] or by[t]["non2xx"])
        )
        L.append(f"| {store}: {label} | {p99} | {cpu} | {errs or 'none'} |")
    return L


def contention_notes(runs: list[dict], connections: int) -> list[str]:
    notes = []
    keys = sorted(
        {(r["server"], r["store"], r["target"]) for r in runs if r["scenario"] == "contention"},
        key=lambda k: (k[0], STORE_ORDER.index(k[1]), k[2]),
    )
    for server, store, target in keys:
        rs = [
            r for r in runs
            if (r["server"], r["store"], r["target"], r["scenario"])
            == (server, store, target, "contention")
        ]  # fmt: skip
        where = f"{target} ({server}, {store})"
        if target == "C":
            continue  # no session, nothing to check
        incs = [r.get("increments") for r in rs]
        if any(i is None for i in incs):
            notes.append(f"{where}: could not read the counter back.")
            continue
        ok, inc = sum(r["ok"] for r in rs), sum(incs)
        slack = sum(connections + r["socket_errors"] for r in rs)
        if inc < ok:
            verdict = f"**{ok - inc:,} increments lost ({(ok - inc) / ok:.0%})**"
        elif inc - ok <= slack:
            verdict = "exact (none lost)"
        else:
            verdict = (
                f"**counter rose {inc - ok:,} more than the answers wrk saw** (double counting?)"
            )
        per_round = ", ".join(f"{r['increments']:,}/{r['ok']:,}" for r in rs)
        notes.append(
            f"{where}: counter rose by {inc:,} for {ok:,} 2xx answers ({per_round} per round):"
            f" {verdict}."
        )
    return notes


def shared_note(checks: list[dict]) -> str:
    parts = [
        f"{c['target']} ({c['server']}, {c['store']}) {c['unique']}/{c['ok']}"
        for c in checks
        if c["kind"] == "shared"
    ]
    return (
        "¹ B's POST /shared/inc is the seed's module-global counter and C's is the same kind of"
        " global: every worker process has its own copy and its threads race on it, so the"
        " numbers are **not unique across clients**; they measure speed only. Distinct numbers"
        " among the answers when 32 keep-alive clients send 16 POST /shared/inc each to a"
        " freshly started, warmed-up server: " + (", ".join(parts) or "not checked") + "."
    )


def a_only_section(a_only: dict) -> list[str]:
    L: list[str] = []
    if a_only.get("populate"):
        L += ["## A only: filesystem store with many live sessions", ""]
        for n, info in a_only["populate"].items():
            L.append(
                f"- {int(n):,} sessions: {info['by_cookie_collection']} via cookie collection +"
                f" {info['cookieless_posts']:,} cookieless POST /inc; {info['files']:,} session"
                " files in the store directory afterwards."
            )
        L.append("")
    c = a_only.get("cleanup")
    if c:
        L += [f"## A only: `flask --app app session cleanup` ({c['server']})", ""]
        L.append(
            f"{c['files_before']:,} session files, {c['expired']:,} of them expired by setting"
            f" their mtime an hour into the past; `{c['command']}` exited {c['exit_code']} after"
            f" **{c['seconds']:.2f} s** (wall time, Python start-up included) and left"
            f" {c['files_after']:,} files (expected {c['files_before'] - c['expired']:,} live +"
            f" {c['live_cookies_checked']} sessions created for the load afterwards);"
            f" {c['live_cookies_alive']}/{c['live_cookies_checked']} live sessions under load"
            " still held their counter."
        )
        L += ["", "| POST /inc over 200 live cookies | req/s | p50 ms | p99 ms | max ms |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, what in (("baseline", "before cleanup"), ("during", "while cleanup runs")):
            d = c[name]
            L.append(
                f"| {what} | {d['rps']:,.0f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f}"
                f" | {d['max_ms']:.2f} |"
            )
        L.append("")
        if c["stdout"] or c["stderr"]:
            out = (c["stdout"] + ("\n" + c["stderr"] if c["stderr"] else "")).strip()
            L += ["Cleanup output:", "", "```", out[-1500:], "```", ""]
    return L


def live_table(rows: list[dict]) -> list[str]:
    live = sorted(
        (r for r in rows if r["scenario"].startswith("live-")),
        key=lambda r: int(r["scenario"].split("-")[1]),
    )
    if not live:
        return []
    L = ["| A, filesystem, POST /inc | server | median req/s | p50 ms | p99 ms |",
         "|---|---|---:|---:|---:|"]  # fmt: skip
    for r in live:
        L.append(
            f"| {r['label'].split(', ')[1]} | {r['server']} | {r['rps']:,.0f} |"
            f" {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    return [*L, ""]


def targets_table(verdicts: list[Verdict]) -> list[str]:
    L = ["| target | issue | measured | threshold | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        L.append(f"| {v.what} | #{v.issue} | {v.measured} | {v.threshold} | {v.verdict} |")
    return L


def markdown(ctx, rows: list[dict], meta: dict, verdicts: list[Verdict]) -> str:
    a = ctx.args
    targets = [t for t in NAMES if any(r["target"] == t for r in rows)] or list(NAMES)
    L = [
        "# Session benchmark: A (this service), B (Flask-Session 0.8), C (plain Flask),"
        " D (plain Flask + one store round trip)",
        "",
        f"Command: `{meta['command']}` — {meta['date']}, commit {meta['git_commit']}",
        "",
        f"Machine: {meta['cpus']} cores, {meta['platform']}, Python {meta['python']}. Load: wrk"
        f" {a.wrk_threads} threads, {a.connections} connections, {a.duration} s per run,"
        f" {a.rounds} interleaved round(s) ({', '.join(targets)}, {', '.join(targets)}, …),"
        f" medians; requests round-robin over {a.cookies} session cookies. Session files in"
        f" {meta['tmp_fs']} under {meta['tmp_root']}.",
        "",
    ]
    L += [f"- **{t}**: {DESCRIPTIONS[t]}" for t in targets]
    L.append("")
    for server in meta["servers"]:
        if not any(r["server"] == server["name"] for r in rows):
            continue
        L += [f"## {server['describe']}, the same for every target", ""]
        L += server_tables(rows, server["name"], targets)
        L.append("")
    L.append(
        "Ratios: A's median req/s over B's, C's or D's on the same server, store and scenario."
        " CPU per request: user + system time of the target's server process and its workers"
        " during the timed run (psutil), over the requests wrk counted. errors: wrk socket"
        " errors (connect, read, write, timeout) / responses with status ≥ 400, over rounds."
    )
    shares = [r["other_cpu"] for r in ctx.runs if "other_cpu" in r]
    if shares:
        busy = max(shares)
        L.append(
            f"Noise: processes outside the benchmark took a median {statistics.median(shares):.0%}"
            f" (at most {busy:.0%}) of the machine's CPU during the timed runs"
            + (
                " — **the machine was busy: treat these figures as rough and run again on an"
                " idle machine**."
                if busy > BUSY
                else "."
            )
        )
    L.append("")
    if any(r["scenario"] == "shared" for r in rows):
        L += [shared_note(ctx.checks), ""]
    notes = contention_notes(ctx.runs, a.connections)
    if notes:
        L.append(
            f"² Same-session contention: {a.connections} connections all on ONE cookie, POST /inc."
            " The counter's rise (GET /counter before and after) against the 2xx answers wrk"
            f" counted (up to {a.connections} requests per round that wrk cut off at the end may"
            " still land, so a small surplus is not double counting):"
        )
        L += ["", *(f"- {n}" for n in notes), ""]
    L += live_table(rows)
    L += a_only_section(ctx.a_only)
    L += ["## Targets (bench/targets.toml)", "", *targets_table(verdicts), ""]
    if ctx.skipped:
        L += ["Skipped: " + " ".join(ctx.skipped), ""]
    L.append(
        "Raw runs: `bench/results/latest.json`; chart: `bench/results/latest.png`;"
        " server logs: `bench/results/logs/`."
    )
    return "\n".join(L) + "\n"
