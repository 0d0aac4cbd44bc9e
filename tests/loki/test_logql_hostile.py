"""Hostile input gives clear errors: huge durations, deep nesting, FIFOs, bad timestamps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsbook.errors import ConfigError
from opsbook.loki.cli import cli
from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, LogQLParseError, parse
from opsbook.loki.source import open_source

S = 1_000_000_000
T = 1_700_000_000 * S


@pytest.fixture()
def logs() -> LocalLogs:
    store = LocalLogs([])
    store.add_lines({"app": "api"}, [(T - 10 * S, "a"), (T - 5 * S, "b")])
    return store


@pytest.mark.parametrize(
    "query",
    [
        'count_over_time({app="api"}[99999999999d])',
        'count_over_time({app="api"}[1m] offset 99999999999d)',
        'count_over_time({app="api"}[9999999999999999999h])',
        'count_over_time({app="api"} | d > 99999999999d [1m])',
    ],
)
def test_durations_beyond_int64_are_parse_errors(logs: LocalLogs, query: str) -> None:
    with pytest.raises(LogQLParseError, match="duration out of range"):
        logs.query(query, time=T)


def test_ranges_reaching_before_any_time_do_not_wrap(logs: LocalLogs) -> None:
    # 100000 days fit in int64 ns; range + offset do not: the window saturates
    data = logs.query('count_over_time({app="api"}[100000d])', time=T)
    assert [r["value"][1] for r in data["result"]] == ["2"]
    data = logs.query('count_over_time({app="api"}[100000d] offset 100000d)', time=T)
    assert data["result"] == []


def test_huge_step_is_refused(logs: LocalLogs) -> None:
    with pytest.raises(LogQLEvalError, match="out of range"):
        logs.query_range('count_over_time({app="api"}[1m])', T - S, T, step="99999999999d")


@pytest.mark.parametrize(
    "query",
    [
        "sum(" * 400 + 'count_over_time({app="api"}[1m])' + ")" * 400,
        " + ".join(["vector(1)"] * 500),
        "2" + " ^ 2" * 500,
        "(" * 300 + "vector(1)" + ")" * 300,
        '{app="api"} | ' + "(" * 300 + 'a="b"' + ")" * 300,
    ],
)
def test_deep_nesting_is_a_clear_parse_error(query: str) -> None:
    with pytest.raises(LogQLParseError, match="nests deeper than 100 levels"):
        parse(query)


def test_nesting_within_the_limit_evaluates(logs: LocalLogs) -> None:
    query = "sum(" * 40 + 'count_over_time({app="api"}[1m])' + ")" * 40
    assert logs.query(query, time=T)["result"][0]["value"][1] == "2"
    assert logs.query(" + ".join(["vector(1)"] * 50), time=T)["result"][0]["value"][1] == "50"


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "stream.jsonl"
    os.mkfifo(path)
    return path


def test_fifo_is_refused_not_read(fifo: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        LocalLogs(fifo)


def test_fifo_refused_through_open_source_and_a_folder(fifo: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        open_source(log_paths=[str(fifo)])
    with pytest.raises(ConfigError, match="not a regular file"):
        open_source(log_paths=[str(fifo.parent)])  # the folder's *.jsonl is the FIFO


def test_fifo_refused_by_the_cli(fifo: Path) -> None:
    rules = Path(__file__).parents[2] / "runbooks" / "alerts" / "p0-alerts.yaml"
    result = CliRunner().invoke(cli, ["backtest", str(rules), "--logs", str(fifo)])
    assert result.exit_code != 0
    assert "not a regular file" in result.output


def test_invalid_timestamp_names_file_and_line_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"labels": {"app": "api"}, "line": "a", "timestamp": "2026-11-28T06:00:00Z"}
    rows = [good, good, {**good, "timestamp": "2026-13-28T06:00:00Z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=f"{path}:3: invalid timestamp"):
        LocalLogs(path)
    rules = Path(__file__).parents[2] / "runbooks" / "alerts" / "p0-alerts.yaml"
    result = CliRunner().invoke(cli, ["backtest", str(rules), "--logs", str(path)])
    assert result.exit_code != 0
    assert f"{path}:3: invalid timestamp" in result.output


@pytest.mark.parametrize("fast", [True, False], ids=["columnar", "general"])
def test_deeply_nested_json_line_is_a_parser_error_not_a_crash(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsbook.loki.logql import columnar

    monkeypatch.setattr(columnar, "FAST_PATH", fast)
    deep = '{"a":' * 990 + "1" + "}" * 990
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(T - 3 * S, deep), (T - 2 * S, '{"a": "5"}')])
    query = 'sum by (a) (count_over_time({app="x"} | json | __error__="" [1m]))'
    assert [(r["metric"], r["value"][1]) for r in store.query(query, time=T)["result"]] == [
        ({"a": "5"}, "1")
    ]
    data = store.query_range('{app="x"} | json | __error__!=""', T - 10 * S, T)
    ((stream, (ts, _line)),) = [(s["stream"], v) for s in data["result"] for v in s["values"]]
    assert (
        stream["__error__"] == "JSONParserErr"
        and "nested too deeply" in stream["__error_details__"]
    )
