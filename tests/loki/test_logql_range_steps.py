"""Range-query evaluation times, as Loki's engine computes them (hand-computed table).

Loki evaluates a range query at ``start, start + step, ...`` while ``<= end``: no
alignment unless the query frontend's ``align_queries_with_step`` is on. Windows are
``(t - range - offset, t - offset]``. Entries of ``{app="api"}`` sit at T0 + 1, 2, 3, 30
and 60 s; T0 is a multiple of 60 s.
"""

from __future__ import annotations

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, columnar

S = 1_000_000_000
T0 = 1_699_999_980


def ns(seconds: float) -> int:
    return T0 * S + int(round(seconds * S))


@pytest.fixture(autouse=True, params=[True, False], ids=["columnar", "general"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columnar, "FAST_PATH", request.param)


def build(align: bool = False) -> LocalLogs:
    store = LocalLogs([], align_queries_with_step=align)
    lines = [(1, 10), (2, 30), (3, 50.5), (30, 20), (60, 40)]
    store.add_lines({"app": "api"}, [(ns(t), f"latency={v}") for t, v in lines])
    store.add_lines({"app": "js"}, [(ns(t), f'{{"latency": {v}}}') for t, v in lines])
    return store


def points(data: dict, index: int = 0) -> list[tuple[float, str]]:
    return [(round(t - T0, 3), v) for t, v in data["result"][index]["values"]]


COUNT = 'count_over_time({app="api"}[1m])'

RANGE_TABLE = [
    # query, start, end, step, expected (seconds after T0, value)
    (COUNT, 7, 65, "30s", [(7, "3"), (37, "4")]),
    (COUNT, 1, 61, "20s", [(1, "1"), (21, "3"), (41, "4"), (61, "4")]),
    (COUNT, 7, 7, "30s", [(7, "3")]),
    ('count_over_time({app="api"}[500ms])', 0.5, 3, "500ms", [(1, "1"), (2, "1"), (3, "1")]),
    ('count_over_time({app="api"}[500ms])', 0.5, 3, "0.5", [(1, "1"), (2, "1"), (3, "1")]),
    ('rate({app="api"}[500ms])', 0.75, 2.25, 0.25, [(1, "2"), (1.25, "2"), (2, "2"), (2.25, "2")]),
    ('count_over_time({app="api"}[1s])', 0.9, 3.0, "700ms", [(1.6, "1"), (2.3, "1"), (3, "1")]),
    # offset moves the window: (t - 30s - 30s, t - 30s]
    ('count_over_time({app="api"}[30s] offset 30s)', 60, 90, "30s", [(60, "4"), (90, "1")]),
    (
        'max_over_time({app="api"} | logfmt | unwrap latency [2s] offset 1s)',
        3,
        5,
        "1s",
        [(3, "30"), (4, "50.5"), (5, "50.5")],
    ),
    (
        'min_over_time({app="api"} | logfmt | unwrap latency [30s] offset 30s)',
        59,
        61,
        "1s",
        [(59, "10"), (60, "10"), (61, "20")],
    ),
    # the same windows on a json stream (the columnar path takes these)
    (
        'sum by (app) (count_over_time({app="js"} | json | latency > 15 [30s] offset 30s))',
        60,
        90,
        "30s",
        [(60, "3"), (90, "1")],
    ),
    (
        'max_over_time({app="js"} | json | unwrap latency [2s] offset 1s) by (app)',
        3,
        5,
        "1s",
        [(3, "30"), (4, "50.5"), (5, "50.5")],
    ),
]


@pytest.mark.parametrize(("query", "start", "end", "step", "expected"), RANGE_TABLE)
def test_range_query_evaluates_at_start_plus_multiples_of_step(
    query: str, start: float, end: float, step: object, expected: list
) -> None:
    data = build().query_range(query, ns(start), ns(end), step=step)
    assert data["resultType"] == "matrix"
    assert points(data) == expected


def test_align_queries_with_step_rounds_start_down_and_end_up() -> None:
    data = build(align=True).query_range(COUNT, ns(7), ns(65), step="30s")
    assert points(data) == [(30, "4"), (60, "5"), (90, "1")]


def test_unaligned_and_aligned_differ_only_in_evaluation_times() -> None:
    plain = build().query_range(COUNT, ns(0), ns(90), step="30s")
    aligned = build(align=True).query_range(COUNT, ns(0), ns(90), step="30s")
    assert plain == aligned  # start and end already multiples of the step


def test_sub_second_step_keeps_millisecond_times() -> None:
    data = build().query_range('count_over_time({app="api"}[1s])', ns(0.999), ns(1.002), "1ms")
    assert points(data) == [(1.0, "1"), (1.001, "1"), (1.002, "1")]


def test_zero_step_is_refused() -> None:
    with pytest.raises(LogQLEvalError, match="zero or negative"):
        build().query_range(COUNT, ns(0), ns(60), step="0s")
