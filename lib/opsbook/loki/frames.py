"""Turn Loki ``data`` objects into tidy pandas frames.

Both backends (:class:`~opsbook.loki.http.LokiHTTP` and the embedded ``LocalLogs``)
return the ``data`` object of Loki's HTTP API. The functions here flatten it so that
every panel, table and backtest works the same on either:

* ``streams`` → one row per log entry: ``timestamp``, ``ts_ns``, ``series``, ``labels``,
  ``line`` plus one column per label;
* ``matrix`` / ``vector`` → one row per sample: ``timestamp``, ``value``, ``series``,
  ``labels`` plus one column per label;
* ``scalar`` → a single row with ``timestamp`` and ``value``.

``series`` is the Prometheus-style text of the label set (``{service="api"}``): hashable,
sortable and readable, so it is the natural key for ``groupby`` and chart legends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from opsbook.errors import ConfigError

NS_PER_S = 1_000_000_000
_BASE_STREAM_COLUMNS = ["timestamp", "ts_ns", "series", "labels", "line"]
_BASE_SAMPLE_COLUMNS = ["timestamp", "value", "series", "labels"]


def series_key(labels: Mapping[str, str]) -> str:
    """Prometheus-style text of a label set, labels sorted by name.

    >>> series_key({"service": "api", "env": "prod"})
    '{env="prod", service="api"}'
    """
    inner = ", ".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_value(text: Any) -> float:
    """Convert a Loki sample value (a string such as ``"1.5"``, ``"NaN"``, ``"+Inf"``)."""
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"sample value {text!r} is not a number") from None


def _sec_to_ns(sec: Any) -> int:
    """Sample timestamps are float seconds (``1700000000.5``) or strings of them."""
    if isinstance(sec, str):
        whole, _, frac = sec.partition(".")
        return int(whole) * NS_PER_S + int((frac + "000000000")[:9] or 0)
    value = float(sec)
    if math.isnan(value):
        raise ConfigError("sample timestamp is NaN")
    whole = math.floor(value)
    return int(whole) * NS_PER_S + int(round((value - whole) * 1e9 / 1e3)) * 1000


def _finish(rows: dict[str, list[Any]], base: list[str], label_sets: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=base)
    names = sorted({name for labels in label_sets for name in labels})
    for name in names:
        if name in frame.columns:
            continue
        frame[name] = [labels.get(name) for labels in frame["labels"]]
    return frame


def _check(data: Mapping[str, Any], expected: tuple[str, ...]) -> list[Any]:
    if not isinstance(data, Mapping) or "resultType" not in data:
        raise ConfigError(
            "not a Loki data object (no resultType)",
            hint="pass the `data` member of a Loki response, or what LocalLogs returns",
        )
    kind = data["resultType"]
    if kind not in expected:
        raise ConfigError(f"expected a {' or '.join(expected)} result, got {kind!r}")
    result = data.get("result")
    return [] if result is None else result


def streams_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of log entries from a ``streams`` result, oldest first."""
    result = _check(data, ("streams",))
    ts: list[int] = []
    series: list[str] = []
    labels_col: list[dict] = []
    lines: list[str] = []
    label_sets: list[dict] = []
    for stream in result:
        labels = dict(stream.get("stream") or {})
        key = series_key(labels)
        label_sets.append(labels)
        for entry in stream.get("values") or []:
            ts.append(int(entry[0]))
            series.append(key)
            labels_col.append(labels)
            lines.append(entry[1])
    ts_arr = np.asarray(ts, dtype="int64")
    rows = {
        "timestamp": pd.to_datetime(ts_arr, unit="ns", utc=True),
        "ts_ns": ts_arr,
        "series": series,
        "labels": labels_col,
        "line": lines,
    }
    frame = _finish(rows, _BASE_STREAM_COLUMNS, label_sets)
    return frame.sort_values(["ts_ns", "series"], kind="stable").reset_index(drop=True)


def matrix_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Tidy samples from a ``matrix`` result: one row per (series, timestamp)."""
    result = _check(data, ("matrix",))
    ts: list[int] = []
    values: list[float] = []
    series: list[str] = []
    labels_col: list[dict] = []
    label_sets: list[dict] = []
    for item in result:
        labels = dict(item.get("metric") or {})
        key = series_key(labels)
        label_sets.append(labels)
        for sample in item.get("values") or []:
            ts.append(_sec_to_ns(sample[0]))
            values.append(parse_value(sample[1]))
            series.append(key)
            labels_col.append(labels)
    return _sample_frame(ts, values, series, labels_col, label_sets)


def vector_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Tidy samples from a ``vector`` result: one row per series."""
    result = _check(data, ("vector",))
    ts: list[int] = []
    values: list[float] = []
    series: list[str] = []
    labels_col: list[dict] = []
    for item in result:
        labels = dict(item.get("metric") or {})
        sample = item["value"]
        ts.append(_sec_to_ns(sample[0]))
        values.append(parse_value(sample[1]))
        series.append(series_key(labels))
        labels_col.append(labels)
    return _sample_frame(ts, values, series, labels_col, labels_col)


def scalar_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """A one-row frame from a ``scalar`` result."""
    if not isinstance(data, Mapping) or data.get("resultType") != "scalar":
        raise ConfigError("expected a scalar result")
    sample = data["result"]
    return _sample_frame([_sec_to_ns(sample[0])], [parse_value(sample[1])], ["{}"], [{}], [])


def _sample_frame(
    ts: list[int],
    values: list[float],
    series: list[str],
    labels_col: list[dict],
    label_sets: list[dict],
) -> pd.DataFrame:
    rows = {
        "timestamp": pd.to_datetime(np.asarray(ts, dtype="int64"), unit="ns", utc=True),
        "value": np.asarray(values, dtype="float64"),
        "series": series,
        "labels": labels_col,
    }
    frame = _finish(rows, _BASE_SAMPLE_COLUMNS, label_sets)
    return frame.sort_values(["series", "timestamp"], kind="stable").reset_index(drop=True)


def to_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Dispatch on ``resultType``: streams, matrix, vector or scalar."""
    kind = data.get("resultType") if isinstance(data, Mapping) else None
    converters = {
        "streams": streams_frame,
        "matrix": matrix_frame,
        "vector": vector_frame,
        "scalar": scalar_frame,
    }
    if kind not in converters:
        raise ConfigError(
            f"unknown Loki resultType {kind!r}",
            hint="expected streams, matrix, vector or scalar",
        )
    return converters[kind](data)


def wide(frame: pd.DataFrame, by: str = "series") -> pd.DataFrame:
    """Pivot a tidy sample frame to one column per ``by`` value, indexed by timestamp."""
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    if by not in frame.columns:
        raise ConfigError(f"no column {by!r} in the frame", hint=f"columns: {list(frame.columns)}")
    keys = frame[by].fillna("")
    table = frame.assign(_key=keys).pivot_table(
        index="timestamp", columns="_key", values="value", aggfunc="sum"
    )
    table.columns.name = by
    return table.sort_index()
