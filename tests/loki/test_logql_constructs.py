"""ip() filters, rate_counter, approx_topk, hex literals, NaN/Inf ordering (hand-computed).

Metric queries run on both execution paths (columnar on and off).
"""

from __future__ import annotations

import json

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, LogQLParseError, columnar

S = 1_000_000_000
T0 = 1_699_999_980


def ns(seconds: float) -> int:
    return T0 * S + int(round(seconds * S))


@pytest.fixture(params=[True, False], ids=["columnar", "general"])
def logs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LocalLogs:
    monkeypatch.setattr(columnar, "FAST_PATH", request.param)
    store = LocalLogs([])
    net = [
        "conn from 10.0.0.5 ok",
        "conn from 192.168.1.20:8080 refused",
        "v6 peer [2001:db8::7]:443",
        "version 1.2.3 at 12:30:45",
        "end 10.1.2.3.",
    ]
    store.add_lines({"app": "net"}, [(ns(i + 1), line) for i, line in enumerate(net)])
    docs = [{"addr": "10.0.0.5"}, {"addr": "not-an-ip"}, {"other": 1}, {"addr": "2001:db8::1"}]
    rows = [(ns(i + 1), json.dumps(d)) for i, d in enumerate(docs)] + [(ns(5), "garbage")]
    store.add_lines({"app": "js"}, rows)
    counter = [(10, 5), (20, 10), (30, 15), (40, 2), (50, 7)]
    store.add_lines({"app": "c"}, [(ns(t), f"n={v}") for t, v in counter])
    store.add_lines({"app": "dup"}, [(ns(1), "level=info level=error a-b=1 a_b=2 msg=x")])
    jd = [
        '{"level": "info", "level": "error", "n": 1}',
        '{"a_b": "x", "a": {"b": "y"}, "level": "info"}',
        '{"level": "warn", "msg": "{\\"level\\": \\"x\\"}", "n": 2.50, "n": 3}',
    ]
    store.add_lines({"app": "jd"}, [(ns(i + 1), line) for i, line in enumerate(jd)])
    for app, count in (("a", 3), ("b", 1), ("d", 2)):
        store.add_lines({"app": app, "group": "g"}, [(ns(i + 1), "x") for i in range(count)])
    return store


def lines(logs: LocalLogs, query: str) -> list[str]:
    data = logs.query_range(query, ns(0), ns(60), limit=100, direction="forward")
    return [
        line for _ts, line in sorted((int(v[0]), v[1]) for s in data["result"] for v in s["values"])
    ]


def vec(logs: LocalLogs, query: str, at: float = 60) -> list[tuple[dict[str, str], str]]:
    data = logs.query(query, time=ns(at))
    return [(r["metric"], r["value"][1]) for r in data["result"]]


# ----------------------------------------------------------------------------- ip()

IP_LINE_TABLE = [
    ('{app="net"} |= ip("10.0.0.0/8")', ["conn from 10.0.0.5 ok", "end 10.1.2.3."]),
    (
        '{app="net"} != ip("10.0.0.0/8")',
        [
            "conn from 192.168.1.20:8080 refused",
            "v6 peer [2001:db8::7]:443",
            "version 1.2.3 at 12:30:45",
        ],
    ),
    ('{app="net"} |= ip("192.168.1.1-192.168.1.100")', ["conn from 192.168.1.20:8080 refused"]),
    ('{app="net"} |= ip("2001:db8::/32")', ["v6 peer [2001:db8::7]:443"]),
    (
        '{app="net"} |= ip("10.0.0.5") or ip("2001:db8::7")',
        ["conn from 10.0.0.5 ok", "v6 peer [2001:db8::7]:443"],
    ),
    ('{app="net"} |= ip("1.2.3.4")', []),  # "1.2.3" is a version, not an address
    ('{app="net"} |= "conn" |= ip("192.168.0.0/16")', ["conn from 192.168.1.20:8080 refused"]),
]


@pytest.mark.parametrize(("query", "expected"), IP_LINE_TABLE)
def test_ip_line_filters(logs: LocalLogs, query: str, expected: list[str]) -> None:
    assert lines(logs, query) == expected


IP_LABEL_TABLE = [
    ('{app="js"} | json | addr = ip("10.0.0.0/8")', ['{"addr": "10.0.0.5"}', "garbage"]),
    # not an IP: no match, so != keeps it; no addr label at all: dropped by both
    (
        '{app="js"} | json | addr != ip("10.0.0.0/8")',
        ['{"addr": "not-an-ip"}', '{"addr": "2001:db8::1"}', "garbage"],
    ),
    ('{app="js"} | json | __error__="" | addr = ip("::/0")', ['{"addr": "2001:db8::1"}']),
]


@pytest.mark.parametrize(("query", "expected"), IP_LABEL_TABLE)
def test_ip_label_filters(logs: LocalLogs, query: str, expected: list[str]) -> None:
    assert lines(logs, query) == expected


def test_ip_label_filter_in_metric_queries(logs: LocalLogs) -> None:
    query = 'sum(count_over_time({app="js"} | json | __error__="" | addr != ip("10.0.0.0/8") [1m]))'
    assert vec(logs, query) == [({}, "2")]
    with pytest.raises(LogQLEvalError, match="JSONParserErr"):  # the error line passes ip()
        logs.query(
            'sum(count_over_time({app="js"} | json | addr = ip("10.0.0.0/8") [1m]))', time=ns(60)
        )


@pytest.mark.parametrize(
    "query",
    [
        '{app="net"} |~ ip("10.0.0.1")',
        '{app="net"} |= ip("10.0.0.0/33")',
        '{app="net"} | x > ip("10.0.0.1")',
    ],
)
def test_ip_refusals(logs: LocalLogs, query: str) -> None:
    with pytest.raises(LogQLParseError):
        logs.query_range(query, ns(0), ns(60))


# ----------------------------------------------------------------------------- rate_counter

RATE_COUNTER = 'rate_counter({app="c"} | logfmt | unwrap n [1m])'


def test_rate_counter_adds_back_resets_and_extrapolates(logs: LocalLogs) -> None:
    # window (0, 60]: 5 10 15 2 7 at 10..50 s -> increase 7 - 5 + 15 (reset) = 17 over
    # 40 s of samples, extrapolated 10 s to each edge (< 1.1 x the 10 s spacing): x 60/40
    ((metric, value),) = vec(logs, RATE_COUNTER, 60)
    assert metric == {"app": "c"}
    assert value == "0.425"
    # window (-25, 35]: 5 10 15 -> 10 over 20 s; start extrapolation capped where the
    # counter would be zero (20 * 5/10 = 10 s), end 5 s: 10 * 35/20 / 60
    ((_metric, value),) = vec(logs, RATE_COUNTER, 35)
    assert float(value) == 17.5 / 60


def test_rate_counter_with_one_sample_is_zero(logs: LocalLogs) -> None:
    assert vec(logs, 'rate_counter({app="c"} | logfmt | unwrap n [10s])', 20) == [
        ({"app": "c"}, "0")
    ]
    assert vec(logs, 'rate_counter({app="c"} | logfmt | unwrap n [5s])', 15) == []


def test_rate_counter_needs_unwrap(logs: LocalLogs) -> None:
    with pytest.raises(LogQLParseError, match="without unwrap"):
        logs.query('rate_counter({app="c"}[1m])', time=ns(60))


# ----------------------------------------------------------------------------- approx_topk

BY_APP = 'sum by (app) (count_over_time({group="g"}[1m]))'


def test_approx_topk_is_the_exact_topk_for_instant_queries(logs: LocalLogs) -> None:
    assert sorted(vec(logs, f"approx_topk(2, {BY_APP})"), key=str) == sorted(
        vec(logs, f"topk(2, {BY_APP})"), key=str
    )
    assert sorted(m["app"] for m, _v in vec(logs, f"approx_topk(2, {BY_APP})")) == ["a", "d"]


def test_approx_topk_restrictions(logs: LocalLogs) -> None:
    with pytest.raises(LogQLParseError, match="grouping"):
        logs.query(f"approx_topk by (app) (2, {BY_APP})", time=ns(60))
    with pytest.raises(LogQLEvalError, match="instant"):
        logs.query_range(f"approx_topk(2, {BY_APP})", ns(0), ns(60), step="30s")


# ----------------------------------------------------------------------------- hex literals


@pytest.mark.parametrize(
    ("literal", "value"),
    [("0x10", "16"), ("0x1p3", "8"), ("0x1.8p3", "12"), ("0X1P-2", "0.25"), ("0x.8p1", "1")],
)
def test_hex_literals(logs: LocalLogs, literal: str, value: str) -> None:
    assert vec(logs, f"vector({literal})") == [({}, value)]


@pytest.mark.parametrize(
    ("literal", "message"),
    [("0x1.8", "requires a 'p' exponent"), ("0x", "no digits"), ("0xg", "no digits")],
)
def test_hex_literals_loki_refuses(logs: LocalLogs, literal: str, message: str) -> None:
    with pytest.raises(LogQLParseError, match=message):
        logs.query(f"vector({literal})", time=ns(60))


# ----------------------------------------------------------------------------- NaN / Inf order

# counts a=3, b=1, d=2: (count - 2) / (count - 2) gives a 1, b 1, d NaN; (count - 2) * 2^2000
# gives a +Inf, b -Inf, d NaN (0 * Inf)
NAN = f"({BY_APP} - 2) / ({BY_APP} - 2) * ({BY_APP} - 1)"
INF = f"({BY_APP} - 2) * 2 ^ 2000"


def apps(rows: list[tuple[dict[str, str], str]]) -> list[tuple[str, str]]:
    return [(m["app"], v) for m, v in rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"sort({INF})", [("b", "-Inf"), ("a", "+Inf"), ("d", "NaN")]),
        (f"sort_desc({INF})", [("a", "+Inf"), ("b", "-Inf"), ("d", "NaN")]),
        (f"sort({NAN})", [("b", "0"), ("a", "2"), ("d", "NaN")]),
        (f"sort_desc({NAN})", [("a", "2"), ("b", "0"), ("d", "NaN")]),
    ],
)
def test_sort_puts_nan_last(logs: LocalLogs, query: str, expected: list) -> None:
    assert apps(vec(logs, query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"topk(1, {INF})", {("a", "+Inf")}),
        (f"bottomk(1, {INF})", {("b", "-Inf")}),
        (f"topk(2, {INF})", {("a", "+Inf"), ("b", "-Inf")}),
        (f"bottomk(2, {INF})", {("a", "+Inf"), ("b", "-Inf")}),
        (f"topk(3, {INF})", {("a", "+Inf"), ("b", "-Inf"), ("d", "NaN")}),
        (f"topk(1, {NAN})", {("a", "2")}),
        (f"bottomk(1, {NAN})", {("b", "0")}),
    ],
)
def test_topk_and_bottomk_never_prefer_nan(logs: LocalLogs, query: str, expected: set) -> None:
    assert set(apps(vec(logs, query))) == expected


# ----------------------------------------------------------------------------- duplicate keys


def stream_of(logs: LocalLogs, query: str) -> dict[str, str]:
    data = logs.query_range(query, ns(0), ns(60), limit=10)
    (stream,) = data["result"]
    return stream["stream"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{app="dup"} | logfmt', {"app": "dup", "level": "info", "a_b": "1", "msg": "x"}),
        ('{app="dup"} | logfmt level, a_b', {"app": "dup", "level": "info", "a_b": "1"}),
        ('{app="dup"} | logfmt --strict', {"app": "dup", "level": "info", "a_b": "1", "msg": "x"}),
    ],
)
def test_logfmt_repeated_key_first_one_wins(
    logs: LocalLogs, query: str, expected: dict[str, str]
) -> None:
    assert stream_of(logs, query) == expected


def test_logfmt_repeated_key_in_metric_queries(logs: LocalLogs) -> None:
    query = 'sum by (level) (count_over_time({app="dup"} | logfmt [1m]))'
    assert vec(logs, query) == [({"level": "info"}, "1")]


JSON_DUP_TABLE = [
    ('{app="jd"} | json | n="1"', [{"app": "jd", "level": "info", "n": "1"}]),
    ('{app="jd"} | json | a_b!=""', [{"app": "jd", "a_b": "x", "level": "info"}]),
    (
        '{app="jd"} | json | level="warn"',
        [{"app": "jd", "level": "warn", "msg": '{"level": "x"}', "n": "2.50"}],
    ),
    (
        '{app="jd"} | json lv="level", n="n" | lv!="info"',
        [{"app": "jd", "lv": "warn", "n": "2.50"}],
    ),
]


@pytest.mark.parametrize(("query", "expected"), JSON_DUP_TABLE)
def test_json_repeated_key_first_one_wins(logs: LocalLogs, query: str, expected: list) -> None:
    data = logs.query_range(query, ns(0), ns(60), limit=10)
    assert [s["stream"] for s in data["result"]] == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            'sum by (level) (count_over_time({app="jd"} | json [1m]))',
            [({"level": "info"}, "2"), ({"level": "warn"}, "1")],
        ),
        (
            'sum by (level) (count_over_time({app="jd"} | json | n > 0 [1m]))',
            [({"level": "info"}, "1"), ({"level": "warn"}, "1")],
        ),
        ('sum(sum_over_time({app="jd"} | json | unwrap n [1m]))', [({}, "3.5")]),
        (
            'sum by (a_b) (count_over_time({app="jd"} | json [1m]))',
            [({}, "2"), ({"a_b": "x"}, "1")],
        ),
    ],
)
def test_json_repeated_key_in_metric_queries(logs: LocalLogs, query: str, expected: list) -> None:
    assert vec(logs, query) == expected
