"""Rules checked against Loki's documentation, one table per area (hand-computed answers).

Sources (read for behaviour, nothing copied): ``docs/sources/query/ip.md``,
``docs/sources/query/metric_queries.md``, ``docs/sources/query/log_queries/_index.md``
and ``docs/sources/get-started/labels/structured-metadata.md`` in grafana/loki; where the
log-queries page and the engine disagree (label-filter precedence) the engine wins, as
grafana/loki#23902 corrected the page: ``and`` before ``or``, and ``|`` starts a stage.
Metric queries run on both execution paths.
"""

from __future__ import annotations

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, LogQLParseError, columnar

S = 1_000_000_000
T0 = 1_700_000_040  # a multiple of 60 s


def ns(seconds: float) -> int:
    return T0 * S + int(seconds * S)


@pytest.fixture(params=[True, False], ids=["columnar", "general"])
def logs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LocalLogs:
    monkeypatch.setattr(columnar, "FAST_PATH", request.param)
    store = LocalLogs([])
    store.add_lines(
        {"job": "ip"},
        [
            (ns(1), "addr=192.168.4.2 x"),
            (ns(2), "addr=192.168.9.9 y"),
            (ns(3), "addr=10.10.15.7 z"),
            (ns(4), "addr=2001:db8::5 w"),
            (ns(5), "3.180.71.3 - - GET"),
            (ns(6), "93.180.71.3 - - GET"),
        ],
    )
    store.add_lines(
        {"job": "filters"},
        [
            (ns(1), "duration=30ms size=30KB method=POST"),
            (ns(2), "duration=10ms size=1KB method=GET"),
            (ns(3), "duration=10ms size=30KB method=GET"),
            (ns(4), "duration=oops size=1KB method=GET"),
            (ns(5), "size=1KB method=PUT"),
        ],
    )
    store.add_lines(
        {"job": "example"},
        [
            (ns(1), "a", {"pod": "myservice-abc1234-56789", "trace_id": "0242ac120002"}),
            (ns(2), "b", {"pod": "myservice-abc1234-56789", "trace_id": "ffff"}),
            (ns(3), "c", {"pod": "other"}),
            (ns(4), "d"),
        ],
    )
    return store


def lines(store: LocalLogs, query: str) -> list[str]:
    data = store.query_range(query, ns(0), ns(60), limit=1000, direction="forward")
    return sorted(value[1] for stream in data["result"] for value in stream["values"])


def series(store: LocalLogs, query: str) -> dict[tuple[tuple[str, str], ...], str]:
    data = store.query(query, ns(59))
    return {tuple(sorted(r["metric"].items())): r["value"][1] for r in data["result"]}


# ----------------------------------------------------------------------------- ip.md

IP_DOCS = [
    ('{job="ip"} |= ip("192.168.4.5/16")', ["addr=192.168.4.2 x", "addr=192.168.9.9 y"]),
    (  # 192.168.4.2 lies below the range: every line is kept
        '{job="ip"} != ip("192.168.4.5-192.168.4.20")',
        sorted(
            [
                "addr=192.168.4.2 x",
                "addr=192.168.9.9 y",
                "addr=10.10.15.7 z",
                "addr=2001:db8::5 w",
                "3.180.71.3 - - GET",
                "93.180.71.3 - - GET",
            ]
        ),
    ),
    ('{job="ip"} |= ip("3.180.71.3")', ["3.180.71.3 - - GET"]),  # not 93.180.71.3
    ('{job="ip"} |= ip("2001:db8::/32")', ["addr=2001:db8::5 w"]),
    ('{job="ip"} | logfmt | addr = ip("2001:db8::1-2001:db8::8")', ["addr=2001:db8::5 w"]),
    (
        '{job="ip"} | logfmt | addr = ip("192.168.4.5/16") | addr != ip("192.168.4.2")',
        ["addr=192.168.9.9 y"],
    ),
    (
        '{job="ip"} | logfmt | addr = ip("192.168.4.0/24") or addr = ip("10.10.15.0/24")',
        ["addr=10.10.15.7 z", "addr=192.168.4.2 x"],
    ),
]


@pytest.mark.parametrize(("query", "expected"), IP_DOCS)
def test_ip_matching_as_documented(logs: LocalLogs, query: str, expected: list[str]) -> None:
    assert lines(logs, query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('{job="ip"} |~ ip("3.180.71.3")', "ip() line filters only take |= and !="),
        ('{job="ip"} | logfmt | addr > ip("192.168.4.0/24")', "ip() filter only supports"),
    ],
)
def test_ip_operations_the_docs_do_not_allow_are_refused(
    logs: LocalLogs, query: str, message: str
) -> None:
    with pytest.raises(LogQLParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lines(logs, query)


# ----------------------------------------------------------------------------- metric_queries.md

UNWRAP = '({job="filters"} | logfmt | unwrap size_b [1m])'
GROUPING = [  # "Except for sum_over_time, absent_over_time, rate and rate_counter, unwrapped
    # range aggregations support grouping."
    (f"sum_over_time{UNWRAP} by (method)", "grouping not allowed for sum_over_time"),
    (f"absent_over_time{UNWRAP} by (method)", "grouping not allowed for absent_over_time"),
    (f"rate{UNWRAP} by (method)", "grouping not allowed for rate aggregation"),
    (f"rate_counter{UNWRAP} by (method)", "grouping not allowed for rate_counter"),
    (f"avg_over_time{UNWRAP} by (method)", None),
    (f"max_over_time{UNWRAP} by (method)", None),
    (f"quantile_over_time(0.5, {UNWRAP[1:]} by (method)", None),
    # offset follows the range immediately
    ('count_over_time({job="ip"}[5m]) offset 5m', "unexpected IDENT 'offset'"),
    ('count_over_time({job="ip"}[5m] offset 5m)', None),
    # approx_topk: no grouping
    ('approx_topk by (job) (1, count_over_time({job="ip"}[1m]))', "does not support grouping"),
]


@pytest.mark.parametrize(("query", "refusal"), GROUPING)
def test_where_metric_queries_take_grouping_and_offset(
    logs: LocalLogs, query: str, refusal: str | None
) -> None:
    if refusal is None:
        assert isinstance(series(logs, query), dict)
    else:
        with pytest.raises(LogQLParseError, match=refusal):
            series(logs, query)


def test_approx_topk_is_for_instant_queries_only(logs: LocalLogs) -> None:
    query = 'approx_topk(1, sum by (job) (count_over_time({job=~"ip|filters"}[1m])))'
    assert series(logs, query) == {(("job", "ip"),): "6"}
    with pytest.raises(LogQLEvalError, match="only supported for instant queries"):
        logs.query_range(query, ns(0), ns(60), step="30s")


def test_quantile_beyond_one_is_infinity(logs: LocalLogs) -> None:
    query = (
        'quantile_over_time(1.5, {job="filters"} | logfmt | unwrap duration(duration)'
        ' | __error__="" [1m])'
    )
    assert set(series(logs, f"max({query})").values()) == {"+Inf"}


# ----------------------------------------------------------------------------- log_queries/_index.md

LABEL_FILTERS = [
    # and before or (grafana/loki#23902): d>=20ms or (GET and size<=20KB); line 4's
    # duration does not convert: that filter lets it through with __error__
    ('duration >= 20ms or method="GET" and size <= 20KB', ["1", "2", "4"]),
    ('(duration >= 20ms or method="GET") and size <= 20KB', ["2", "4"]),
    ('duration >= 20ms or (method="GET" and size <= 20KB)', ["1", "2", "4"]),
    # a comma or a space joins the predicate before it to all that follows (the grammar
    # shifts): d>=20ms or (size==1KB and method!~"P.*"); "|" starts another stage
    ('duration >= 20ms or size == 1KB , method!~"P.*"', ["1", "2", "4"]),
    ('duration >= 20ms or size == 1KB method!~"P.*"', ["1", "2", "4"]),
    ('duration >= 20ms or size == 1KB | method!~"P.*"', ["2", "4"]),
    # a failed conversion keeps the line with __error__; a missing label drops it
    ("duration > 1ms", ["1", "2", "3", "4"]),
    ('duration > 1ms | __error__=""', ["1", "2", "3"]),
    ('duration > 1ms | __error__!=""', ["4"]),
    # only a string filter drops a line carrying __error__
    ('duration > 1ms | method="POST"', ["1"]),
    ("duration > 1ms | size > 1MB", ["4"]),
]


@pytest.mark.parametrize(("flt", "rows"), LABEL_FILTERS)
def test_label_filter_rules(logs: LocalLogs, flt: str, rows: list[str]) -> None:
    numbered = {
        "duration=30ms size=30KB method=POST": "1",
        "duration=10ms size=1KB method=GET": "2",
        "duration=10ms size=30KB method=GET": "3",
        "duration=oops size=1KB method=GET": "4",
        "size=1KB method=PUT": "5",
    }
    found = lines(logs, f'{{job="filters"}} | logfmt | {flt}')
    assert sorted(numbered[line] for line in found) == rows


PARSER_REFUSALS = [
    ('{job="ip"} | pattern "<_> x"', "at least one capture is required"),
    ('{job="ip"} | pattern "<a><b>"', "consecutive capture"),
    ('{job="ip"} | regexp "(\\\\d+)"', "at least one named capture must be supplied"),
    ('{job="ip"} | regexp "(?P<a>x)(?P<a>y)"', "duplicate extracted label name 'a'"),
]


@pytest.mark.parametrize(("query", "message"), PARSER_REFUSALS)
def test_invalid_parser_expressions_are_refused(logs: LocalLogs, query: str, message: str) -> None:
    with pytest.raises(LogQLParseError, match=message):
        lines(logs, query)


def test_a_key_extracted_twice_keeps_the_first_value(logs: LocalLogs) -> None:
    logs.add_lines({"job": "twice"}, [(ns(1), "k=first k=second"), (ns(2), '{"k": 1, "k": 2}')])
    for parser, expected in (("logfmt", "first"), ("json", "1")):
        data = logs.query_range(f'{{job="twice"}} | {parser} | k!=""', ns(0), ns(60))
        assert [s["stream"]["k"] for s in data["result"]] == [expected]


def test_an_extracted_key_that_is_a_stream_label_gets_the_extracted_suffix(
    logs: LocalLogs,
) -> None:
    data = logs.query_range('{job="filters"} | logfmt | job="x" or method="PUT"', ns(0), ns(60))
    assert [s["stream"] for s in data["result"]] == [
        {"job": "filters", "method": "PUT", "size": "1KB"}
    ]
    logs.add_lines({"job": "clash"}, [(ns(1), "job=parsed")])
    data = logs.query_range('{job="clash"} | logfmt', ns(0), ns(60))
    assert [s["stream"] for s in data["result"]] == [{"job": "clash", "job_extracted": "parsed"}]


# ----------------------------------------------------------------------------- structured-metadata.md

METADATA = [
    ('count_over_time({job="example"} | pod="myservice-abc1234-56789" [1m])', 2),
    (
        'count_over_time({job="example"} | pod="myservice-abc1234-56789"'
        ' | trace_id="0242ac120002" [1m])',
        1,
    ),
]


@pytest.mark.parametrize(("query", "count"), METADATA)
def test_label_filters_read_structured_metadata(logs: LocalLogs, query: str, count: int) -> None:
    assert sum(int(v) for v in series(logs, query).values()) == count


def test_metadata_splits_series_until_keep_or_drop(logs: LocalLogs) -> None:
    assert series(logs, 'count_over_time({job="example"}[1m])') == {
        (("job", "example"),): "1",
        (("job", "example"), ("pod", "other")): "1",
        (("job", "example"), ("pod", "myservice-abc1234-56789"), ("trace_id", "ffff")): "1",
        (
            ("job", "example"),
            ("pod", "myservice-abc1234-56789"),
            ("trace_id", "0242ac120002"),
        ): "1",
    }
    kept = 'count_over_time({job="example"} | trace_id="0242ac120002" | keep job [1m])'
    assert series(logs, kept) == {(("job", "example"),): "1"}
    dropped = series(logs, 'count_over_time({job="example"} | drop pod, trace_id [1m])')
    assert dropped == {(("job", "example"),): "4"}
