"""Integrity charts: each function returns a matplotlib Figure (notebook, HTML, tests).

Every chart accepts a :class:`~opsbook.migrate.run.MigrationResult`; the counts chart
also accepts a dry-run :class:`~opsbook.migrate.run.Plan` (source side only), and the
others draw a labelled empty frame for a dry run, so a notebook cell never branches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from opsbook.migrate.run import MigrationResult, Plan

CHECKS = ("count", "ids", "vectors", "payloads", "search")
_KINDS_OF = {
    "count": ("count",),
    "ids": ("missing", "extra", "duplicate"),
    "vectors": ("vector",),
    "payloads": ("payload", "document", "metadata"),
    "search": ("search",),
}


def _figure(width: float = 7.0, height: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _empty(title: str, why: str = "dry run: nothing written to the target") -> Figure:
    fig, ax = _figure()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_axis_off()
    return fig


def counts_chart(outcome: MigrationResult | Plan) -> Figure:
    """Source vs target record counts per collection (bars side by side)."""
    fig, ax = _figure()
    if isinstance(outcome, Plan):
        names = [c.info.name for c in outcome.collections]
        source = [c.info.count for c in outcome.collections]
        target = [0] * len(names)
    else:
        counts = outcome.counts()
        names = list(counts)
        source = [counts[n]["source"] for n in names]
        target = [max(counts[n]["target"], 0) for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, source, width=0.4, label="Chroma (source)", color="#4c72b0")
    ax.bar(x + 0.2, target, width=0.4, label="Qdrant (target)", color="#55a868")
    ax.set_xticks(x, names)
    ax.set_ylabel("records")
    ax.set_title("Records per collection")
    ax.legend(loc="lower right")
    return fig


def throughput_chart(result: MigrationResult | Plan | None) -> Figure:
    """Records/s of every written batch over the run's write time."""
    if not isinstance(result, MigrationResult):
        return _empty("Write throughput per batch")
    fig, ax = _figure()
    offset = 0.0
    for c in result.collections:
        if c.batches:
            ends = np.array([b.ended_s for b in c.batches]) + offset
            ax.plot(
                ends, [b.records_per_s for b in c.batches], ".-", ms=3, lw=0.8, label=c.info.name
            )
            offset = float(ends[-1])
    ax.set_xlabel("seconds since writing started")
    ax.set_ylabel("records/s")
    ax.set_title(f"Write throughput per batch (overall {result.records_per_s:,.0f} records/s)")
    if any(c.batches for c in result.collections):
        ax.legend(fontsize="small")
    return fig


def records_chart(result: MigrationResult | Plan | None) -> Figure:
    """Per collection: records whose content hash (vector bytes, document, metadata) matched
    what was written, beside the mismatches of each kind (log scale, so one shows)."""
    if not isinstance(result, MigrationResult) or not any(c.report for c in result.collections):
        return _empty("Records verified by content hash")
    fig, ax = _figure()
    reports = [c.report for c in result.collections if c.report is not None]
    kinds = ["identical", "missing", "extra", "duplicate", "vector", "payload", "document"]
    kinds.append("metadata")
    x = np.arange(len(reports))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        values = [r.identical if kind == "identical" else r.mismatches[kind] for r in reports]
        color = "#55a868" if kind == "identical" else None
        ax.bar(x + (i - len(kinds) / 2) * width, values, width=width, label=kind, color=color)
    ax.set_xticks(x, [r.collection for r in reports])
    ax.set_yscale("symlog")
    ax.set_ylabel("records")
    ax.set_title("Records verified by content hash (every record, target read once)")
    ax.legend(fontsize="x-small", ncols=4)
    return fig


def recall_chart(result: MigrationResult | Plan | None) -> Figure:
    """Index quality: recall@10 vs exact search per query, Chroma HNSW beside the target's
    ANN index, per collection (information only: the dashed line is the warning level)."""
    reports = (
        [c.report for c in result.collections if c.report is not None]
        if isinstance(result, MigrationResult)
        else []
    )
    if not reports:
        return _empty("Index quality: recall@10 vs exact search")
    if not any(r.search.measured for r in reports):
        return _empty(
            "Index quality: recall@10 vs exact search", "not measured (sample_queries = 0)"
        )
    fig, ax = _figure()
    x = np.arange(len(reports))
    for shift, who, color in ((-0.2, "chroma", "#4c72b0"), (0.2, "target", "#55a868")):
        data = [
            r.search.chroma_recalls if who == "chroma" else r.search.target_recalls for r in reports
        ]
        where = [i + shift for i, d in zip(x, data, strict=True) if d]
        if where:
            box = ax.boxplot(
                [d for d in data if d],
                positions=where,
                widths=0.35,
                showmeans=True,
                patch_artist=True,
            )
            for patch in box["boxes"]:
                patch.set_facecolor(color)
        for i, d in zip(x, data, strict=True):
            if not d:
                ax.text(i + shift, 0.5, "no ANN index\n(exact)", ha="center", fontsize="x-small")
        ax.plot([], [], color=color, lw=6, label="Chroma HNSW" if who == "chroma" else "Qdrant ANN")
    ax.set_xticks(x, [r.collection for r in reports])
    ax.axhline(result.config.recall_threshold, color="red", ls="--", label="warning level")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("recall@10 vs exact (per query)")
    ax.set_title("Index quality before and after the move")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def pass_fail_table(result: MigrationResult | Plan | None) -> Any:
    """One row per collection, one PASS/FAIL column per check (plus the totals)."""
    import pandas as pd

    if not isinstance(result, MigrationResult):
        return pd.DataFrame(columns=["collection", *CHECKS, "overall"])
    rows = []
    for c in result.collections:
        r = c.report
        row: dict[str, Any] = {"collection": c.info.name}
        for check, kinds in _KINDS_OF.items():
            row[check] = (
                "n/a" if r is None else ("FAIL" if any(r.mismatches[k] for k in kinds) else "PASS")
            )
        if r is not None and not r.search.measured:
            row["search"] = "not measured"
        row["overall"] = "PASS" if r is not None and r.ok else "FAIL"
        rows.append(row)
    return pd.DataFrame(rows)
