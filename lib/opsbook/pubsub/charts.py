"""Charts of the benchmark, each a function returning a matplotlib ``Figure``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from opsbook.pubsub import hist  # noqa: E402

TARGET_MS = 10.0


def latency_cdf_and_histogram(histograms: dict[str, HdrHistogram]) -> Figure:
    """Left: latency CDF (log x); right: histogram of latencies (log x, log y)."""
    fig = Figure(figsize=(11, 4))
    ax_cdf, ax_hist = fig.subplots(1, 2)
    for label, h in histograms.items():
        xs, ys = hist.cdf(h)
        if not len(xs):
            continue
        ax_cdf.step(xs, ys, where="post", label=label)
        edges = np.logspace(np.log10(max(xs.min(), 0.001)), np.log10(xs.max() * 1.01), 40)
        counts = np.zeros(len(edges) - 1)
        for item in h.get_recorded_iterator():
            i = np.searchsorted(edges, item.value_iterated_to / 1000.0, side="right") - 1
            counts[min(max(i, 0), len(counts) - 1)] += item.count_at_value_iterated_to
        ax_hist.stairs(counts, edges, label=label)
    for ax in (ax_cdf, ax_hist):
        ax.set_xscale("log")
        ax.axvline(TARGET_MS, color="red", linestyle="--", linewidth=1)
        ax.set_xlabel("latency (ms, from intended send time)")
    ax_hist.set_yscale("log")
    ax_cdf.set_ylabel("fraction of messages")
    ax_hist.set_ylabel("messages")
    ax_cdf.set_title("Latency CDF")
    ax_hist.set_title("Latency histogram")
    ax_cdf.legend(fontsize=8)
    fig.tight_layout()
    return fig


def percentiles_vs_rate(rows: pd.DataFrame, target_ms: float = TARGET_MS) -> Figure:
    """p50 / p99 / p99.9 against offered rate, with the target line."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    data = rows.sort_values("offered_rate")
    for col, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        ax.plot(data["offered_rate"], data[col], marker="o", label=label)
    ax.axhline(target_ms, color="red", linestyle="--", label=f"{target_ms:g} ms target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (msg/s, open loop)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency vs offered rate")
    ax.legend()
    fig.tight_layout()
    return fig


def throughput_vs_fanout(rows: pd.DataFrame) -> Figure:
    """Delivered msgs/s (all subscribers) and p99 against subscriber count."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    data = rows.sort_values("subscribers")
    ax.plot(data["subscribers"], data["delivered_rate"], marker="o", label="delivered msg/s")
    ax.set_xscale("log")
    ax.set_xlabel("subscribers on one channel")
    ax.set_ylabel("delivered messages/s (sum)")
    ax2 = ax.twinx()
    ax2.plot(data["subscribers"], data["p99_ms"], marker="s", color="tab:red", label="p99 ms")
    ax2.set_ylabel("p99 latency (ms)")
    ax.set_title("Fan-out")
    fig.legend(loc="upper left")
    fig.tight_layout()
    return fig


def memory_per_connection(samples: pd.DataFrame) -> Figure:
    """Redis memory per idle connection against the number of connections."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    fresh = samples[samples["when"] == "just connected"]
    settled = samples[samples["when"] != "just connected"]
    for col, label in (
        ("used_memory_per_conn", "used_memory delta / conn"),
        ("tot_mem_per_conn", "CLIENT LIST tot-mem / conn"),
    ):
        ax.plot(fresh["connections"], fresh[col] / 1024, marker="o", label=f"{label}")
        if not settled.empty:
            ax.scatter(
                settled["connections"],
                settled[col] / 1024,
                marker="x",
                s=80,
                label=f"{label} ({settled['when'].iloc[0]})",
            )
    ax.axhline(1.0, color="red", linestyle="--", label="claim: ~1 KB")
    ax.set_xlabel("idle subscriber connections")
    ax.set_ylabel("KB per connection")
    ax.set_ylim(bottom=0)
    ax.set_title("Redis memory per connection")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def loss_vs_rate(rows: pd.DataFrame) -> Figure:
    """Messages lost (and subscriber disconnects) against offered rate."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    data = rows.dropna(subset=["offered_rate"]).sort_values("offered_rate")
    ax.bar(np.arange(len(data)), data["lost"], color="tab:red", label="lost")
    ax.set_xticks(
        np.arange(len(data)),
        [f"{r:,.0f}\n{s}" for r, s in zip(data["offered_rate"], data["scenario"], strict=True)],
        fontsize=7,
    )
    ax.set_xlabel("offered rate (msg/s) / scenario")
    ax.set_ylabel("messages lost")
    ax.set_title("Loss vs offered rate")
    for i, (lost, disc) in enumerate(zip(data["lost"], data["disconnects"], strict=True)):
        if lost or disc:
            ax.annotate(f"{int(lost)} lost\n{int(disc)} disc.", (i, lost), ha="center", fontsize=7)
    fig.tight_layout()
    return fig


def cluster_scaling(rows: pd.DataFrame) -> Figure:
    """Classic vs sharded pub/sub on 1 -> N shards: delivered msg/s, p99, Redis CPU (all
    nodes). ``rows`` is :func:`opsbook.pubsub.cluster.cluster_table`."""
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 3)
    panels = (
        ("delivered_rate", "delivered msg/s", "Throughput"),
        ("p99_ms", "p99 latency (ms)", "p99"),
        ("redis_cpu_us_per_msg", "Redis CPU, all nodes (µs per message)", "Redis CPU"),
    )
    names = {"classic": "PUBLISH/SUBSCRIBE (classic)", "sharded": "SPUBLISH/SSUBSCRIBE (sharded)"}
    for ax, (col, ylabel, title) in zip(axes, panels, strict=True):
        for pattern, data in rows.groupby("pattern", sort=False):
            data = data.sort_values("shards")
            ax.plot(data["shards"], data[col], marker="o", label=names.get(str(pattern), pattern))
        ax.set_xlabel("shards in use")
        ax.set_xticks(sorted(rows["shards"].unique()))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
    axes[0].legend(
        ["PUBLISH/SUBSCRIBE (classic)", "SPUBLISH/SSUBSCRIBE (sharded)"][: len(axes[0].lines)]
    )
    fig.suptitle("Redis Cluster: classic vs sharded pub/sub")
    fig.tight_layout()
    return fig
