"""`opsbook loki export` and `opsbook loki simulate`."""

from __future__ import annotations

import json

import orjson
import pytest
from click.testing import CliRunner

from opsbook.loki.cli import cli
from opsbook.loki.local import LocalLogs
from opsbook.loki.timeutil import to_ns


def test_simulate_command_writes_logs_and_truth(tmp_path):
    out = tmp_path / "demo.jsonl"
    result = CliRunner().invoke(cli, ["simulate", "-o", str(out), "--hours", "3", "--seed", "4"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["lines"] == sum(1 for _ in out.open())
    assert len(info["incidents"]) == 5 and (tmp_path / "demo.truth.json").exists()


def test_simulate_command_bad_input_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["simulate", "-o", str(tmp_path / "x.jsonl"), "--hours", "1"])
    assert result.exit_code == 2
    assert "too short" in result.output


def test_export_pages_a_live_range_into_jsonl_readable_by_locallogs(serve, sim_day, tmp_path):
    local = LocalLogs([sim_day.path])
    server = serve(local, max_entries=1000)
    out = tmp_path / "export.jsonl"
    start, end = "2026-11-28T07:00:00Z", "2026-11-28T09:00:00Z"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--url",
            server.url,
            "-q",
            '{env="prod"}',
            "--start",
            start,
            "--end",
            end,
            "-o",
            str(out),
            "--page-limit",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in out.open("rb")]
    with open(sim_day.path, "rb") as f:
        source = [orjson.loads(line) for line in f]
    lo, hi = to_ns(start), to_ns(end)
    expected = sorted((r["ts"], r["line"]) for r in source if lo <= r["ts"] < hi)
    assert sorted((to_ns(r["timestamp"]), r["line"]) for r in rows) == expected
    assert len(rows) > 3 * 1000  # several pages
    assert [to_ns(r["timestamp"]) for r in rows] == sorted(to_ns(r["timestamp"]) for r in rows)
    again = LocalLogs([out])
    assert again.entry_count == len(expected)
    assert f"wrote {len(rows)} entries" in result.output


def test_export_refuses_metric_queries_and_leaves_no_file(serve, tmp_path):
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--url",
            "http://127.0.0.1:9",
            "-q",
            'rate({a="b"}[1m])',
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 2 and "not a log query" in result.output
    assert not list(tmp_path.iterdir())


def test_failed_export_leaves_no_partial_file(serve, sim_day, tmp_path):
    server = serve(LocalLogs([sim_day.path]), max_entries=500)
    server.fail_from = (2, 400, "query timed out after the first page")
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--url",
            server.url,
            "-q",
            '{env="prod"}',
            "--start",
            "2026-11-28T07:00:00Z",
            "--end",
            "2026-11-28T08:00:00Z",
            "-o",
            str(out),
            "--page-limit",
            "500",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "query timed out after the first page" in result.output
    assert len(server.requests) == 2
    assert not list(tmp_path.iterdir())


def test_check_rules_command(tmp_path):
    from .conftest import rules_path

    ok = CliRunner().invoke(cli, ["check-rules", str(rules_path())])
    assert ok.exit_code == 0 and "5 rule(s)" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '{a=\"b\"}'\n"
    )
    result = CliRunner().invoke(cli, ["check-rules", str(bad)])
    assert result.exit_code == 2 and "log query" in result.output


@pytest.mark.slow
def test_backtest_command_reports_firings_and_tunes(sim_day, tmp_path):
    from .conftest import rules_path

    tuned = tmp_path / "tuned.yaml"
    result = CliRunner().invoke(
        cli,
        [
            "backtest",
            str(rules_path()),
            "--logs",
            str(sim_day.path),
            "--tuned-out",
            str(tuned),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["incidents"] == 5 and report["detected"] == 5 and report["missed"] == []
    assert report["firings"]["ServiceDown"] == 1
    assert report["tuned"]["HighErrorRate"] == 10 and tuned.exists()


@pytest.mark.slow
def test_backtest_command_exits_1_when_an_incident_is_missed(sim_day, tmp_path):
    from .conftest import rules_path

    deaf = tmp_path / "deaf.yaml"
    deaf.write_text(rules_path().read_text().replace("> 2000", "> 99999"))
    result = CliRunner().invoke(cli, ["backtest", str(deaf), "--logs", str(sim_day.path)])
    assert result.exit_code == 1
    assert json.loads(result.output)["missed"] == ["latency_regression-backend-ts"]


def test_export_limit_keeps_the_oldest_entries(serve, sim_day, tmp_path):
    server = serve(LocalLogs([sim_day.path]), max_entries=4)
    out = tmp_path / "few.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--url",
            server.url,
            "-q",
            '{service="redis"}',
            "--start",
            "2026-11-28T06:00:00Z",
            "--end",
            "2026-11-28T07:00:00Z",
            "-o",
            str(out),
            "--page-limit",
            "4",
            "--limit",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in out.open("rb")]
    with open(sim_day.path, "rb") as f:
        redis = [orjson.loads(line) for line in f]
    redis = sorted(r["ts"] for r in redis if r["labels"]["service"] == "redis")[:10]
    assert [to_ns(r["timestamp"]) for r in rows] == redis


def test_export_keeps_structured_metadata_through_a_round_trip(serve, tmp_path):
    base = 1_700_000_000 * 10**9
    source = LocalLogs([])
    source.add_lines(
        {"app": "api"},
        [
            (base + i * 10**9, f"line {i}", {"trace_id": f"t{i % 3}"} if i % 2 else {})
            for i in range(25)
        ],
    )
    server = serve(source)
    out = tmp_path / "sm.jsonl"
    args = ["export", "--url", server.url, "-q", '{app="api"}', "-o", str(out)]
    args += ["--start", str(base), "--end", str(base + 60 * 10**9), "--page-limit", "7"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "categorize-labels" in server.requests[0]["headers"]["X-Loki-Response-Encoding-Flags"]
    rows = [orjson.loads(line) for line in out.open("rb")]
    assert rows[1] == {
        "labels": {"app": "api"},
        "line": "line 1",
        "timestamp": "2023-11-14T22:13:21Z",
        "structuredMetadata": {"trace_id": "t1"},
    }
    assert "structuredMetadata" not in rows[0]
    again = LocalLogs([out])
    for query in ['{app="api"}', '{app="api"} | trace_id="t2"']:
        for categorize in (False, True):
            assert again.query_range(
                query, base, base + 60 * 10**9, limit=100, categorize_labels=categorize
            ) == source.query_range(
                query, base, base + 60 * 10**9, limit=100, categorize_labels=categorize
            )
    metric = 'sum by (trace_id) (count_over_time({app="api"}[1m]))'
    assert again.query(metric, time=base + 60 * 10**9) == source.query(
        metric, time=base + 60 * 10**9
    )
