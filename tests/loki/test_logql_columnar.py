"""The columnar path (``logql/columnar.py``) against the general path, for every parser.

One conformance table: each query template is filled with each parser stage and run
through the general path (``FAST_PATH = False``) and the columnar path, cold (nothing
parsed) and cached (a second run reads the per-stream parse cache), over the same
streams held in memory and loaded from a file. The results must be identical.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import LogQLEvalError, columnar
from opsbook.loki.timeutil import ns_to_rfc3339

S = 1_000_000_000
T0 = 1_699_999_980

PARSERS = {  # name -> (stage, labels it sets on the well-formed lines of the table)
    "json": ("json", {"level", "route", "status", "latency_ms", "dur", "size", "addr"}),
    "logfmt": ("logfmt", {"level", "route", "status", "latency_ms", "dur", "size", "addr"}),
    "logfmt-strict": (
        "logfmt --strict",
        {"level", "route", "status", "latency_ms", "dur", "size", "addr"},
    ),
    "regexp": (
        'regexp "route=(?P<route>\\\\S*) status=(?P<status>\\\\S+)'
        '(?: latency_ms=(?P<latency_ms>\\\\S*))?"',
        {"route", "status", "latency_ms"},
    ),
    "regexp-unnamed": ('regexp "(\\\\w+)=(?P<status>\\\\d+)"', {"status"}),
    "pattern": (
        'pattern "level=<level> route=<route> status=<status> latency_ms=<latency_ms> <_>"',
        {"level", "route", "status", "latency_ms"},
    ),
}

TEMPLATES = [  # (query with the parser as {p}, labels it reads from the parser)
    ('sum by (app) (count_over_time({{env="prod"}} | {p} | status >= 500 [1m]))', {"status"}),
    ('sum by (route) (rate({{env="prod"}} | {p} | __error__="" [1m]))', set()),
    (
        'sum by (app, route) (count_over_time({{env="prod"}} |= "status" | {p}'
        ' | route=~"/a.*" or status < 300 [1m]))',
        {"route", "status"},
    ),
    (
        'quantile_over_time(0.9, {{env="prod"}} | {p} | unwrap latency_ms | __error__="" [1m])'
        " by (app)",
        {"latency_ms"},
    ),
    ('sum by (app) (sum_over_time({{env="prod"}} | {p} | unwrap latency_ms [1m]))', {"latency_ms"}),
    ('sum by (app) (count_over_time({{env="prod"}} | {p} [1m]))', set()),
    (
        "sum by (__error__, __error_details__) "
        '(count_over_time({{env="prod"}} | {p} | status > 100 [1m]))',
        {"status"},
    ),
    ('sum by (app) (count_over_time({{env="prod"}} | {p} | dur > 1s [1m]))', {"dur"}),
    (
        'sum by (route) (sum_over_time({{env="prod"}} | {p} | unwrap bytes(size)'
        ' | __error__="" [1m]))',
        {"size"},
    ),
    (
        'sum by (level, app_extracted) (count_over_time({{env="prod"}} | {p} | level!="" [1m]))',
        {"level"},
    ),
    ('sum by (route) (count_over_time({{env="prod"}} | {p} | status=~"5.." [1m]))', {"status"}),
    (
        'sum by (app) (count_over_time({{env="prod"}} | {p} | addr = ip("10.0.0.0/8") [1m]))',
        {"addr"},
    ),
    (
        'sum by (status) (count_over_time({{env="prod"}} | app="api" | {p} | latency_ms > 10'
        " [1m]))",
        {"status", "latency_ms"},
    ),
    (
        'max_over_time({{env="prod"}} | {p} | unwrap duration(dur) | __error__="" [1m]) by (route)',
        {"dur"},
    ),
]
# (query, must give samples, must take the columnar path on every stream): a logfmt
# query reading x_extracted where x is a stream label is left to the general path
TABLE = [
    pytest.param(
        template.format(p=stage),
        reads <= sets,
        not (name.startswith("logfmt") and "_extracted" in template),
        id=f"{name}-{i}",
    )
    for i, (template, reads) in enumerate(TEMPLATES)
    for name, (stage, sets) in PARSERS.items()
]

ODD_LOGFMT = [
    'level=info route=/a status=500 msg="quoted value" latency_ms=3',  # a quote
    "level=info route=/a status=500 status=200 latency_ms=4",  # a key written twice
    "level=info route=/b status=503 a.b=1 latency_ms=5",  # a key that gets sanitised
    "level=info =x route=/b status=500 latency_ms=6",  # a pair starting with =
    "level=info route=/b status=5=00 latency_ms=7",  # two = in a pair
    "level=info route=/é status=500 latency_ms=8",  # not ASCII
    "level=info\x01 route=/a status=500 latency_ms=9",  # a control character
    "level=info route status=502 latency_ms=",  # a standalone key, an empty value
    "app=inner level=warn route=/c status=500 latency_ms=1.5e3 x",  # clashes with a stream label
    "",
    "plain text",
    "level=info route=/a status=abc latency_ms=NaN dur=bad size=nope",
]


def _line(rng: random.Random, app: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(ODD_LOGFMT)
    if roll < 0.25 or app == "json":
        body = {
            "level": rng.choice(["info", "error"]),
            "route": rng.choice(["/a", "/b", "/a/x"]),
            "status": rng.choice([200, 404, 500, 503, "502"]),
            "latency_ms": rng.choice([10, 20.5, 0.1, 250]),
            "dur": rng.choice(["2s", "500ms", "bad"]),
            "size": rng.choice(["2KB", "1KiB", "nope", "512"]),
            "addr": rng.choice(["10.1.2.3", "192.168.0.1", "x"]),
        }
        if rng.random() < 0.2:
            body["app"] = "inner"
        return json.dumps(body)
    pairs = [
        ("level", rng.choice(["info", "error", "debug"])),
        ("route", rng.choice(["/a", "/b", "/a/x", ""])),
        ("status", rng.choice(["200", "201", "404", "500", "503", "x"])),
        ("latency_ms", rng.choice(["10", "20.5", "0.1", "250", "1e-7", "-3"])),
        ("dur", rng.choice(["2s", "500ms", "1m30s", "bad", ""])),
        ("size", rng.choice(["2KB", "1KiB", "nope", "512"])),
        ("addr", rng.choice(["10.1.2.3", "192.168.0.1", "x"])),
    ]
    if rng.random() < 0.2:
        pairs = [p for p in pairs if p[0] != rng.choice(["route", "status", "latency_ms"])]
    return " ".join(f"{k}={v}" for k, v in pairs) + " msg=served"


def _entries() -> list[tuple[dict[str, str], int, str]]:
    rng = random.Random(12)
    streams = [
        {"app": "api", "env": "prod"},
        {"app": "web", "env": "prod"},
        {"app": "json", "env": "prod"},
        {"app": "rag", "env": "prod", "route": "/r"},
    ]
    out = []
    for i in range(1200):
        labels = streams[i % len(streams)]
        out.append((labels, int((T0 + i // 4 * 0.4) * S), _line(rng, labels["app"])))
    return out


def _stores(tmp: Path) -> tuple[LocalLogs, LocalLogs]:
    entries = _entries()
    in_memory = LocalLogs([])
    by_stream: dict[tuple[tuple[str, str], ...], list[tuple[int, str]]] = {}
    for labels, ts, line in entries:
        by_stream.setdefault(tuple(labels.items()), []).append((ts, line))
    for key, rows in by_stream.items():
        in_memory.add_lines(dict(key), rows)
    path = tmp / "parsers.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for labels, ts, line in entries:
            record = {"labels": labels, "line": line, "timestamp": ns_to_rfc3339(ts)}
            out.write(json.dumps(record) + "\n")
    return in_memory, LocalLogs(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalLogs, LocalLogs]:
    return _stores(tmp_path_factory.mktemp("parsers"))


def _outcome(store: LocalLogs, query: str) -> object:
    try:
        return store.query_range(query, int(T0 * S), int((T0 + 130) * S), step="10s")
    except LogQLEvalError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize(("query", "samples", "columnar_only"), TABLE)
def test_columnar_path_equals_general_path_cold_and_cached(
    stores: tuple[LocalLogs, LocalLogs],
    query: str,
    samples: bool,
    columnar_only: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_memory, from_file = stores
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = _outcome(in_memory, query)
    assert _outcome(from_file, query) == expected
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    for store in stores:
        for stream in store._streams.values():
            stream.cache.clear()
    taken: list[bool] = []
    real_run = columnar.ColumnarPlan.run

    def counted_run(plan: columnar.ColumnarPlan, stream: object) -> object:
        parts = real_run(plan, stream)
        taken.append(parts is not None)
        return parts

    monkeypatch.setattr(columnar.ColumnarPlan, "run", counted_run)
    for store in (in_memory, from_file, in_memory, from_file):  # cold, then cached
        assert _outcome(store, query) == expected
    assert taken and all(taken) is columnar_only  # the columnar path ran, on every stream
    if isinstance(expected, dict) and samples:
        assert expected["result"]  # the table exercises real samples


def test_logfmt_is_read_vectorised_and_odd_lines_by_the_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = ["level=info status=500 latency_ms=1", *ODD_LOGFMT, "status=200 level=debug"]
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(int(T0 * S) + i, line) for i, line in enumerate(lines)])
    query = (
        'sum by (level) (count_over_time({app="x"} | logfmt | status >= 200 | __error__="" [1m]))'
    )
    by_stage: list[list[int]] = []
    real_stage_fill = columnar._stage_fill

    def spy(cache: object, lines: object, todo: object, *args: object) -> None:
        by_stage.append(list(todo))  # type: ignore[call-overload]
        real_stage_fill(cache, lines, todo, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(columnar, "_stage_fill", spy)
    result = store.query(query, time=int((T0 + 30) * S))["result"]
    got = {r["metric"]["level"]: r["value"][1] for r in result}
    # the stage reads: a quote, a key twice, a.b, "=x", "5=00", "é", "\x01"; a standalone
    # key, an empty value, "", plain text and a failed conversion are read vectorised
    assert by_stage == [[1, 2, 3, 4, 5, 6, 7]]
    assert got == {"info": "7", "info\x01": "1", "warn": "1", "debug": "1"}


def test_regexp_with_unnamed_groups_is_read_by_the_stage_and_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(int(T0 * S) + i, f"k={i % 3}") for i in range(30)])
    query = 'sum by (v) (count_over_time({app="x"} | regexp "(\\\\w)=(?P<v>\\\\d)" [1m]))'
    calls: list[int] = []
    real_stage_fill = columnar._stage_fill

    def spy(cache: object, lines: object, todo: object, *args: object) -> None:
        calls.append(len(todo))  # type: ignore[arg-type]
        real_stage_fill(cache, lines, todo, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(columnar, "_stage_fill", spy)
    for _ in range(2):
        result = store.query(query, time=int((T0 + 30) * S))["result"]
        assert {r["metric"]["v"]: r["value"][1] for r in result} == {
            "0": "10",
            "1": "10",
            "2": "10",
        }
    assert calls == [30]  # parsed once, then read from the cache


@pytest.mark.parametrize(
    ("pattern", "line", "captures"),
    [
        ("<a> <b>", "x y z", {"a": "x", "b": "y z"}),
        ("[<ts>] <_> <msg>", "[t1] - hello world", {"ts": "t1", "msg": "hello world"}),
        ("<a>-<b>:<c>", "p-q-r:s", {"a": "p", "b": "q-r", "c": "s"}),
        ("<a>.(<b>)", "x.y.(z)", {"a": "x.y", "b": "z"}),
        ("<a>$^<b>", "1$^2", {"a": "1", "b": "2"}),
    ],
)
def test_pattern_regex_captures_what_the_pattern_stage_captures(
    pattern: str, line: str, captures: dict[str, str]
) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from opsbook.loki.logql.pipeline import compile_pattern, pattern_matches

    parts = compile_pattern(pattern)
    assert dict(pattern_matches(parts, line)) == captures
    found = pc.extract_regex(pa.array([line]), columnar._pattern_regex(parts))
    assert found.to_pylist() == [captures]
