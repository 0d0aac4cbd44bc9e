"""Charts for the audit, each a matplotlib ``Figure`` (no pyplot state, no networkx)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from opsbook.archive.classify import Classification

COLOURS = {"keep": "#2e7d32", "archive": "#c62828", "blocked": "#ef6c00", "package": "#757575"}


def _decision(classification: Classification, name: str) -> str:
    v = classification.verdicts.get(name)
    return v.decision if v else "package"


def size_chart(classification: Classification) -> Figure:
    """Horizontal bars per app: source vs dependencies/build output, coloured by decision."""
    apps = sorted(classification.inventory.apps, key=lambda a: a.total_bytes)
    fig = Figure(figsize=(8, 0.35 * len(apps) + 1.5))
    ax = fig.subplots()
    y = range(len(apps))
    src = [a.source_bytes / 1e6 for a in apps]
    deps = [a.deps_bytes / 1e6 for a in apps]
    ax.barh(y, src, color="#1565c0", label="source")
    ax.barh(y, deps, left=src, color="#90caf9", label="dependencies / build output")
    ax.set_yticks(list(y), [a.name for a in apps])
    for tick, a in zip(ax.get_yticklabels(), apps, strict=True):
        tick.set_color(COLOURS[_decision(classification, a.name)])
    ax.set_xlabel("MB on disk")
    ax.set_title("Size per app (label colour: green keep, red archive, orange blocked)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def timeline_chart(classification: Classification) -> Figure:
    """Commits per app over time, with the staleness cut-off as a vertical line."""
    inv = classification.inventory
    apps = sorted(inv.apps, key=lambda a: a.last_commit or datetime.min.replace(tzinfo=UTC))
    fig = Figure(figsize=(9, 0.35 * len(apps) + 1.5))
    ax = fig.subplots()
    for i, a in enumerate(apps):
        times = [datetime.fromtimestamp(t, UTC) for t in sorted(a.commit_times)]
        colour = COLOURS[_decision(classification, a.name)]
        if times:
            ax.plot([times[0], times[-1]], [i, i], color=colour, alpha=0.35, lw=2)
            ax.scatter(times, [i] * len(times), color=colour, s=14, zorder=3)
    newest = inv.activity.newest if inv.activity and inv.activity.newest else inv.now
    cutoff = min(newest, inv.now) - timedelta(days=inv.staleness_days)
    ax.axvline(cutoff, color="black", ls="--", lw=1)
    ax.text(
        cutoff,
        len(apps) - 0.5,
        f" {inv.staleness_days} days before the newest commit",
        fontsize=8,
    )
    ax.set_yticks(range(len(apps)), [a.name for a in apps])
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m"))
    ax.set_title("Last activity: every commit per app")
    ax.legend(
        handles=[
            Line2D([], [], color=COLOURS[k], marker="o", ls="", label=k)
            for k in ("keep", "archive", "blocked")
        ],
        loc="upper left",
        fontsize=8,
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _layers(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering: a node sits one layer right of everything it depends on."""
    deps: dict[str, set[str]] = {n: set() for n in names}
    for src, dst in edges:
        deps[src].add(dst)
    layer: dict[str, int] = {}

    def depth(n: str, seen: frozenset[str]) -> int:
        if n in layer:
            return layer[n]
        if n in seen:  # cycle: break it here
            return 0
        d = 1 + max((depth(m, seen | {n}) for m in deps[n]), default=-1)
        layer[n] = d
        return d

    for n in names:
        depth(n, frozenset())
    return layer


def _centre(
    n: str, members: list[str], neighbours: dict[str, list[str]], rank: dict[str, float]
) -> float:
    near = [rank[x] for x in neighbours.get(n, []) if x in rank and x not in members]
    return sum(near) / len(near) if near else rank[n]


def _untangle(columns: dict[int, list[str]], edges: list[tuple[str, str]]) -> None:
    """Barycentre sweeps: order each column by where its neighbours sit (fewer crossings)."""
    neighbours: dict[str, list[str]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    order = sorted(columns)
    rank = {n: i - (len(m) - 1) / 2 for m in columns.values() for i, n in enumerate(m)}
    for sweep in range(4):
        for col in order if sweep % 2 == 0 else reversed(order):
            members = columns[col]
            keys = {n: _centre(n, members, neighbours, rank) for n in members}
            members.sort(key=keys.__getitem__)
            rank.update({n: i - (len(members) - 1) / 2 for i, n in enumerate(members)})


def dependency_chart(classification: Classification) -> Figure:
    """Who depends on whom: shared packages left, dependants to the right, candidates red."""
    nodes = classification.inventory.nodes()
    names = [n.name for n in nodes]
    edges = [(n.name, d) for n in nodes for d in n.depends_on if d in names]
    layer = _layers(names, edges)
    columns: dict[int, list[str]] = {}
    for n in sorted(names, key=lambda x: (_decision(classification, x), x)):
        columns.setdefault(layer[n], []).append(n)
    _untangle(columns, edges)
    pos: dict[str, tuple[float, float]] = {}
    tallest = max(len(c) for c in columns.values()) if columns else 1
    for col, members in columns.items():
        for i, n in enumerate(members):
            pos[n] = (col * 3.0, (len(members) - 1) / 2 - i)
    fig = Figure(figsize=(3 + 2.6 * len(columns), 0.55 * tallest + 2))
    ax = fig.subplots()
    for src, dst in edges:
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        ax.annotate(
            "",
            xy=(x2 + 0.45, y2),
            xytext=(x1 - 0.45, y1),
            arrowprops={
                "arrowstyle": "->",
                "color": "#9e9e9e",
                "lw": 1,
                "connectionstyle": "arc3,rad=0.08",
            },
        )
    for n, (x, y) in pos.items():
        kind = _decision(classification, n)
        ax.text(
            x,
            y,
            n,
            ha="center",
            va="center",
            fontsize=8,
            color="white",
            bbox={"boxstyle": "round,pad=0.3", "fc": COLOURS[kind], "ec": "none"},
        )
    xs = [p[0] for p in pos.values()] or [0]
    ys = [p[1] for p in pos.values()] or [0]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.axis("off")
    ax.set_title("Dependencies (arrow: depends on)")
    ax.legend(
        handles=[Patch(color=COLOURS[k], label=k) for k in COLOURS], loc="lower right", fontsize=8
    )
    fig.tight_layout()
    return fig


def before_after_chart(
    apps_before: int, apps_after: int, bytes_before: int, bytes_after: int, title: str = ""
) -> Figure:
    """Two bars each: app count and apps-tree disk, before vs after archiving."""
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(["before", "after"], [apps_before, apps_after], color=["#9e9e9e", "#2e7d32"])
    ax1.set_title("apps")
    for i, v in enumerate((apps_before, apps_after)):
        ax1.text(i, v, str(v), ha="center", va="bottom")
    mb = [bytes_before / 1e6, bytes_after / 1e6]
    ax2.bar(["before", "after"], mb, color=["#9e9e9e", "#2e7d32"])
    ax2.set_title("apps tree on disk (MB)")
    for i, v in enumerate(mb):
        ax2.text(i, v, f"{v:.1f}" if math.isfinite(v) else "", ha="center", va="bottom")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


#: Evidence-matrix cell colours: red argues for archiving, green against, orange both.
STANCE_COLOURS = {
    "for": "#ef9a9a",
    "against": "#a5d6a7",
    "mixed": "#ffcc80",
    "info": "#eeeeee",
    "": "#ffffff",
}


def _cell_label(classification: Classification, app: str, family: str) -> str:
    kinds = []
    for e in classification.verdicts[app].evidence:
        if e.family == family and e.stance != "info" and e.kind not in kinds:
            kinds.append(e.kind)
    return "\n".join(kinds[:2]) + ("\n…" if len(kinds) > 2 else "")


def evidence_chart(classification: Classification) -> Figure:
    """Apps x evidence families, each cell coloured by what its evidence argues (red: for
    archiving, green: against, orange: both), with the decision and confidence at the
    right: a reviewer sees at a glance why each app is kept or archived."""
    matrix = classification.matrix()
    families = [c for c in matrix.columns if c not in ("app", "decision", "confidence")]
    apps = list(matrix["app"])
    fig = Figure(figsize=(1.25 * len(families) + 4.5, 0.42 * len(apps) + 2.2))
    ax = fig.subplots()
    for row, record in enumerate(matrix.itertuples(index=False)):
        y = len(apps) - 1 - row
        values = record._asdict()
        for col, fam in enumerate(families):
            stance = values[fam]
            ax.add_patch(Rectangle((col, y), 1, 1, fc=STANCE_COLOURS[stance], ec="#bdbdbd"))
            label = _cell_label(classification, record.app, fam)
            if label:
                ax.text(col + 0.5, y + 0.5, label, ha="center", va="center", fontsize=6)
        decision = values["decision"]
        ax.add_patch(Rectangle((len(families), y), 1.6, 1, fc=COLOURS[decision], ec="#bdbdbd"))
        ax.text(
            len(families) + 0.8,
            y + 0.5,
            f"{decision}\n{values['confidence']}",
            ha="center",
            va="center",
            fontsize=7,
            color="white",
        )
    ax.set_xlim(0, len(families) + 1.6)
    ax.set_ylim(0, len(apps))
    ax.set_xticks([i + 0.5 for i in range(len(families))] + [len(families) + 0.8])
    ax.set_xticklabels([*families, "decision"], rotation=30, ha="right", fontsize=8)
    ax.set_yticks([len(apps) - 0.5 - i for i in range(len(apps))])
    ax.set_yticklabels(apps, fontsize=8)
    ax.tick_params(length=0)
    title = "Evidence per app (red: for archiving, green: against, orange: both)"
    if classification.inventory.quiet:
        title += "\nrepository quiet: age is not evidence"
    ax.set_title(title, fontsize=9)
    ax.legend(
        handles=[Patch(color=STANCE_COLOURS[k], label=k) for k in ("for", "against", "mixed")],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=3,
        fontsize=7,
    )
    fig.tight_layout()
    return fig
