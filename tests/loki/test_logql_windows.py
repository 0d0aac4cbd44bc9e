"""LogQL range windows ``(t - range - offset, t - offset]`` and their values, hand-computed.

Entries of ``{app="api"}`` sit at T0 + 1, 2, 3, 30 and 60 s with ``latency`` 10, 30, 50.5,
20 and 40. Every window function, both window edges with and without ``offset``, the
counter-rate extrapolation of ``rate_counter`` and the pipeline-error refusal have one
exact expected value each (both evaluation paths: columnar and general).
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, columnar
from opsbook.loki.logql.evaluator import _INT64_MIN, _minus, counter_rate

S = 1_000_000_000
T0 = 1_699_999_980
LATENCY = [(1, 10), (2, 30), (3, 50.5), (30, 20), (60, 40)]


def ns(seconds: float) -> int:
    return T0 * S + int(round(seconds * S))


@pytest.fixture(autouse=True, params=[True, False], ids=["columnar", "general"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columnar, "FAST_PATH", request.param)


@pytest.fixture(scope="module")
def logs() -> LocalLogs:
    store = LocalLogs([])
    store.add_lines({"app": "api"}, [(ns(t), f"latency={v}") for t, v in LATENCY])
    store.add_lines({"app": "js"}, [(ns(t), f'{{"latency": {v}}}') for t, v in LATENCY])
    store.add_lines({"app": "utf"}, [(ns(1), "é"), (ns(2), "ab")])
    store.add_lines({"app": "bad"}, [(ns(1), "latency=abc"), (ns(2), "latency=4")])
    store.add_lines(
        {"app": "ctr"},
        [(ns(t), f"total={v}") for t, v in [(10, 5), (20, 10), (30, 2), (40, 6)]],
    )
    store.add_lines({"app": "big"}, [(ns(1), "v=1e16"), (ns(2), "v=1.25"), (ns(3), "v=1.25")])
    store.add_lines({"app": "huge"}, [(ns(1), f"v={2**53}"), (ns(2), "v=1"), (ns(3), "v=1")])
    store.add_lines({"app": "edge"}, [(ns(1) + 1, "one nanosecond after 1 s")])
    # two streams of one app, interleaved: a "sum by (app)" merges them in time order
    store.add_lines({"app": "m", "pod": "b"}, [(ns(t), "x") for t in (2, 3, 6)])
    store.add_lines({"app": "m", "pod": "a"}, [(ns(t), "x") for t in (1, 4, 5)])
    return store


def value(logs: LocalLogs, query: str, at: float) -> float | None:
    """The single sample of an instant query at T0 + ``at`` s (None: empty vector)."""
    result = logs.query(query, time=ns(at))["result"]
    if not result:
        return None
    assert len(result) == 1
    return float(result[0]["value"][1])


IN_30 = [10, 30, 50.5, 20]  # the window (0, 30]
UNWRAP = '{app="api"} | logfmt | unwrap latency'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('count_over_time({app="api"}[30s])', 4),
        ('rate({app="api"}[30s])', 4 / 30),
        ('bytes_over_time({app="api"}[30s])', 10 + 10 + 12 + 10),
        ('bytes_rate({app="api"}[30s])', 42 / 30),
        (f"sum_over_time({UNWRAP} [30s])", 110.5),
        (f"rate({UNWRAP} [30s])", 110.5 / 30),
        (f"avg_over_time({UNWRAP} [30s])", 27.625),
        (f"min_over_time({UNWRAP} [30s])", 10),
        (f"max_over_time({UNWRAP} [30s])", 50.5),
        (f"first_over_time({UNWRAP} [30s])", 10),
        (f"last_over_time({UNWRAP} [30s])", 20),
        (f"quantile_over_time(0.5, {UNWRAP} [30s])", 25),
        (f"quantile_over_time(0.25, {UNWRAP} [30s])", 17.5),
        (f"stdvar_over_time({UNWRAP} [30s])", statistics.pvariance(IN_30)),
        (f"stddev_over_time({UNWRAP} [30s])", statistics.pstdev(IN_30)),
        ('sum by (app) (count_over_time({app="js"} | json [30s]))', 4),
        ('sum_over_time({app="js"} | json | unwrap latency [30s])', 110.5),
    ],
)
def test_each_window_function_on_the_window_0_to_30(
    logs: LocalLogs, query: str, expected: float
) -> None:
    assert value(logs, query, 30) == pytest.approx(expected, rel=1e-12)
    shifted = query.replace("[30s]", "[30s] offset 5s")
    assert value(logs, shifted, 35) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("query", "at", "expected"),
    [
        # the left edge is open, the right edge closed: (t - range - offset, t - offset]
        ('count_over_time({app="api"}[29s])', 30, 3),  # (1, 30]: 2, 3, 30
        ('count_over_time({app="api"}[28s])', 30, 2),  # (2, 30]
        ('count_over_time({app="api"}[29s] offset 1s)', 31, 3),  # (1, 30]
        ('count_over_time({app="api"}[29s] offset 1s)', 30, 3),  # (0, 29]: 1, 2, 3
        ('count_over_time({app="api"}[2s] offset 1s)', 3, 2),  # (0, 2]
        ('count_over_time({app="api"}[1s] offset 27s)', 30, 1),  # (2, 3]
        ('count_over_time({app="api"}[1s] offset 30s)', 30, None),  # (-1, 0]: nothing
        ('count_over_time({app="api"}[10s] offset 30s)', 60, 1),  # (20, 30]
        ('count_over_time({app="api"}[59s] offset 1s)', 61, 4),  # (1, 60]: 2, 3, 30, 60
        # integer values sum exactly (the cumulative-sum path): (29, 60] holds 20 and 40
        (f"sum_over_time({UNWRAP} [31s])", 60, 60),
        (f"sum_over_time({UNWRAP} [31s] offset 30s)", 90, 60),
        ('bytes_over_time({app="utf"}[5s])', 5, 2 + 2),  # "é" is two bytes in UTF-8
        ('bytes_over_time({app="api"} |= "50.5" [30s])', 30, 12),  # filtered lines only
        # all-integer values: the cumulative-sum path, a window that starts after the first
        ('sum_over_time({app="ctr"} | logfmt | unwrap total [15s])', 30, 10 + 2),
        # 1e16 + 1.25 rounds in float64: the window sum adds its own values
        ('sum_over_time({app="big"} | logfmt | unwrap v [1500ms])', 3, 2.5),
        ('count_over_time({app="edge"}[1s])', 2, 1),  # (1 s, 2 s] holds 1 s + 1 ns
        ('count_over_time({app="edge"}[1s] offset 1s)', 3, 1),
        ('sum by (app) (count_over_time({app="m"}[3s]))', 3, 3),
        ('sum by (app) (count_over_time({app="m"}[2s]))', 5, 2),
        ('sum by (app) (count_over_time({app="m"}[1s]))', 4, 1),
    ],
)
def test_window_edges(logs: LocalLogs, query: str, at: float, expected: float | None) -> None:
    assert value(logs, query, at) == expected


def test_a_range_query_moves_each_window_with_its_offset(logs: LocalLogs) -> None:
    data = logs.query_range('count_over_time({app="api"}[2s] offset 1s)', ns(2), ns(5), step="1s")
    got = [(round(t - T0), v) for t, v in data["result"][0]["values"]]
    assert got == [(2, "1"), (3, "2"), (4, "2"), (5, "1")]  # (-1,1] (0,2] (1,3] (2,4]


@pytest.mark.parametrize(
    ("app", "window", "start", "end", "step", "expected"),
    [
        # integers summed by differences of a running sum, a window after the first sample
        ("ctr", "15s", 30, 40, "10s", [(30, "12"), (40, "8")]),
        # a running sum over 1e16 would round the later window: summed value by value
        ("big", "1500ms", 1, 3, "2s", [(1, "10000000000000000"), (3, "2.5")]),
        # integers beyond 2**53 in total: also value by value
        ("huge", "1500ms", 1, 3, "2s", [(1, "9007199254740992"), (3, "2")]),
    ],
)
def test_sum_over_time_across_steps(
    logs: LocalLogs, app: str, window: str, start: float, end: float, step: str, expected: list
) -> None:
    field = "total" if app == "ctr" else "v"
    query = f'sum_over_time({{app="{app}"}} | logfmt | unwrap {field} [{window}])'
    data = logs.query_range(query, ns(start), ns(end), step=step)
    got = [(round(t - T0), v) for t, v in data["result"][0]["values"]]
    assert got == expected


def test_two_streams_of_one_group_counted_in_time_order(logs: LocalLogs) -> None:
    q = 'sum by (app) (count_over_time({app="m"}[1500ms]))'
    data = logs.query_range(q, ns(1), ns(6), step="1s")
    got = [(round(t - T0), v) for t, v in data["result"][0]["values"]]
    assert got == [(1, "1"), (2, "2"), (3, "2"), (4, "2"), (5, "2"), (6, "2")]
    assert [r["metric"] for r in data["result"]] == [{"app": "m"}]  # one series, its label
    # a label only some streams have: the pushed-down grouping keeps what is there
    data = logs.query_range(
        'sum by (pod) (count_over_time({app=~"m|edge"}[1500ms]))', ns(1), ns(2), step="1s"
    )
    assert [(r["metric"], r["values"][-1][1]) for r in data["result"]] == [
        ({}, "1"),
        ({"pod": "a"}, "1"),
        ({"pod": "b"}, "1"),
    ]


def test_absent_over_time_with_and_without_offset(logs: LocalLogs) -> None:
    q = 'absent_over_time({app="api", env=~"p.*"}[1s])'
    absent = logs.query(q, time=ns(10))["result"]
    assert absent == [{"metric": {"app": "api"}, "value": [T0 + 10, "1"]}]
    assert logs.query('absent_over_time({app="api"}[1s])', time=ns(3))["result"] == []
    assert logs.query('absent_over_time({app="api"}[1s] offset 7s)', time=ns(10))["result"] == []
    assert value(logs, 'absent_over_time({app="api"}[1s] offset 1s)', 3) is None
    assert value(logs, 'absent_over_time({app="api"}[1s] offset 10s)', 3) == 1


def test_a_range_query_reports_absence_only_where_the_window_is_empty(logs: LocalLogs) -> None:
    data = logs.query_range('absent_over_time({app="api"}[1s])', ns(2), ns(5), step="1s")
    got = [(round(t - T0), v) for t, v in data["result"][0]["values"]]
    assert got == [(4, "1"), (5, "1")]


def test_a_failed_unwrap_is_refused_with_the_series_named(logs: LocalLogs) -> None:
    with pytest.raises(LogQLEvalError) as info:
        logs.query('sum_over_time({app="bad"} | logfmt | unwrap latency [1m])', time=ns(5))
    assert info.value.message.startswith(
        "pipeline error: 'SampleExtractionErr' for series: '{__error__=\"SampleExtractionErr\""
    )
    assert info.value.hint == 'add | __error__="" to the query to drop lines that failed to parse'
    ok = value(logs, 'sum_over_time({app="bad"} | logfmt | unwrap latency | __error__="" [1m])', 5)
    assert ok == 4


def test_rate_counter_through_the_engine(logs: LocalLogs) -> None:
    q = 'rate_counter({app="ctr"} | logfmt | unwrap total [40s])'
    # (5, 45] after the 5 s offset: the hand-computed case below
    assert value(logs, q.replace("[40s]", "[40s] offset 5s"), 50) == pytest.approx(11 / 30)
    assert value(logs, q, 45) == pytest.approx(11 / 30)


@pytest.mark.parametrize(
    ("ts", "values", "start", "end", "expected"),
    [
        ([], [], 0, 40, 0.0),
        ([10], [5], 0, 40, 0.0),  # one sample: no rate
        ([10, 20, 30], [5, 10, 15], 0, 40, 0.5),  # edges within 1.1 x spacing: extend to them
        ([10, 20, 30], [5, 10, 15], 0, 60, 10 * (35 / 20) / 60),  # far end: half a spacing
        ([10, 20, 30, 40], [5, 10, 2, 6], 5, 45, 11 / 30),  # a reset adds the value before it
        ([10, 20], [1, 11], 0, 20, 10 * (11 / 10) / 20),  # not extrapolated below zero
        ([10, 20], [0, 10], 0, 20, 0.5),  # started at zero: nothing before the first sample
        ([10, 20], [-5, 5], 0, 20, 1.0),  # a negative start is not bounded by zero
        ([10, 20], [-0.5, 9.5], 0, 20, 1.0),  # nor is a start just below zero
        ([10, 20], [5, 5], 0, 20, 0.0),  # flat
        ([10, 10], [1, 4], 0, 20, 3 / 20),  # no time between samples: the raw increase
        ([10, 11], [5, 6], 9, 11, 1.0),  # 1 s between samples is already a span
        ([10, 20], [0.5, 1.5], 0, 20, 1 * (15 / 10) / 20),  # an increase of 1 is bounded by zero
        ([22, 42], [50, 60], 0, 42, 10 * (30 / 20) / 42),  # exactly 1.1 x spacing: half a spacing
        ([10, 30], [50, 60], 10, 52, 10 * (30 / 20) / 42),  # the same at the end
        ([30, 40], [50, 60], 0, 40, 10 * (15 / 10) / 40),  # far start: half a spacing
    ],
)
def test_counter_rate(
    ts: list[int], values: list[float], start: int, end: int, expected: float
) -> None:
    got = counter_rate([t * S for t in ts], values, start * S, end * S, (end - start))
    assert got == pytest.approx(expected, rel=1e-12)


def test_minus_saturates_instead_of_wrapping() -> None:
    times = np.array([_INT64_MIN + 5, 100], dtype=np.int64)
    assert _minus(times, 10).tolist() == [_INT64_MIN, 90]
    assert _minus(times, 0).tolist() == times.tolist()
    assert _minus(np.array([100], dtype=np.int64), -5).tolist() == [105]


@pytest.mark.parametrize(
    ("grouping", "metric"),
    [("without (app)", {"env": "p"}), ("by (env)", {"env": "p"}), ("", {"app": "api", "env": "p"})],
)
def test_grouping_of_an_unwrapped_range(grouping: str, metric: dict[str, str]) -> None:
    """``by`` is pushed down into the extraction, ``without`` is not: it drops labels."""
    store = LocalLogs([])
    store.add_lines({"app": "api", "env": "p"}, [(ns(t), f"latency={v}") for t, v in LATENCY])
    query = f'max_over_time({{app="api"}} | logfmt | unwrap latency [30s]) {grouping}'
    assert store.query(query, time=ns(30))["result"] == [
        {"metric": metric, "value": [T0 + 30.0, "50.5"]}
    ]
