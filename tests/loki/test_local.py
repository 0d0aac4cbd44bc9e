"""LocalLogs: loading each export format once, metadata endpoints, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.errors import ConfigError
from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError

S = 1_000_000_000
T0 = 1_700_000_040 * S


def _logcli(path: Path) -> Path:
    rows = [
        {
            "labels": {"app": "api", "env": "prod"},
            "line": "a1",
            "timestamp": "2023-11-14T22:14:01Z",
        },
        {
            "labels": {"env": "prod", "app": "api"},
            "line": "a2",
            "timestamp": "2023-11-14T22:14:02.5Z",
        },
        {
            "labels": {"app": "web"},
            "line": "w1",
            "timestamp": "2023-11-14T23:14:03.000000001+01:00",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_logcli_jsonl_groups_streams_and_parses_timestamps(tmp_path: Path) -> None:
    logs = LocalLogs(_logcli(tmp_path / "x.jsonl"))
    data = logs.query_range('{app=~".+"}', T0, T0 + 10 * S, limit=10, direction="forward")
    by_app = {s["stream"]["app"]: s["values"] for s in data["result"]}
    assert by_app["api"] == [[str(T0 + S), "a1"], [str(T0 + 2 * S + S // 2), "a2"]]
    assert by_app["web"] == [[str(T0 + 3 * S + 1), "w1"]]


def test_ts_jsonl_and_push_and_query_json(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"ts": T0 + S, "labels": {"app": "a"}, "line": "x"})
        + "\n"
        + json.dumps({"ts": str(T0 + 2 * S), "labels": {"app": "a"}, "line": "y"})
    )
    push = {"streams": [{"stream": {"app": "b"}, "values": [[str(T0 + 3 * S), "z"]]}]}
    (tmp_path / "b.json").write_text(json.dumps(push))
    query = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [
                {"stream": {"app": "a"}, "values": [[str(T0 + 4 * S), "w"], [str(T0 + S), "x"]]}
            ],
        },
    }
    (tmp_path / "c.json").write_text(json.dumps(query))
    logs = LocalLogs([tmp_path / "a.jsonl", tmp_path / "b.json", tmp_path / "c.json"])
    assert logs.entry_count == 4  # the x entry appears twice (same ts, same line): stored once
    result = logs.query('sum by (app) (count_over_time({app=~"a|b"}[1m]))', T0 + 10 * S)
    assert {r["metric"]["app"]: r["value"][1] for r in result["result"]} == {"a": "3", "b": "1"}


def test_metadata_endpoints(tmp_path: Path) -> None:
    logs = LocalLogs(_logcli(tmp_path / "x.jsonl"))
    assert logs.labels() == ["app", "env"]
    assert logs.label_values("app") == ["api", "web"]
    assert logs.label_values("app", start=T0 + 3 * S, end=T0 + 4 * S) == ["web"]
    assert logs.labels(start=T0 + 3 * S, end=T0 + 4 * S) == ["app"]
    assert logs.series(['{app="api"}', '{app="web"}']) == [
        {"app": "api", "env": "prod"},
        {"app": "web"},
    ]
    stats = logs.stats('sum(rate({env="prod"}[1m]))', T0, T0 + 10 * S)
    assert stats == {"streams": 1, "chunks": 1, "entries": 2, "bytes": 4}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"labels": {"a": "b"}, "line": "x"}\n', "lacks labels/line/timestamp"),
        ('{"labels": {"a": "b"}, "line": "x", "timestamp": "yesterday"}\n', "invalid time"),
        ("not json\n", "invalid JSON"),
        ("[1, 2]", "JSON array"),
        ('{"data": {"resultType": "matrix", "result": []}}', "resultType 'streams'"),
    ],
)
def test_bad_files_fail_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        LocalLogs(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        LocalLogs(tmp_path / "nope.jsonl")


def test_add_lines_merges_out_of_order_entries() -> None:
    logs = LocalLogs()
    logs.add_lines({"app": "x"}, [(T0 + 5 * S, "late")])
    logs.add_lines({"app": "x"}, [(T0 + S, "early")])
    data = logs.query_range('{app="x"}', T0, T0 + 10 * S, direction="forward")
    assert [v[1] for v in data["result"][0]["values"]] == ["early", "late"]


def test_limits_like_loki() -> None:
    logs = LocalLogs(max_entries_limit=5000, max_query_series=1)
    logs.add_lines({"app": "x"}, [(T0 + S, "a")])
    logs.add_lines({"app": "y"}, [(T0 + S, "a")])
    with pytest.raises(LogQLEvalError, match="max entries limit"):
        logs.query_range('{app="x"}', T0, T0 + 10 * S, limit=5001)
    with pytest.raises(LogQLEvalError, match="maximum of series"):
        logs.query('count_over_time({app=~".+"}[1m])', T0 + 10 * S)


# ----------------------------------------------------------------------------- columnar loading


def _snapshot(logs: LocalLogs) -> object:
    """Everything a caller can observe about a loaded file."""
    lo, hi = T0 - 10**6 * S, T0 + 10**6 * S
    selector = "{" + ", ".join(f'{name}=~".+"' for name in logs.labels()[:1]) + "}"
    metric = f"sum by (app, a) (count_over_time({selector} [1m]))"
    return (
        logs.entry_count,
        logs.labels(),
        {name: logs.label_values(name) for name in logs.labels()},
        logs.series([selector]),
        logs.stats(selector, lo, hi),
        logs.query_range(selector, lo, hi, limit=10_000, direction="forward"),
        logs.query_range(selector, lo, hi, limit=7, direction="backward"),
        logs.query_range(metric, T0 - 3600 * S, T0 + 3600 * S, step=60),
    )


def _load_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object, bool]:
    """(columnar outcome, per-record outcome, whether the columnar loader took the file)."""
    import opsbook.loki.local as local

    took: list[bool] = []
    real = LocalLogs._load_jsonl_columnar

    def spy(self: LocalLogs, data: bytes, p: Path) -> bool:
        took.append(real(self, data, p))
        return took[-1]

    monkeypatch.setattr(LocalLogs, "_load_jsonl_columnar", spy)
    outcomes = []
    for columnar in (True, False):
        monkeypatch.setattr(local, "COLUMNAR_LOAD", columnar)
        try:
            outcomes.append(_snapshot(LocalLogs(path)))
        except ConfigError as exc:
            outcomes.append(("error", exc.message))
    return outcomes[0], outcomes[1], bool(took and took[0])


def _record(labels: dict[str, object], line: object, stamp: object) -> str:
    return json.dumps({"labels": labels, "line": line, "timestamp": stamp}, ensure_ascii=False)


def test_columnar_loader_matches_per_record_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = []
    for i in range(60):
        app = ["api", "web", "db"][i % 3]
        labels: dict[str, object] = (
            {"app": app, "env": "prod"} if i % 2 else {"env": "prod", "app": app, "zone": ""}
        )
        second = 50 - i if i % 7 == 0 else i // 2  # some out of order, many shared instants
        frac = ["", ".5", ".000000001", ".25", ".123456789"][i % 5]
        stamp = f"2023-11-14T22:{14 + second // 60:02d}:{second % 60:02d}{frac}Z"
        line = ["GET /x", "caf\u00e9 \u2603", 'quote " and \\', "tab\tline", "same"][i % 5]
        rows.append(_record(labels, line, stamp))
    rows.append(rows[4])  # an exact duplicate entry: stored once
    rows.append(_record({"app": "api", "extra": "1"}, "late label", "2023-11-14T22:15:00Z"))
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    columnar, per_record, took = _load_both(path, monkeypatch)
    assert took
    assert columnar == per_record
    assert columnar[0] == 61  # type: ignore[index]


@pytest.mark.parametrize(
    "content",
    [
        # blank lines; two records on one line compensated by a blank line
        _record({"a": "b"}, "x", "2023-11-14T22:14:01Z") + "\n\n",
        _record({"a": "b"}, "x", "2023-11-14T22:14:01Z")
        + " "
        + _record({"a": "b"}, "y", "2023-11-14T22:14:02Z")
        + "\n  \n"
        + _record({"a": "b"}, "z", "2023-11-14T22:14:03Z")
        + "\n",
        # a record continued on the next line, compensated by two records on one line
        '{"labels":\n{"a": "b"}, "line": "x", "timestamp": "2023-11-14T22:14:01Z"}\n'
        + _record({"a": "b"}, "y", "2023-11-14T22:14:02Z")
        + _record({"a": "b"}, "z", "2023-11-14T22:14:03Z")
        + "\n",
        # values that are not strings, missing or null fields, other record shapes
        _record({"a": 5, "b": True}, "x", "2023-11-14T22:14:01Z"),
        _record({"a": "b"}, None, "2023-11-14T22:14:01Z"),
        _record({"a": "b"}, 12, "2023-11-14T22:14:01Z"),
        _record({"a": "b"}, "x", "2023-11-14T23:14:01+01:00"),
        _record({"a": "b"}, "x", "2023-11-14T22:14:01Z") + "\n" + '{"labels": {"a": "b"}}',
        '{"labels": {"a": "b"}, "line": "x", "timestamp": "2023-11-14T22:14:01Z", "n": NaN}',
        '{"labels": {"a": "b"}, "line": "x", "line": "y", "timestamp": "2023-11-14T22:14:01Z"}',
        json.dumps({"ts": T0, "labels": {"a": "b"}, "line": "x"}),
        _record({"a": "b"}, "x", "2023-11-14T22:14:01.1234567891Z"),
        _record({"a": "b"}, "x", "2023-11-14Z"),
        _record({"a": {"nested": "x"}}, "x", "2023-11-14T22:14:01Z"),
    ],
)
def test_odd_files_load_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(content, encoding="utf-8")
    columnar, per_record, _took = _load_both(path, monkeypatch)
    assert columnar == per_record


def test_stream_keeps_file_order_for_equal_timestamps(tmp_path: Path) -> None:
    stamp = "2023-11-14T22:14:01Z"
    rows = [
        _record({"app": "a", "env": "p"}, "first", stamp),
        _record({"env": "p", "app": "a"}, "second", stamp),
        _record({"app": "a", "env": "p", "x": ""}, "third", stamp),
    ]
    path = tmp_path / "order.jsonl"
    path.write_text("\n".join(rows) + "\n")
    data = LocalLogs(path).query_range('{app="a"}', T0, T0 + 10 * S, direction="forward")
    assert [v[1] for v in data["result"][0]["values"]] == ["first", "second", "third"]


def test_add_lines_after_a_columnar_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import opsbook.loki.local as local

    path = _logcli(tmp_path / "x.jsonl")
    extra = [(T0 + 2 * S, "a2"), (T0 + 3 * S, "a3"), (T0 + S, "early")]
    outcomes = []
    for columnar in (True, False):
        monkeypatch.setattr(local, "COLUMNAR_LOAD", columnar)
        logs = LocalLogs(path)
        logs.query(
            'sum by (app) (count_over_time({app="api"} | json | __error__="" [1m]))', T0 + 60 * S
        )
        logs.add_lines({"env": "prod", "app": "api"}, extra)
        outcomes.append(_snapshot(logs))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 6  # type: ignore[index]  # a2 at T0+2.5 s differs from a2 at 2 s


def _meta_record(labels: dict[str, object], line: str, second: int, meta: object = None) -> str:
    record: dict[str, object] = {
        "labels": labels,
        "line": line,
        "timestamp": f"2023-11-14T22:14:{second:02d}Z",
    }
    if meta is not None:
        record["structuredMetadata"] = meta
    return json.dumps(record)


def _meta_snapshot(logs: LocalLogs) -> object:
    """What a caller sees of structured metadata: categorized log answers, metric series
    grouped by metadata names, and the general snapshot."""
    lo, hi = T0 - 3600 * S, T0 + 3600 * S
    return (
        _snapshot(logs),
        logs.query_range(
            '{app=~".+"}', lo, hi, limit=1000, direction="forward", categorize_labels=True
        ),
        logs.query_range('sum by (trace_id, app) (count_over_time({app=~".+"}[1m]))', lo, hi, 60),
        logs.query_range(
            'sum by (tenant) (count_over_time({app=~".+"} | tenant!="" [1m]))', lo, hi, 60
        ),
    )


def test_columnar_loader_reads_structured_metadata_like_the_per_record_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opsbook.loki.local as local

    metas: list[object] = [
        {"trace_id": "t1", "tenant": "x"},
        None,  # no structuredMetadata field
        {},
        {"trace_id": "", "tenant": "y"},  # an empty value is no metadata
        {"tenant": "x", "trace_id": "t1"},  # same object, other key order
        {"app": "shadow"},  # a stream label's name: shown as app_extracted
        {"trace_id": "caf\u00e9"},
    ]
    rows = [
        _meta_record({"app": ["api", "web"][i % 2]}, f"l{i % 4}", i % 9, metas[i % len(metas)])
        for i in range(40)
    ]
    rows.append(rows[3])  # an exact duplicate entry: stored once
    path = tmp_path / "meta.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    took: list[bool] = []
    real = LocalLogs._load_jsonl_columnar

    def spy(self: LocalLogs, data: bytes, p: Path) -> bool:
        took.append(real(self, data, p))
        return took[-1]

    monkeypatch.setattr(LocalLogs, "_load_jsonl_columnar", spy)
    outcomes = []
    for columnar in (True, False):
        monkeypatch.setattr(local, "COLUMNAR_LOAD", columnar)
        outcomes.append(_meta_snapshot(LocalLogs(path)))
    assert took[0] is True
    assert outcomes[0] == outcomes[1]
    series = outcomes[0][2]["result"]  # type: ignore[index]
    counts = {
        tuple(sorted(r["metric"].items())): sum(int(v) for _t, v in r["values"]) for r in series
    }
    assert counts[(("app", "api"), ("trace_id", "t1"))] == 6


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"trace_id": None}, ":2: structuredMetadata must be an object of strings"),
        ("t1", ":2: structuredMetadata must be an object of strings"),
        ({"k": 1}, ":2: structuredMetadata must be an object of strings"),
        ({"k": True}, ":2: structuredMetadata must be an object of strings"),
        ({"k": {"nested": "v"}}, ":2: structuredMetadata must be an object of strings"),
        ({"k": ["v"]}, ":2: structuredMetadata must be an object of strings"),
    ],
)
def test_odd_structured_metadata_is_an_error_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meta: object, message: str
) -> None:
    text = (
        _meta_record({"app": "api"}, "a", 1, {"trace_id": "t0"})
        + "\n"
        + json.dumps(
            {**json.loads(_meta_record({"app": "api"}, "b", 2)), "structuredMetadata": meta}
        )
        + "\n"
    )
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    columnar, per_record, took = _load_both(path, monkeypatch)
    assert not took
    assert (
        columnar
        == per_record
        == ("error", f"{path}{message}" + columnar[1][len(f"{path}{message}") :])
    )  # type: ignore[index]
    assert columnar[1].startswith(f"{path}{message}")  # type: ignore[index]


def _rec(line: str, second: int, meta: object = None, **extra: object) -> str:
    record = json.loads(_meta_record({"a": "b"}, line, second))
    if meta is not None:
        record["structuredMetadata"] = meta
    return json.dumps({**record, **extra})


@pytest.mark.parametrize(
    ("content", "columnar"),
    [
        # metadata null (an error) in one record, the word null in another record's line
        (_rec("x", 1, {"k": "v"}) + "\n" + _rec("null", 2, structuredMetadata=None) + "\n", False),
        # the word null, even JSON's null inside a line, in a record without metadata
        (_rec("x", 1, {"k": "v"}) + "\n" + _rec('{"u":null} null', 2) + "\n", True),
        # parsed labels (a categorized export) join the labels
        (_rec("x", 1, {"k": "v"}, parsed={"p": "1"}) + "\n", False),
        # Windows line ends
        (_rec("x", 1, {"k": "v"}) + "\r\n" + _rec("y", 2) + "\r\n", True),
        # a line ending in } inside a string that goes on on the next line
        ('{"labels": {"a": "b"}, "line": "x}\n{y", "timestamp": "2023-11-14T22:14:01Z"}\n', False),
        # a record continued on the next line after an object member
        (
            '{"labels": {"a": "b"}, "line": "x", "timestamp": "2023-11-14T22:14:01Z", "z": {}\n}\n',
            False,
        ),
    ],
)
def test_odd_metadata_files_load_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, columnar: bool
) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(content, encoding="utf-8", newline="")
    first, per_record, took = _load_both(path, monkeypatch)
    assert first == per_record
    assert took is columnar
