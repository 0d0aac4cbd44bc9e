"""Structured metadata (Loki 3.x): loading it, where it is visible, categorized answers.

Hand-computed table over two streams. ``{app="api", env="prod"}``:

- T0+1 ``{"status":200,"trace_id":"inline"}`` with metadata trace_id=t1, user=alice, size=10
- T0+2 ``level=error status=500`` with metadata trace_id=t2, env=staging (``env`` is a
  stream label: the metadata shows as ``env_extracted``)
- T0+3 ``plain`` without metadata

``{app="web"}``: T0+4 ``x`` with metadata trace_id=t1, size=5.

Every metric query runs on both execution paths (columnar on and off).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsbook.errors import ConfigError
from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import columnar

S = 1_000_000_000
T0 = 1_699_999_980
API = {"app": "api", "env": "prod"}


def ns(seconds: float) -> int:
    return T0 * S + int(round(seconds * S))


@pytest.fixture(params=[True, False], ids=["columnar", "general"])
def logs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LocalLogs:
    monkeypatch.setattr(columnar, "FAST_PATH", request.param)
    store = LocalLogs([])
    store.add_lines(
        API,
        [
            (
                ns(1),
                '{"status":200,"trace_id":"inline"}',
                {"trace_id": "t1", "user": "alice", "size": "10"},
            ),
            (ns(2), "level=error status=500", {"trace_id": "t2", "env": "staging"}),
            (ns(3), "plain"),
        ],
    )
    store.add_lines({"app": "web"}, [(ns(4), "x", {"trace_id": "t1", "size": "5"})])
    return store


def entries(data: dict[str, Any]) -> list[tuple[dict[str, str], int, str]]:
    assert data["resultType"] == "streams"
    rows = [
        (s["stream"], round(int(v[0]) / S - T0), v[1]) for s in data["result"] for v in s["values"]
    ]
    return sorted(rows, key=lambda row: row[1])


def vec(logs: LocalLogs, query: str, at: float = 60) -> dict[tuple[tuple[str, str], ...], str]:
    data = logs.query(query, time=ns(at))
    return {tuple(sorted(r["metric"].items())): r["value"][1] for r in data["result"]}


E1 = {**API, "trace_id": "t1", "user": "alice", "size": "10"}
E2 = {**API, "trace_id": "t2", "env_extracted": "staging"}

LOG_TABLE = [
    ('{app="api"} | trace_id="t1"', [(E1, 1, '{"status":200,"trace_id":"inline"}')]),
    ('{app="api"} | env_extracted="staging"', [(E2, 2, "level=error status=500")]),
    ('{app="api"} | env="staging"', []),  # env is the stream label's value
    (
        '{app=~".+"} | trace_id="t1" | line_format "{{.app}}"',
        [(E1, 1, "api"), ({"app": "web", "trace_id": "t1", "size": "5"}, 4, "web")],
    ),
    ('{app="api"} | trace_id=""', [(API, 3, "plain")]),
    ('{app="api"} | size > 5', [(E1, 1, '{"status":200,"trace_id":"inline"}')]),
    ('{trace_id="t1"}', []),  # not indexed: selectors never see it
    (
        '{app="api"} | keep app, trace_id',
        [
            ({"app": "api", "trace_id": "t1"}, 1, '{"status":200,"trace_id":"inline"}'),
            ({"app": "api", "trace_id": "t2"}, 2, "level=error status=500"),
            ({"app": "api"}, 3, "plain"),
        ],
    ),
    (
        '{app="api"} | drop trace_id, user, size, env_extracted',
        [
            (API, 1, '{"status":200,"trace_id":"inline"}'),
            (API, 2, "level=error status=500"),
            (API, 3, "plain"),
        ],
    ),
    (
        '{app="api"} | line_format "{{.trace_id}}/{{.user}}"',
        [(E1, 1, "t1/alice"), (E2, 2, "t2/"), (API, 3, "/")],
    ),
    (
        '{app="api"} | label_format who="{{.user}}@{{.trace_id}}" | who="alice@t1"',
        [({**E1, "who": "alice@t1"}, 1, '{"status":200,"trace_id":"inline"}')],
    ),
    # a parsed label with the metadata's name replaces it (parsers rename only around
    # stream labels)
    (
        '{app="api"} | json | trace_id="inline"',
        [({**E1, "trace_id": "inline", "status": "200"}, 1, '{"status":200,"trace_id":"inline"}')],
    ),
    (
        '{app="api"} | logfmt | status="500"',
        [({**E2, "level": "error", "status": "500"}, 2, "level=error status=500")],
    ),
]


@pytest.mark.parametrize(("query", "expected"), LOG_TABLE)
def test_structured_metadata_visibility_in_log_queries(
    logs: LocalLogs, query: str, expected: list
) -> None:
    assert entries(logs.query_range(query, ns(0), ns(60), limit=100)) == expected


METRIC_TABLE = [
    (
        'sum by (env_extracted, level) (count_over_time({app="api"} |= "level" | logfmt [1m]))',
        {(("env_extracted", "staging"), ("level", "error")): "1"},
    ),
    (
        'sum by (user) (count_over_time({app="api"} | json | __error__="" | trace_id="inline" [1m]))',
        {(("user", "alice"),): "1"},
    ),
    (
        'sum by (app) (sum_over_time({app=~".+"} | json | __error__="" | unwrap size [1m]))',
        {(("app", "api"),): "10"},
    ),
    (
        'sum by (trace_id) (count_over_time({app=~".+"} | trace_id=~"t.*" | size >= 5 [1m]))',
        {(("trace_id", "t1"),): "2"},
    ),
    (
        'sum by (trace_id) (count_over_time({app=~".+"}[1m]))',
        {(("trace_id", "t1"),): "2", (("trace_id", "t2"),): "1", (): "1"},
    ),
    (
        'count_over_time({app="api"}[1m])',
        {
            tuple(sorted(E1.items())): "1",
            tuple(sorted(E2.items())): "1",
            tuple(sorted(API.items())): "1",
        },
    ),
    (
        'sum without (trace_id, user, size, env_extracted) (count_over_time({app="api"}[1m]))',
        {tuple(sorted(API.items())): "3"},
    ),
    ('sum(sum_over_time({app=~".+"} | unwrap size [1m]))', {(): "15"}),
    (
        'sum by (app) (count_over_time({app=~".+"} |= "" [1m]))',
        {(("app", "api"),): "3", (("app", "web"),): "1"},
    ),
    (
        'sum by (trace_id) (count_over_time({app=~".+"} | json | __error__="" [1m]))',
        {(("trace_id", "inline"),): "1"},
    ),
    (
        'sum by (user) (count_over_time({app="api"} | json | __error__="" | status >= 200 [1m]))',
        {(("user", "alice"),): "1"},
    ),
    (
        'sum by (trace_id) (rate({app=~".+"} | trace_id="t1" [1m]))',
        {(("trace_id", "t1"),): "0.03333333333333333"},
    ),
]


@pytest.mark.parametrize(("query", "expected"), METRIC_TABLE)
def test_structured_metadata_in_metric_queries(logs: LocalLogs, query: str, expected: dict) -> None:
    assert vec(logs, query) == expected


def test_categorized_answer_keeps_stream_metadata_and_parsed_apart(logs: LocalLogs) -> None:
    data = logs.query_range(
        '{app="api"} |= "level" | logfmt', ns(0), ns(60), categorize_labels=True
    )
    assert data["encodingFlags"] == ["categorize-labels"]
    assert data["result"] == [
        {
            "stream": API,
            "values": [
                [
                    str(ns(2)),
                    "level=error status=500",
                    {
                        "structuredMetadata": {"trace_id": "t2", "env_extracted": "staging"},
                        "parsed": {"level": "error", "status": "500"},
                    },
                ]
            ],
        }
    ]
    plain = logs.query_range('{app=~".+"}', ns(0), ns(60), categorize_labels=True)
    assert [s["stream"] for s in plain["result"]] == [API, {"app": "web"}]
    assert plain["result"][0]["values"][0] == [str(ns(3)), "plain"]  # nothing to categorize
    assert plain["result"][1]["values"] == [
        [str(ns(4)), "x", {"structuredMetadata": {"trace_id": "t1", "size": "5"}}]
    ]


# ----------------------------------------------------------------------------- loading


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_push_json_third_element_is_structured_metadata(tmp_path: Path) -> None:
    doc = {
        "streams": [
            {
                "stream": {"app": "api"},
                "values": [[str(ns(1)), "a", {"trace_id": "t1"}], [str(ns(2)), "b"]],
            }
        ]
    }
    logs = LocalLogs(_write(tmp_path, "push.json", json.dumps(doc)))
    assert entries(logs.query_range('{app="api"} | trace_id="t1"', ns(0), ns(60))) == [
        ({"app": "api", "trace_id": "t1"}, 1, "a")
    ]
    assert logs.labels() == ["app"]  # metadata is not a stream label


def test_categorized_query_response_loads(tmp_path: Path) -> None:
    value = [
        str(ns(1)),
        "a",
        {"structuredMetadata": {"trace_id": "t1"}, "parsed": {"level": "info"}},
    ]
    doc = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "encodingFlags": ["categorize-labels"],
            "result": [{"stream": {"app": "api"}, "values": [value]}],
        },
    }
    logs = LocalLogs(_write(tmp_path, "q.json", json.dumps(doc)))
    data = logs.query_range('{app="api"}', ns(0), ns(60), categorize_labels=True)
    assert data["result"] == [
        {
            "stream": {"app": "api", "level": "info"},
            "values": [[str(ns(1)), "a", {"structuredMetadata": {"trace_id": "t1"}}]],
        }
    ]


def test_jsonl_structured_metadata_loads(tmp_path: Path) -> None:
    rows = [
        {
            "labels": {"app": "api"},
            "line": "a",
            "timestamp": "2023-11-14T22:13:01Z",
            "structuredMetadata": {"trace_id": "t1"},
        },
        {"labels": {"app": "api"}, "line": "b", "timestamp": "2023-11-14T22:13:02Z"},
    ]
    path = _write(tmp_path, "e.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    logs = LocalLogs(path)
    data = logs.query(
        'sum by (trace_id) (count_over_time({app="api"}[1m]))', time="2023-11-14T22:13:30Z"
    )
    assert {tuple(r["metric"].items()): r["value"][1] for r in data["result"]} == {
        (("trace_id", "t1"),): "1",
        (): "1",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            json.dumps({"streams": [{"stream": {"a": "b"}, "values": [["1", "l", ["x"]]]}]}),
            "stream 1, value 1: structured metadata must be an object of strings",
        ),
        (
            json.dumps(
                {"streams": [{"stream": {"a": "b"}, "values": [["1", "l"], ["2", "l", {"n": 5}]]}]}
            ),
            "stream 1, value 2: structured metadata must be an object of strings",
        ),
        (
            json.dumps({"streams": [{"stream": {"a": "b"}, "values": [["1", "l", {}, "extra"]]}]}),
            "stream 1, value 1: a value must be",
        ),
        (
            json.dumps({"streams": [{"stream": {"a": "b"}, "values": [["soon", "l"]]}]}),
            "stream 1, value 1: invalid timestamp",
        ),
        (
            json.dumps({"streams": [{"stream": {"a": "b"}, "values": [["1", 7]]}]}),
            "stream 1, value 1: the log line must be a string",
        ),
        (
            json.dumps(
                {
                    "data": {
                        "resultType": "streams",
                        "result": [
                            {
                                "stream": {"a": "b"},
                                "values": [["1", "l", {"structuredMetadata": {"k": ["v"]}}]],
                            }
                        ],
                    }
                }
            ),
            "structuredMetadata must be an object of strings",
        ),
    ],
)
def test_unknown_value_shapes_are_errors_naming_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, "bad.json", text)
    with pytest.raises(ConfigError) as info:
        LocalLogs(path)
    assert str(path) in info.value.message
    assert message in info.value.message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"structuredMetadata": "t1"}, ":2: structuredMetadata must be an object of strings"),
        ({"structuredMetadata": {"k": 1}}, ":2: structuredMetadata must be an object of strings"),
        ({"metadata": {"k": "v"}}, ":2: unknown field(s) 'metadata'"),
        ({"timestamp": "2023-13-01T00:00:00Z"}, ":2: invalid timestamp"),
        ({"timestamp": "99999999999999999999999"}, ":2: invalid timestamp"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    good = {"labels": {"app": "api"}, "line": "a", "timestamp": "2023-11-14T22:13:01Z"}
    text = json.dumps(good) + "\n" + json.dumps({**good, **record}) + "\n"
    path = _write(tmp_path, "bad.jsonl", text)
    with pytest.raises(ConfigError) as info:
        LocalLogs(path)
    assert f"{path}{message}" in info.value.message


def test_entries_differing_only_in_metadata_are_both_kept() -> None:
    store = LocalLogs([])
    store.add_lines(
        {"app": "a"}, [(ns(1), "x", {"k": "1"}), (ns(1), "x", {"k": "2"}), (ns(1), "x", {"k": "1"})]
    )
    assert vec(store, 'count_over_time({app="a"}[1m])') == {
        (("app", "a"), ("k", "1")): "1",
        (("app", "a"), ("k", "2")): "1",
    }


def test_json_expression_with_a_missing_path_keeps_existing_labels() -> None:
    store = LocalLogs([])
    store.add_lines({"app": "a"}, [(ns(1), '{"x": "1", "n": null}', {"trace_id": "t1"})])
    data = store.query_range(
        '{app="a"} | json trace_id="nope", x="x", n="n", app="missing"', ns(0), ns(60)
    )
    # a missing path leaves the metadata and stream labels as they were; null is empty
    assert [s["stream"] for s in data["result"]] == [{"app": "a", "trace_id": "t1", "x": "1"}]


def test_columnar_path_reads_structured_metadata(
    logs: LocalLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fast path on, streams with metadata are answered by the columnar plan."""
    taken: list[bool] = []
    real = columnar.ColumnarPlan.run

    def spy(self: columnar.ColumnarPlan, stream: Any) -> Any:
        parts = real(self, stream)
        taken.append(parts is not None)
        return parts

    monkeypatch.setattr(columnar.ColumnarPlan, "run", spy)
    query = 'sum by (trace_id, user) (count_over_time({app=~".+"} | json | __error__="" [1m]))'
    assert vec(logs, query) == {(("trace_id", "inline"), ("user", "alice")): "1"}
    assert taken == ([True, True] if columnar.FAST_PATH else [])
