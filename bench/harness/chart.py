"""The PNG chart of a benchmark run (matplotlib, from bench/.venv-flask-session only)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"A": "#2a7ab9", "B": "#e08a2c", "C": "#9a9a9a", "D": "#5aa05a"}
NAMES = {
    "A": "A: this service",
    "B": "B: Flask-Session 0.8",
    "C": "C: plain Flask (ceiling)",
    "D": "D: plain Flask + one store round trip (floor)",
}
ORDER = ["inc", "counter", "shared", "contention"]


def _bars(ax, groups: list[str], series: dict[str, list], title: str) -> None:
    """Grouped bars: one group per scenario, one bar per target, whiskers = min..max of rounds."""
    targets = [t for t in COLORS if t in series]
    width = 0.8 / max(1, len(targets))
    top = max((r["rps_max"] for rows in series.values() for r in rows if r), default=1)
    for i, t in enumerate(targets):
        xs, hs, lo, hi = [], [], [], []
        for g, r in enumerate(series[t]):
            if r is None:
                continue
            xs.append(g - 0.4 + width * (i + 0.5))
            hs.append(r["rps"])
            lo.append(r["rps"] - r["rps_min"])
            hi.append(r["rps_max"] - r["rps"])
        ax.bar(
            xs,
            hs,
            width * 0.92,
            color=COLORS[t],
            label=NAMES[t],
            yerr=[lo, hi],
            capsize=3,
            error_kw={"elinewidth": 0.8, "ecolor": "#333"},
        )
        for x, h, row in zip(xs, hs, [r for r in series[t] if r], strict=True):
            ax.text(
                x,
                h + top * 0.03 + (row["rps_max"] - row["rps"]),
                f"{h:,.0f}\n{row['p99_ms']:.0f} ms",
                ha="center",
                va="bottom",
                fontsize=7,
                linespacing=1.0,
            )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("median requests/s")
    ax.set_ylim(0, top * 1.25)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def write_chart(rows: list[dict], meta: dict, path: Path) -> None:
    """A grid: one row of panels per server, one panel per store (filesystem and redis),
    and A's live sessions at the end of the first row."""
    servers = [sv["name"] for sv in meta["servers"] if any(r["server"] == sv["name"] for r in rows)]
    stores = [
        st
        for st in ("filesystem", "redis")
        if any(r["store"] == st and r["scenario"] in ORDER for r in rows)
    ]
    live = sorted(
        (r for r in rows if r["scenario"].startswith("live-")),
        key=lambda r: int(r["scenario"].split("-")[1]),
    )
    if not servers or not (stores or live):
        return
    widths = [4] * len(stores) + ([1.6] if live else [])
    fig, grid = plt.subplots(
        len(servers),
        len(widths),
        figsize=(sum(widths) * 1.7 + 1, 4.6 * len(servers) + 0.6),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    axes = [ax for row in grid for ax in row]
    for i, server in enumerate(servers):
        for j, store in enumerate(stores):
            ax = grid[i][j]
            by = {
                (r["scenario"], r["target"]): r
                for r in rows
                if r["server"] == server and r["store"] == store
            }
            scen = [s for s in ORDER if any(k[0] == s for k in by)]
            if not scen:
                ax.set_axis_off()
                continue
            labels = {s: next(r["label"] for (sc, _), r in by.items() if sc == s) for s in scen}
            targets = sorted({t for (_, t) in by})
            series = {t: [by.get((s, t)) for s in scen] for t in targets}
            groups = [labels[s].replace(", ", "\n") for s in scen]
            _bars(ax, groups, series, f"{server}, {store}")
        if live:
            ax = grid[i][-1]
            mine = [r for r in live if r["server"] == server]
            if mine:
                groups = [r["label"].split(", ")[1] for r in mine]
                _bars(ax, groups, {"A": mine}, f"A, {server}, filesystem: POST /inc")
                ax.set_ylabel("")
            else:
                ax.set_axis_off()
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        f"Session benchmark, {meta['date']} ({meta['git_commit']}): median req/s over rounds"
        " (whiskers min–max), label: req/s and p99",
        fontsize=9,
        x=0.01,
        ha="left",
    )
    noise = ""
    if meta.get("other_cpu_median") is not None:
        noise = (
            f"  ·  other processes' CPU during runs: median {meta['other_cpu_median']:.0%},"
            f" max {meta['other_cpu_max']:.0%}"
        )
        if meta.get("busy"):
            noise += " (BUSY MACHINE: rough figures)"
    fig.text(
        0.01,
        0.01,
        f"{meta['command']}  ·  "
        + "; ".join(sv["describe"] for sv in meta["servers"])
        + f"  ·  {meta['cpus']} cores{noise}",
        fontsize=7,
        color="#555",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
