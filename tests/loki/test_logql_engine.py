"""Engine semantics with hand-computed expectations, one construct per test group.

Time base: T0 is a multiple of 60 s; entries are placed at T0 + k seconds so windows
``(t - R, t]`` can be checked by hand.
"""

from __future__ import annotations

import json
import math

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, LogQLParseError

S = 1_000_000_000
T0 = 1_699_999_980  # seconds, divisible by 60


def ns(seconds: float) -> int:
    return int(round((T0 + seconds) * S))


def vec(logs: LocalLogs, query: str, at: float) -> dict[tuple[tuple[str, str], ...], float]:
    data = logs.query(query, time=ns(at))
    assert data["resultType"] == "vector"
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in data["result"]}


def single(logs: LocalLogs, query: str, at: float) -> float:
    result = vec(logs, query, at)
    assert len(result) == 1, result
    return next(iter(result.values()))


@pytest.fixture()
def logs() -> LocalLogs:
    store = LocalLogs([])
    api = [
        (1, {"status": 200, "latency_ms": 10, "route": "/a", "user": {"id": 7, "name": "x"}}),
        (2, {"status": 500, "latency_ms": 30, "route": "/a", "tags": [1, 2], "n": None}),
        (3, {"status": 503, "latency_ms": 50.5, "route": "/b", "level": "ERROR"}),
        (30, {"status": 404, "latency_ms": 20, "route": "/b"}),
        (60, {"status": 200, "latency_ms": 40, "route": "/a"}),
    ]
    store.add_lines({"app": "api", "env": "prod"}, [(ns(t), json.dumps(body)) for t, body in api])
    rag = [
        (5, 'level=info msg="search ok" dur=120ms size=2KB'),
        (6, "level=error msg=timeout dur=2.5s size=1KiB"),
        (59, "level=error msg=failed dur=bad size=3MB"),
    ]
    store.add_lines({"app": "rag", "env": "prod"}, [(ns(t), line) for t, line in rag])
    store.add_lines({"app": "redis"}, [(ns(10), "plain text line")])
    return store


# ----------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "apps"),
    [
        ('{app="api"}', {"api"}),
        ('{app=~"ap"}', set()),  # anchored: "ap" does not match "api"
        ('{app=~"ap.*"}', {"api"}),
        ('{app=~"api|rag"}', {"api", "rag"}),
        ('{app=~".+", app!~"api|rag"}', {"redis"}),
        ('{env="prod", app!="api"}', {"rag"}),
        ('{env=~".+"}', {"api", "rag"}),
        ('{app=~".+", env=""}', {"redis"}),  # missing label matches the empty string
        ('{app=~"(?i)API"}', {"api"}),
    ],
)
def test_selector_matching(logs: LocalLogs, selector: str, apps: set[str]) -> None:
    data = logs.query_range(selector, ns(0), ns(100), limit=1000)
    assert {s["stream"]["app"] for s in data["result"]} == apps


# ----------------------------------------------------------------------------- line filters


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        ('|= "error"', 2),
        ('!= "error"', 1),
        ('|= "error" or "info"', 3),
        ('!= "error" or "info"', 0),  # negated or = none of them
        ('|~ "dur=[0-9.]+s"', 1),
        ('!~ "msg=t.*"', 2),
        ('|= "level" |= "timeout"', 1),
        ('|= ""', 3),
        ('|= "ERROR"', 0),  # case sensitive
        ('|~ "(?i)ERROR"', 2),
        ('|> "level=<_> msg=<_> dur=<_>"', 3),
        ('|> "level=error <_>"', 2),
        ('!> "level=error <_>"', 1),
    ],
)
def test_line_filters(logs: LocalLogs, pipeline: str, expected: int) -> None:
    data = logs.query_range('{app="rag"} ' + pipeline, ns(0), ns(100), limit=100)
    assert sum(len(s["values"]) for s in data["result"]) == expected


# ----------------------------------------------------------------------------- parsers


def streams(logs: LocalLogs, query: str) -> list[dict[str, str]]:
    data = logs.query_range(query, ns(0), ns(100), limit=1000, direction="forward")
    rows = []
    for stream in data["result"]:
        rows.extend(dict(stream["stream"], _line=v[1], _ts=v[0]) for v in stream["values"])
    return sorted(rows, key=lambda r: r["_ts"])


def test_json_flattens_nested_and_skips_arrays_and_null(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="api"} | json')
    first, second, third = rows[0], rows[1], rows[2]
    assert first["user_id"] == "7" and first["user_name"] == "x" and first["status"] == "200"
    assert "tags" not in second and "n" not in second
    assert third["latency_ms"] == "50.5" and third["level"] == "ERROR"


def test_json_keeps_number_text_and_renames_clashes() -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(1), '{"app": "inner", "v": 2.50, "e": 1e3, "a-b": 1}')])
    (row,) = streams(store, '{app="x"} | json')
    assert row["app"] == "x" and row["app_extracted"] == "inner"
    assert row["v"] == "2.50" and row["e"] == "1e3" and row["a_b"] == "1"


def test_json_expressions(logs: LocalLogs) -> None:
    rows = streams(
        logs, '{app="api"} | json uid="user.id", s="status", missing="nope.x", tag="tags[1]"'
    )
    assert rows[0]["uid"] == "7" and rows[0]["s"] == "200" and "missing" not in rows[0]
    assert rows[1]["tag"] == "2"
    assert "route" not in rows[0]


def test_json_error_sets_error_labels() -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(1), "not json"), (ns(2), '{"a": 1}')])
    rows = streams(store, '{app="x"} | json')
    assert rows[0]["__error__"] == "JSONParserErr" and rows[0]["__error_details__"]
    assert "__error__" not in rows[1]
    assert len(streams(store, '{app="x"} | json | __error__=""')) == 1
    assert len(streams(store, '{app="x"} | json | __error__!=""')) == 1
    rows = streams(store, '{app="x"} | json | drop __error__, __error_details__')
    assert all("__error__" not in r for r in rows)


def test_logfmt(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="rag"} | logfmt')
    assert rows[0]["msg"] == "search ok" and rows[0]["dur"] == "120ms"
    assert rows[1]["level"] == "error" and rows[1]["msg"] == "timeout"
    rows = streams(logs, '{app="rag"} | logfmt m="msg"')
    assert rows[0]["m"] == "search ok" and "level" not in rows[0]


def test_regexp_and_pattern(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="rag"} | regexp "level=(?P<lvl>\\\\w+) msg=(?P<m>\\\\S+)"')
    assert [r["lvl"] for r in rows] == ["info", "error", "error"]
    assert rows[0]["m"] == '"search'
    rows = streams(logs, '{app="rag"} | pattern "level=<lvl> msg=<_> dur=<d> <_>"')
    assert [r["d"] for r in rows] == ["120ms", "2.5s", "bad"]
    assert rows[0]["lvl"] == "info"


# ----------------------------------------------------------------------------- label filters


@pytest.mark.parametrize(
    ("flt", "statuses"),
    [
        ("status >= 500", ["500", "503"]),
        ("status == 200", ["200", "200"]),
        ("status = 200", ["200", "200"]),
        ("status != 200", ["500", "503", "404"]),
        ('status =~ "5.."', ["500", "503"]),
        ('route="/b" and status > 500', ["503"]),
        ('route="/b", status > 500', ["503"]),
        ('route="/b" status > 500', ["503"]),
        ("status < 300 or status > 500", ["200", "503", "200"]),
        ('route="/a" or route="/b" and status=404', ["200", "500", "404", "200"]),
        ('(route="/a" or route="/b") and status=404', ["404"]),
        ("latency_ms > 25.5", ["500", "503", "200"]),
        ("missing > 1", []),
    ],
)
def test_label_filters(logs: LocalLogs, flt: str, statuses: list[str]) -> None:
    rows = streams(logs, '{app="api"} | json | ' + flt)
    assert [r["status"] for r in rows] == statuses


def test_duration_and_bytes_filters(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="rag"} | logfmt | dur > 1s')
    assert [r["msg"] for r in rows] == ["timeout", "failed"]  # "bad" → LabelFilterErr, kept
    assert rows[1]["__error__"] == "LabelFilterErr"
    rows = streams(logs, '{app="rag"} | logfmt | size >= 2KB | __error__=""')
    assert [r["size"] for r in rows] == ["2KB", "3MB"]
    rows = streams(logs, '{app="rag"} | logfmt | size < 1.5KB')
    assert [r["size"] for r in rows] == ["1KiB"]


def test_numeric_filter_on_text_sets_label_filter_error() -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(1), "v=abc"), (ns(2), "v=5"), (ns(3), "v=1")])
    rows = streams(store, '{app="x"} | logfmt | v > 2')
    assert [(r["v"], r.get("__error__")) for r in rows] == [("abc", "LabelFilterErr"), ("5", None)]


# ----------------------------------------------------------------------------- formatting


def test_line_format_and_label_format(logs: LocalLogs) -> None:
    rows = streams(
        logs, '{app="api"} | json | line_format "{{.route | ToUpper}} {{.status}} {{.nope}}!"'
    )
    assert rows[0]["_line"] == "/A 200 !"
    rows = streams(logs, '{app="api"} | json | label_format r=route, code="{{.status}}-{{.app}}"')
    assert rows[0]["r"] == "/a" and "route" not in rows[0] and rows[0]["code"] == "200-api"
    rows = streams(logs, '{app="api"} | line_format `{{ printf "%s:%s" .app .env }}`')
    assert rows[0]["_line"] == "api:prod"
    rows = streams(
        logs,
        '{app="api"} | json | line_format "{{ if eq .status \\"200\\" }}ok{{ else }}bad{{ end }}"',
    )
    assert [r["_line"] for r in rows] == ["ok", "bad", "bad", "bad", "ok"]


def test_line_format_changes_what_later_filters_see(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="api"} | json | line_format "{{.route}}" |= "/b"')
    assert len(rows) == 2


def test_drop_and_keep(logs: LocalLogs) -> None:
    rows = streams(logs, '{app="api"} | json | keep app, status')
    assert set(rows[0]) - {"_line", "_ts"} == {"app", "status"}
    rows = streams(logs, '{app="api"} | json | drop env, status="200", user_id')
    assert "env" not in rows[0] and "status" not in rows[0] and "user_id" not in rows[0]
    assert rows[1]["status"] == "500"


# ----------------------------------------------------------------------------- range aggregations


def test_window_is_left_open_right_closed(logs: LocalLogs) -> None:
    # api entries at 1, 2, 3, 30, 60 s; window (t - R, t]
    assert single(logs, 'count_over_time({app="api"}[1m])', 60) == 5
    assert single(logs, 'count_over_time({app="api"}[1m])', 61) == 4
    assert single(logs, 'count_over_time({app="api"}[29s])', 30) == 3
    assert single(logs, 'count_over_time({app="api"}[27s])', 30) == 1
    assert vec(logs, 'count_over_time({app="api"}[10s])', 20) == {}  # empty window: no sample


def test_rate_bytes_and_offset(logs: LocalLogs) -> None:
    assert single(logs, 'rate({app="api"}[1m])', 60) == pytest.approx(5 / 60)
    assert single(logs, 'bytes_over_time({app="redis"}[1m])', 60) == 15
    assert single(logs, 'bytes_rate({app="redis"}[1m])', 60) == pytest.approx(15 / 60)
    assert single(logs, 'count_over_time({app="api"}[1m] offset 30s)', 60) == 4
    assert single(logs, 'bytes_over_time({app="redis"} | line_format "ab" [1m])', 60) == 2


UNWRAP = '{app="api"} | json | unwrap latency_ms'


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("sum_over_time", 150.5),
        ("avg_over_time", 30.1),
        ("min_over_time", 10),
        ("max_over_time", 50.5),
        ("first_over_time", 10),
        ("last_over_time", 40),
        ("stdvar_over_time", 204.04),
        ("stddev_over_time", math.sqrt(204.04)),
        ("rate", 150.5 / 60),
    ],
)
def test_unwrapped_range_functions(logs: LocalLogs, func: str, expected: float) -> None:
    # keep: one series for all entries (json would otherwise give one series per entry)
    query = f'{func}({{app="api"}} | json | keep app, latency_ms | unwrap latency_ms [1m])'

    assert single(logs, query, 60) == pytest.approx(expected)


@pytest.mark.parametrize(("q", "expected"), [(0.5, 30), (0.95, 48.4), (0, 10), (1, 50.5)])
def test_quantile_over_time(logs: LocalLogs, q: float, expected: float) -> None:
    query = f"quantile_over_time({q}, {UNWRAP} [1m]) by (app)"
    assert vec(logs, query, 60) == {(("app", "api"),): pytest.approx(expected)}


def test_quantile_out_of_range_is_infinite(logs: LocalLogs) -> None:
    assert single(logs, f"quantile_over_time(2, {UNWRAP} [1m]) by (app)", 60) == math.inf


def test_negative_quantile_is_a_syntax_error_as_in_loki(logs: LocalLogs) -> None:
    with pytest.raises(LogQLParseError, match="unexpected -, expecting NUMBER"):
        logs.query(f"quantile_over_time(-1, {UNWRAP} [1m]) by (app)", time=ns(60))


def test_unwrap_drops_label_and_groups(logs: LocalLogs) -> None:
    result = vec(logs, f"max_over_time({UNWRAP} [1m]) by (route)", 60)
    assert result == {(("route", "/a"),): 40, (("route", "/b"),): 50.5}
    result = vec(
        logs,
        'max_over_time({app="api"} | json | keep app, latency_ms | unwrap latency_ms [1m])',
        60,
    )
    assert result == {(("app", "api"),): 50.5}


def test_unwrap_conversion_error_fails_query_unless_filtered(logs: LocalLogs) -> None:
    query = 'avg_over_time({app="rag"} | logfmt | unwrap duration(dur) [1m]) by (level)'
    with pytest.raises(LogQLEvalError, match="SampleExtractionErr"):
        logs.query(query, time=ns(60))
    filtered = query.replace("unwrap duration(dur)", 'unwrap duration(dur) | __error__=""')
    assert vec(logs, filtered, 60) == {
        (("level", "info"),): pytest.approx(0.12),
        (("level", "error"),): pytest.approx(2.5),
    }
    sizes = 'sum(sum_over_time({app="rag"} | logfmt | unwrap bytes(size) [1m]))'
    assert single(logs, sizes, 60) == 2000 + 1024 + 3_000_000


def test_parser_error_fails_metric_query(logs: LocalLogs) -> None:
    with pytest.raises(LogQLEvalError, match="JSONParserErr"):
        logs.query('sum(count_over_time({app="redis"} | json [1m]))', time=ns(60))
    assert vec(logs, 'count_over_time({app="redis"} | json | __error__="" [1m])', 60) == {}
    # an error outside every evaluated window does not fail the query
    assert vec(logs, 'count_over_time({app="redis"} | json [5s])', 60) == {}


def test_absent_over_time(logs: LocalLogs) -> None:
    query = 'absent_over_time({app="api", env=~"p.*"}[10s])'
    assert vec(logs, query, 20) == {(("app", "api"),): 1}
    assert vec(logs, query, 5) == {}


# ----------------------------------------------------------------------------- vector aggregation

ALL = 'count_over_time({app=~".+"}[1m])'  # at 60: api 5, rag 3, redis 1
API = (("app", "api"), ("env", "prod"))
RAG = (("app", "rag"), ("env", "prod"))
REDIS = (("app", "redis"),)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"sum({ALL})", {(): 9}),
        (f"sum by (env) ({ALL})", {(("env", "prod"),): 8, (): 1}),
        (f"sum({ALL}) by (env)", {(("env", "prod"),): 8, (): 1}),
        (f"sum without (app) ({ALL})", {(("env", "prod"),): 8, (): 1}),
        (f"count({ALL})", {(): 3}),
        (f"avg({ALL})", {(): 3}),
        (f"min({ALL})", {(): 1}),
        (f"max by (env) ({ALL})", {(("env", "prod"),): 5, (): 1}),
        (f"stddev({ALL})", {(): pytest.approx(math.sqrt(8 / 3))}),
        (f"stdvar({ALL})", {(): pytest.approx(8 / 3)}),
        (f"topk(2, {ALL})", {API: 5, RAG: 3}),
        (f"bottomk(1, {ALL})", {REDIS: 1}),
        (f"topk by (env) (1, {ALL})", {API: 5, REDIS: 1}),
    ],
)
def test_vector_aggregations(logs: LocalLogs, query: str, expected: dict) -> None:
    assert vec(logs, query, 60) == expected


def test_sort_orders_instant_vectors(logs: LocalLogs) -> None:
    data = logs.query(f"sort({ALL})", time=ns(60))
    assert [r["value"][1] for r in data["result"]] == ["1", "3", "5"]
    data = logs.query(f"sort_desc({ALL})", time=ns(60))
    assert [r["value"][1] for r in data["result"]] == ["5", "3", "1"]


# ----------------------------------------------------------------------------- binary operations


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"{ALL} * 2", {API: 10, RAG: 6, REDIS: 2}),
        (f"2 - {ALL}", {API: -3, RAG: -1, REDIS: 1}),
        (f"{ALL} ^ 2 % 7", {API: 4, RAG: 2, REDIS: 1}),
        (f"{ALL} > 2", {API: 5, RAG: 3}),
        (f"2 < {ALL}", {API: 5, RAG: 3}),
        (f"{ALL} > bool 2", {API: 1, RAG: 1, REDIS: 0}),
        (f"{ALL} == 3", {RAG: 3}),
        (f"{ALL} / {ALL}", {API: 1, RAG: 1, REDIS: 1}),
        (f"{ALL} > bool {ALL}", {API: 0, RAG: 0, REDIS: 0}),
        (f'{ALL} and count_over_time({{app="api"}}[1m])', {API: 5}),
        (f'{ALL} unless count_over_time({{app="api"}}[1m])', {RAG: 3, REDIS: 1}),
        (f'{ALL} and on (env) count_over_time({{app="api"}}[1m])', {API: 5, RAG: 3}),
        ('count_over_time({app="nope"}[1m]) or vector(0)', {(): 0}),
        (f'count_over_time({{app="redis"}}[1m]) or {ALL}', {REDIS: 1, API: 5, RAG: 3}),
        (
            'count_over_time({app="api"}[1m]) + on () count_over_time({app="redis"}[1m])',
            {(): 6},
        ),
        (
            'count_over_time({app="api"}[1m]) - ignoring (app) count_over_time({app="rag"}[1m])',
            {(("env", "prod"),): 2},
        ),
        (
            f"{ALL} / on (env) group_left sum by (env) ({ALL})",
            {API: 0.625, RAG: 0.375, REDIS: 1},
        ),
        (
            f'sum by (env) ({ALL}) * on (env) group_right count_over_time({{env="prod"}}[1m])',
            {API: 40, RAG: 24},
        ),
        (
            'label_replace(count_over_time({app="api"}[1m]), "svc", "s-$1", "app", "(a.*)")',
            {(("app", "api"), ("env", "prod"), ("svc", "s-api")): 5},
        ),
        (
            'label_replace(count_over_time({app="api"}[1m]), "svc", "$1", "app", "(x.*)")',
            {API: 5},
        ),
        (
            'label_replace(count_over_time({app="api"}[1m]), "app", "", "app", ".*")',
            {(("env", "prod"),): 5},
        ),
    ],
)
def test_binary_operations(logs: LocalLogs, query: str, expected: dict) -> None:
    assert vec(logs, query, 60) == expected


def test_division_by_zero_is_nan(logs: LocalLogs) -> None:
    data = logs.query('count_over_time({app="api"}[1m]) / 0', time=ns(60))
    assert data["result"][0]["value"][1] == "NaN"
    data = logs.query('count_over_time({app="api"}[1m]) % 0', time=ns(60))
    assert data["result"][0]["value"][1] == "NaN"


def test_many_to_many_matching_fails(logs: LocalLogs) -> None:
    with pytest.raises(LogQLEvalError, match="many-to-many"):
        logs.query(f"{ALL} + on (env) {ALL}", time=ns(60))


def test_scalar_and_vector_results(logs: LocalLogs) -> None:
    data = logs.query("1 + 1", time=ns(60))
    assert data == {"resultType": "scalar", "result": [T0 + 60.0, "2"]}
    data = logs.query("vector(3)", time=ns(60))
    assert data["result"] == [{"metric": {}, "value": [T0 + 60.0, "3"]}]
    with pytest.raises(LogQLEvalError, match="instant query"):
        logs.query('{app="api"}', time=ns(60))


# ----------------------------------------------------------------------------- range evaluation


def test_range_steps_start_at_start_without_alignment(logs: LocalLogs) -> None:
    data = logs.query_range('count_over_time({app="api"}[1m])', ns(7), ns(65), step="30s")
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"] == {"app": "api", "env": "prod"}
    assert series["values"] == [[T0 + 7.0, "3"], [T0 + 37.0, "4"]]


def test_step_forms_and_default_step(logs: LocalLogs) -> None:
    query = 'count_over_time({app="api"}[1m])'
    by_text = logs.query_range(query, ns(0), ns(120), step="30s")
    assert logs.query_range(query, ns(0), ns(120), step=30) == by_text
    assert logs.query_range(query, ns(0), ns(120), step="30") == by_text
    default = logs.query_range(query, ns(0), ns(1000))  # max(1000/250, 1) = 4 s
    times = [v[0] for v in default["result"][0]["values"]]
    assert times[1] - times[0] == 4.0
    with pytest.raises(LogQLEvalError, match="11,000"):
        logs.query_range(query, ns(0), ns(100000), step="1s")


def test_literal_in_range_query_is_a_constant_series(logs: LocalLogs) -> None:
    data = logs.query_range("vector(2)", ns(0), ns(60), step="30s")
    assert data["result"] == [
        {"metric": {}, "values": [[T0 + 0.0, "2"], [T0 + 30.0, "2"], [T0 + 60.0, "2"]]}
    ]


# ----------------------------------------------------------------------------- log queries


def test_log_query_limit_direction_and_range(logs: LocalLogs) -> None:
    data = logs.query_range('{app="api"}', ns(0), ns(60), limit=2)
    (stream,) = data["result"]
    assert [v[0] for v in stream["values"]] == [str(ns(30)), str(ns(3))]  # end exclusive
    data = logs.query_range('{app="api"}', ns(1), ns(100), limit=2, direction="forward")
    assert [v[0] for v in data["result"][0]["values"]] == [str(ns(1)), str(ns(2))]  # start incl.


def test_log_query_limit_spans_streams(logs: LocalLogs) -> None:
    data = logs.query_range('{env="prod"}', ns(0), ns(100), limit=3)
    got = sorted(int(v[0]) for s in data["result"] for v in s["values"])
    assert got == [ns(30), ns(59), ns(60)]


def test_duplicate_timestamps() -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(1), "a"), (ns(1), "b"), (ns(1), "a"), (ns(2), "a")])
    assert single(store, 'count_over_time({app="x"}[1m])', 60) == 3  # identical entry stored once
    data = store.query_range('{app="x"}', ns(0), ns(10), limit=2, direction="forward")
    assert [v[1] for v in data["result"][0]["values"]] == ["a", "b"]


def test_parsed_labels_split_streams(logs: LocalLogs) -> None:
    data = logs.query_range('{app="api"} | json | keep route', ns(0), ns(100), limit=10)
    assert sorted(s["stream"]["route"] for s in data["result"]) == ["/a", "/b"]


def test_sum_by_pushdown_keeps_semantics(logs: LocalLogs) -> None:
    query = 'sum by (route) (count_over_time({app="api"} | json | status >= 500 [1m]))'
    assert vec(logs, query, 60) == {(("route", "/a"),): 1, (("route", "/b"),): 1}
    query = 'sum by (route) (sum_over_time({app="api"} | json | unwrap latency_ms [1m]))'
    assert vec(logs, query, 60) == {(("route", "/a"),): 80, (("route", "/b"),): 70.5}
    with pytest.raises(LogQLEvalError, match="JSONParserErr"):
        logs.query('sum by (app) (count_over_time({app="redis"} | json [1m]))', time=ns(60))


@pytest.mark.parametrize("q", [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_window_quantiles_equal_sorted_quantiles(q: float) -> None:
    import random

    import numpy as np

    from opsbook.loki.logql.evaluator import _window_quantiles, quantile

    rng = random.Random(int(q * 100))
    values = [
        rng.choice([rng.random() * 100, 1.0, 2.5, math.inf, -math.inf, 0.0, 3]) for _ in range(400)
    ]
    vals = np.array(values, dtype=np.float64)
    lo = np.array([rng.randrange(0, 400) for _ in range(60)])
    hi = np.minimum(lo + np.array([rng.randrange(0, 50) for _ in range(60)]), 400)
    present = hi > lo
    fast = _window_quantiles(vals, lo, hi, present, q)
    assert fast is not None
    for i in range(60):
        if present[i]:
            expected = quantile(q, values[lo[i] : hi[i]])
            assert repr(float(fast[i])) == repr(expected)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.999])
def test_window_quantiles_of_large_windows_equal_sorted_quantiles(q: float) -> None:
    """Windows large enough that a partial sort leaves the rest unordered (small ones end
    up sorted whatever the method): the value above the first order statistic is found."""
    import random

    import numpy as np

    from opsbook.loki.logql.evaluator import _window_quantiles, quantile

    rng = random.Random(int(q * 1000))
    values = [rng.lognormvariate(4.5, 0.6) for _ in range(6000)]
    values[::7] = [round(v) for v in values[::7]]  # some ties
    vals = np.array(values, dtype=np.float64)
    lo = np.array([rng.randrange(0, 3000) for _ in range(300)])
    hi = lo + np.array([rng.randrange(100, 3000) for _ in range(300)])
    fast = _window_quantiles(vals, lo, hi, np.ones(300, dtype=bool), q)
    assert fast is not None
    assert [repr(float(v)) for v in fast] == [
        repr(quantile(q, values[a:b])) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)
    ]


@pytest.mark.parametrize(("value", "q"), [(math.nan, 0.5), (-0.0, 0.5), (1.0, 1.5), (1.0, -1)])
def test_window_quantiles_leave_unordered_cases_to_sorted(value: float, q: float) -> None:
    import numpy as np

    from opsbook.loki.logql.evaluator import _window_quantiles

    vals = np.array([1.0, value, 0.0])
    assert _window_quantiles(vals, np.array([0]), np.array([3]), np.array([True]), q) is None
