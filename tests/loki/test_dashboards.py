"""Dashboard panels: valid LogQL, hand-checkable numbers, figures with incidents."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from opsbook.loki import dashboards
from opsbook.loki.backtest import backtest
from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import parse
from opsbook.loki.rules import load_rules
from opsbook.loki.timeutil import NS_PER_S

from .conftest import rules_path

SERVICES = ["backend-ts", "backend-rag", "qdrant", "redis"]
M = 60 * NS_PER_S
T0 = 1_795_824_000 * NS_PER_S


@pytest.fixture(scope="module")
def logs(sim_day):
    return LocalLogs([sim_day.path])


def _truth_rows(sim_day):
    with open(sim_day.path, "rb") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize(
    "query",
    [
        dashboards.requests_query("backend-ts", "1m"),
        dashboards.requests_query("backend-rag", "1m"),
        dashboards.server_errors_query("backend-ts", "5m"),
        dashboards.error_lines_query(SERVICES, "1m"),
        dashboards.all_lines_query(SERVICES, "1h"),
        dashboards.latency_query("backend-rag", 0.99, "5m", by="service, route"),
        dashboards.ai_cost_query("1d"),
        dashboards.ai_latency_query(0.5, "5m"),
        dashboards.vector_db_errors_query("1m"),
        dashboards.redis_problems_query("1m"),
    ],
)
def test_panel_queries_are_valid_logql(query):
    parse(query)


def test_unknown_http_service_is_a_clear_error():
    with pytest.raises(Exception, match="no parser known for 'redis'"):
        dashboards.requests_query("redis", "1m")


def test_window_text():
    assert [
        dashboards.window_text(n)
        for n in (90 * NS_PER_S, 2 * M, 3 * 3600 * NS_PER_S, 86400 * NS_PER_S)
    ] == ["90s", "2m", "3h", "1d"]


def test_health_table_matches_a_count_of_the_raw_lines(logs, sim_day):
    table = dashboards.health_table(logs, SERVICES, sim_day.start_ns, sim_day.end_ns).set_index(
        "service"
    )
    rows = _truth_rows(sim_day)
    ts_requests = [json.loads(r["line"]) for r in rows if r["labels"]["service"] == "backend-ts"]
    ts_requests = [d for d in ts_requests if d.get("route") not in (None, "/healthz")]
    assert table.loc["backend-ts", "requests"] == len(ts_requests)
    assert table.loc["backend-ts", "errors"] == sum(d["status"] >= 500 for d in ts_requests)
    redis_lines = sum(r["labels"]["service"] == "redis" for r in rows)
    assert (
        table.loc["redis", "requests"] == redis_lines and table.loc["redis", "basis"] == "log lines"
    )
    lat = sorted(d["latency_ms"] for d in ts_requests)
    assert table.loc["backend-ts", "p50_ms"] == pytest.approx(np.quantile(lat, 0.5), rel=1e-9)
    assert np.isnan(table.loc["qdrant", "p95_ms"])
    expected = table["errors"] / table["requests"]
    assert np.allclose(table["error_rate"], expected)


def test_ai_cost_per_day_sums_the_cost_field(logs, sim_day):
    cost = dashboards.ai_cost_frame(logs, sim_day.start_ns, sim_day.end_ns, "5m")
    daily = dashboards.ai_cost_per_day(cost)
    rows = _truth_rows(sim_day)
    spent: dict[str, float] = {}
    for r in rows:
        if r["labels"]["service"] == "backend-ts":
            d = json.loads(r["line"])
            if "model" in d:
                spent[d["model"]] = spent.get(d["model"], 0.0) + d["cost_usd"]
    got = dict(zip(daily["model"], daily["cost_usd"], strict=True))
    assert got.keys() == spent.keys()
    for model, usd in spent.items():
        assert got[model] == pytest.approx(usd, rel=1e-9)


def test_ai_cost_per_day_splits_at_midnight():
    ts = pd.to_datetime([T0 - M, T0, T0 + M], unit="ns", utc=True)  # T0 is midnight
    frame = pd.DataFrame({"timestamp": ts, "value": [1.0, 2.0, 4.0], "model": ["m", "m", "m"]})
    daily = dashboards.ai_cost_per_day(frame)
    # the window ending exactly at midnight belongs to the day before
    assert list(zip(daily["day"], daily["cost_usd"], strict=True)) == [
        ("2026-11-27", 3.0),
        ("2026-11-28", 4.0),
    ]


def test_fill_zeros_adds_missing_steps_only():
    ts = pd.to_datetime([T0 + M, T0 + 3 * M], unit="ns", utc=True)
    frame = pd.DataFrame(
        {
            "timestamp": ts,
            "value": [5.0, 7.0],
            "series": ['{a="b"}'] * 2,
            "labels": [{"a": "b"}] * 2,
            "a": ["b", "b"],
        }
    )
    filled = dashboards.fill_zeros(frame, T0, T0 + 4 * M, "1m")
    assert list(filled["value"]) == [0.0, 5.0, 0.0, 7.0, 0.0]
    assert set(filled["a"]) == {"b"}


def test_figures_shade_every_incident(logs, sim_day):
    errors = dashboards.errors_frame(logs, SERVICES, sim_day.start_ns, sim_day.end_ns, "5m")
    fig = dashboards.timeseries_figure(
        [("errors", errors, "service", "per min")], sim_day.incidents
    )
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    spans = [p for p in ax.patches if p.get_alpha() == 0.12]
    assert len(spans) == len(sim_day.incidents) == 5
    assert {line.get_label() for line in ax.get_lines()} >= {"backend-ts", "qdrant"}


def test_latency_firings_and_sweep_figures(logs, sim_day):
    start, end = sim_day.start_ns, sim_day.end_ns
    latency = dashboards.latency_frame(logs, ["backend-ts"], start, end, "10m")
    assert set(latency["quantile"]) == {"p50", "p95", "p99"}
    assert len(dashboards.latency_figure(latency).axes) == 1
    result = backtest(logs, load_rules(rules_path()), start, end)
    fig = dashboards.firings_figure(result.episodes, start, end, sim_day.incidents)
    assert (
        len(fig.axes[0].get_yticklabels())
        == result.episodes[["rule", "series"]].drop_duplicates().shape[0]
    )
    sweeps = pd.DataFrame(
        {
            "rule": ["A", "A", "B"],
            "op": [">"] * 3,
            "threshold": [1.0, 2.0, 5.0],
            "current": [True, False, True],
            "firings": [3, 1, 0],
        }
    )
    fig = dashboards.sweep_figure(sweeps, {"A": 2.0})
    assert sum(ax.get_visible() for ax in fig.axes) == 2


def test_empty_frames_still_draw():
    empty = pd.DataFrame(columns=["timestamp", "value", "series", "labels"])
    fig = dashboards.timeseries_figure([("nothing", empty, "series", "n")])
    assert fig.axes[0].texts[0].get_text() == "no data"
