"""open_source / open_analysis: one interface over a live Loki or exported files."""

from __future__ import annotations

import shutil

import pytest

from opsbook.errors import ConfigError
from opsbook.loki.http import LokiHTTP
from opsbook.loki.local import LocalLogs
from opsbook.loki.source import (
    data_bounds,
    expand_paths,
    logs_frame,
    metric_frame,
    open_analysis,
    open_source,
    resolve_window,
)
from opsbook.loki.timeutil import NS_PER_S, to_ns


def test_open_source_picks_the_backend(tmp_path, sim_day):
    assert isinstance(open_source(loki_url="http://127.0.0.1:3100"), LokiHTTP)
    assert isinstance(open_source(log_paths=[str(sim_day.path)]), LocalLogs)
    with pytest.raises(ConfigError, match="both loki_url and log_paths"):
        open_source(loki_url="http://x:3100", log_paths=[str(sim_day.path)])
    with pytest.raises(ConfigError, match="no log source"):
        open_source()


def test_expand_paths_handles_dirs_globs_and_missing(tmp_path, sim_day):
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(sim_day.path, folder / "a.jsonl")
    shutil.copy(sim_day.path, folder / "b.jsonl")
    (folder / "notes.txt").write_text("not logs")
    assert [p.name for p in expand_paths([str(folder)])] == ["a.jsonl", "b.jsonl"]
    assert [p.name for p in expand_paths(str(folder / "*.jsonl"))] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(ConfigError, match="does not exist"):
        expand_paths([str(tmp_path / "missing.jsonl")])
    with pytest.raises(ConfigError, match="no file matches"):
        expand_paths([str(tmp_path / "*.json")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no log files"):
        expand_paths([str(tmp_path / "empty")])


def test_same_panel_same_frame_from_loki_http_and_local(serve, sim_day):
    """The whole point: a query gives the same frame through LokiHTTP and LocalLogs."""
    local = LocalLogs([sim_day.path])
    server = serve(local, max_entries=100)
    remote = LokiHTTP(server.url, page_limit=100, split="2h", sleep=lambda s: None)
    start, end = sim_day.start_ns, sim_day.end_ns
    query = 'sum by (service) (count_over_time({env="prod", level="error"}[5m]))'
    a = metric_frame(local, query, start, end, "5m")
    b = metric_frame(remote, query, start, end, "5m")
    assert len(a) > 10
    assert a[["timestamp", "series", "value"]].equals(b[["timestamp", "series", "value"]])
    selector = '{service="qdrant", level="error"}'
    la = logs_frame(local, selector, start, end, limit=5000)
    lb = logs_frame(remote, selector, start, end, limit=5000)
    assert len(la) > 200  # several pages
    assert la[["ts_ns", "series", "line"]].equals(lb[["ts_ns", "series", "line"]])


def test_frame_helpers_refuse_the_wrong_query_kind(sim_day):
    local = LocalLogs([sim_day.path])
    with pytest.raises(ConfigError, match="is a log query"):
        metric_frame(local, '{service="redis"}', sim_day.start_ns, sim_day.end_ns)
    with pytest.raises(ConfigError, match="is a metric query"):
        logs_frame(
            local, 'count_over_time({service="redis"}[1m])', sim_day.start_ns, sim_day.end_ns
        )


def test_open_analysis_demo_simulates_into_the_work_dir(tmp_path):
    analysis = open_analysis(work_dir=tmp_path, demo_hours=3)
    assert "simulated demo" in analysis.description
    assert (tmp_path / "demo-logs.jsonl").exists() and len(analysis.incidents) == 5
    assert analysis.end_ns - analysis.start_ns == 3 * 3600 * NS_PER_S
    assert analysis.window == ("2026-11-28T06:00:00Z", "2026-11-28T09:00:00Z")


def test_open_analysis_on_files_uses_the_data_span_and_sibling_truth(sim_day):
    analysis = open_analysis(log_paths=[str(sim_day.path)])
    assert analysis.start_ns == sim_day.start_ns and analysis.end_ns == sim_day.end_ns
    assert [i["id"] for i in analysis.incidents] == [i["id"] for i in sim_day.incidents]
    first, last = data_bounds(analysis.source)
    assert sim_day.start_ns <= first < last < sim_day.end_ns
    narrowed = open_analysis(
        log_paths=[str(sim_day.path)], start="2026-11-28T07:00:00Z", end="2026-11-28T08:00:00Z"
    )
    assert narrowed.window == ("2026-11-28T07:00:00Z", "2026-11-28T08:00:00Z")


def test_resolve_window():
    now = to_ns("2026-11-28T12:00:00Z")
    assert resolve_window("", "", now=now) == (now - 6 * 3600 * NS_PER_S, now)
    with pytest.raises(ConfigError, match="window is empty"):
        resolve_window("2026-11-28T12:00:00Z", "2026-11-28T11:00:00Z")
