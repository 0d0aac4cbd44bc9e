"""HdrHistogram helpers: microsecond latencies, cheap bulk recording, merge across processes.

Workers append raw latencies to an ``array('q')`` and convert once per step
(:func:`from_values`), then ship :func:`encode`-d histograms to the orchestrator, which
:func:`merge`-s them. Values above :data:`HIGHEST_US` are clamped (and counted as such).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes
SIG_FIGS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


def new() -> HdrHistogram:
    """An empty histogram in microseconds (1 us .. 120 s, 3 significant digits)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def from_values(values_us: Iterable[int] | np.ndarray) -> HdrHistogram:
    """Histogram of latencies in microseconds, recorded in bulk (unique values x counts)."""
    hist = new()
    arr = np.asarray(values_us if isinstance(values_us, np.ndarray) else list(values_us))
    if arr.size == 0:
        return hist
    arr = np.clip(arr.astype(np.int64), LOWEST_US, HIGHEST_US)
    uniq, counts = np.unique(arr, return_counts=True)
    for value, count in zip(uniq.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)
    return hist


def encode(hist: HdrHistogram) -> str:
    """Compressed, base64 text form (HdrHistogram's standard encoding)."""
    return hist.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """Sum of several encoded histograms."""
    total = new()
    for text in encoded:
        if text:
            total.add(decode(text))
    return total


def summary(hist: HdrHistogram) -> dict[str, float | int]:
    """count, mean, p50/p90/p99/p99.9 and max in milliseconds."""
    count = hist.get_total_count()
    out: dict[str, float | int] = {"count": int(count)}
    for name, pct in PERCENTILES.items():
        out[f"{name}_ms"] = hist.get_value_at_percentile(pct) / 1000.0 if count else float("nan")
    out["max_ms"] = hist.get_max_value() / 1000.0 if count else float("nan")
    out["mean_ms"] = hist.get_mean_value() / 1000.0 if count else float("nan")
    return out


def cdf(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(latency_ms, cumulative fraction) points for a CDF plot."""
    values, cum = [], []
    total = hist.get_total_count()
    if not total:
        return np.array([]), np.array([])
    running = 0
    for item in hist.get_recorded_iterator():
        running += item.count_at_value_iterated_to
        values.append(item.value_iterated_to / 1000.0)
        cum.append(running / total)
    return np.array(values), np.array(cum)


def save(hist: HdrHistogram, path: Path) -> Path:
    """Write the encoded histogram (``.hdr``: one base64 line, readable by any HdrHistogram
    library) and a small percentile table beside it (``.csv``: percentile, latency_ms)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode(hist) + "\n")
    lines = ["percentile,latency_ms"]
    for pct in (0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100):
        lines.append(f"{pct},{hist.get_value_at_percentile(pct) / 1000.0}")
    path.with_suffix(".csv").write_text("\n".join(lines) + "\n")
    return path


def load(path: Path) -> HdrHistogram:
    return decode(Path(path).read_text().strip())
