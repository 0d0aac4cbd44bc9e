"""The columnar path (``logql/columnar.py``) against the general path, for every parser.

One conformance table drives both paths: each query runs through the general path
(``FAST_PATH = False``) and the columnar path, cold (nothing parsed) and cached (a second
run reads the per-stream parse cache, streams on two threads), over the same streams held
in memory and loaded from a file, and the results must be identical. Its rows: JSON queries over streams of
odd JSON, and query templates filled with each parser stage (json, logfmt, regexp,
pattern) over streams of logfmt and JSON lines with the odd cases of each parser.

Time base: T0 is a multiple of 60 s; entries sit at T0 + k seconds.
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
T0 = 1_699_999_980  # seconds, divisible by 60


def ns(seconds: float) -> int:
    return int(round((T0 + seconds) * S))


# ----------------------------------------------------------------------------- JSON streams


def _mixed_entries() -> list[tuple[dict[str, str], int, str]]:
    """Streams mixing JSON shapes, bad lines and label clashes (deterministic)."""
    import random

    rng = random.Random(11)
    routes = ["/a", "/b", "/a/x", ""]
    durs = ["2s", "500ms", "1m30s", "bad", 3, "0", ""]
    sizes = ["2KB", "1KiB", "3 MB", "nope", 512, "1.5kb"]
    extras: list[dict[str, object]] = [
        {},
        {"user": {"id": 7, "name": "x", "": {"deep": 1}}},
        {"ratio": 1.50, "flag": True},
        {"sta tus": "999", "1abc": "digit"},
        {"app": "inner", "tags": [1, 2], "n": None},
        {"__error__": "from-line", "addr": "10.1.2.3"},
        {"addr": "192.168.0.1", "big": 123456789012345678901234567890},
        {"latency_ms": "12.5", "note": "caf\u00e9 \ufffd"},
        {"latency_ms": "NaN"},
        {"status": "abc"},
        {"user": "not-a-dict"},
    ]
    entries: list[tuple[dict[str, str], int, str]] = []
    streams = [
        {"app": "api", "env": "prod"},
        {"app": "web", "env": "prod"},
        {"app": "rag", "env": "prod", "route": "/r"},
    ]
    streams += [{"app": app, "env": "prod"} for app in ("clean", "nested", "tricky")]
    for i in range(1800):
        labels = streams[i % 6]
        ts = ns(i // 6 * 0.4)  # every stream has an entry at the same instants
        roll = rng.random()
        if labels["app"] in ("clean", "nested", "tricky"):  # well-formed, one type per key
            body = {
                "status": rng.choice([200, 201, 404, 500, 503]),
                "latency_ms": rng.choice([10, 20.5, 0.1, 1e-7, 250, 3.25, 12345678901234567890]),
                "route": rng.choice(routes),
                "dur": rng.choice(["2s", "500ms", "bad", "", "0"]),
                "size": rng.choice(["2KB", "1KiB", "nope", "512"]),
                "flag": rng.random() < 0.5,
                "addr": rng.choice(["10.1.2.3", "192.168.0.1", "x"]),
                "note": rng.choice(["caf\u00e9", "a\ufffdb", "plain"]),
                "tags": [1, 2],
            }
            if labels["app"] == "nested":
                body["user"] = {"id": rng.choice([3, 7, 9]), "name": "x"}
                body["app"] = "inner"
                body["latency_ms"] = rng.choice([1, 2, 3, -4])
                body["sta tus"] = rng.choice(["999", "1"])  # sanitised into sta_tus
                if rng.random() < 0.1:
                    body["__error__"] = rng.choice(["", "from-line"])
            if rng.random() < 0.1:
                del body["route"]
            if rng.random() < 0.1:
                del body["status"]
            line = json.dumps(body, ensure_ascii=rng.random() < 0.5)
            if labels["app"] == "tricky" and roll < 0.03:  # what only pyarrow would accept
                line = rng.choice(['{"status": NaN}', '{"a": 1} {"b": 2}', '{"n": -Infinity}'])
        elif labels["app"] == "rag" and roll < 0.3:
            line = f'level=info msg="x{i}" dur={rng.choice(["1s", "5ms"])}'
        elif roll < 0.04:
            line = rng.choice(["plain text", "", "123", "[1, 2]", '{"a": 1', '"str"', "{}"])
        else:
            body: dict[str, object] = {
                "status": rng.choice([200, 200, 201, 404, 500, 503, "502"]),
                "latency_ms": rng.choice([10, 20.5, 0.1, 1e-7, 250, -0.0, 3.25]),
                "route": rng.choice(routes),
                "dur": rng.choice(durs),
                "size": rng.choice(sizes),
            }
            body.update(rng.choice(extras))
            line = json.dumps(body, ensure_ascii=rng.random() < 0.5)
        entries.append((labels, ts, line))
    return entries


def _mixed_store(tmp_path: object | None = None) -> LocalLogs:
    from pathlib import Path

    entries = _mixed_entries()
    if tmp_path is None:
        store = LocalLogs([])
        by_stream: dict[tuple[tuple[str, str], ...], list[tuple[int, str]]] = {}
        for labels, ts, line in entries:
            by_stream.setdefault(tuple(labels.items()), []).append((ts, line))
        for key, rows in by_stream.items():
            store.add_lines(dict(key), rows)
        return store
    path = Path(str(tmp_path)) / "mixed.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for labels, ts, line in entries:
            stamp = json.dumps({"labels": labels, "line": line, "ts": 0})
            record = json.loads(stamp)
            del record["ts"]
            from opsbook.loki.timeutil import ns_to_rfc3339

            record["timestamp"] = ns_to_rfc3339(ts)
            out.write(json.dumps(record) + "\n")
    return LocalLogs(path)


JSON_QUERIES = [  # over the mixed JSON streams (odd JSON, clashes, bad lines)
    'sum by (app) (count_over_time({env="prod"} | json | status >= 500 [1m]))',
    'sum by (route) (rate({env="prod"} | json | __error__="" [1m]))',
    'sum by (app, route) (count_over_time({env="prod"} |= "status" | json'
    ' | route=~"/a.*" or status < 300 [1m]))',
    'quantile_over_time(0.9, {env="prod"} | json | unwrap latency_ms | __error__="" [1m]) by (app)',
    'quantile_over_time(0.5, {env="prod"} | json | latency_ms > 1 | unwrap latency_ms'
    ' | __error__="" [30s]) by (route)',
    'sum by (app) (sum_over_time({env="prod"} | json | unwrap latency_ms | __error__="" [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json [1m]))',
    'sum by (__error__) (count_over_time({env="prod"} | json | __error__!="" [1m]))',
    'sum by (__error__, __error_details__) (count_over_time({env="prod"} | json'
    " | status > 100 [1m]))",
    'sum by (app) (count_over_time({env="prod"} | json | dur > 1s [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | dur > 1s | __error__="" [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | size >= 2KB | __error__="" [1m]))',
    'max_over_time({env="prod"} | json | unwrap duration(dur) | __error__="" [1m]) by (app)',
    'sum by (route) (sum_over_time({env="prod"} | json | unwrap bytes(size) | __error__="" [1m]))',
    'sum by (user_name) (count_over_time({env="prod"} | json | user_id > 5 [1m]))',
    'sum by (app_extracted, app) (count_over_time({env="prod"} | json [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | addr = ip("10.0.0.0/8") [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | addr != ip("10.0.0.0/8")'
    ' | __error__="" [1m]))',
    'sum by (ratio, flag) (count_over_time({env="prod"} | json | __error__="" [1m]))',
    'sum by (sta_tus, _1abc, note) (count_over_time({env="prod"} | json | __error__="" [1m]))',
    'sum by (app) (bytes_over_time({env="prod"} | json | status >= 200 [1m]))',
    'sum by (app) (bytes_rate({env="prod"} |~ "route" [1m]))',
    'avg_over_time({env="prod"} | json | unwrap latency_ms | __error__="" [1m]) by (app)',
    'stddev_over_time({env="prod"} | json | unwrap latency_ms | __error__="" [1m]) by (app)',
    'first_over_time({env="prod"} | json | unwrap status | __error__="" [1m]) by (route)',
    'last_over_time({env="prod"} | json | unwrap status | __error__="" [1m] offset 30s) by (app)',
    'sum by (app) (count_over_time({env="prod"} | json | status > 300 or dur > 1s [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | status > 300 and size > 1KB [1m]))',
    'sum by (app) (count_over_time({env="prod"} | json | status > 300 and size > 1KB'
    ' | __error__="" [1m]))',
    'sum by (app) (count_over_time({env="prod"} | app="api" | json | status > 300 [1m]))',
    'sum by (app) (count_over_time({env="prod"} | status > 300 | json [1m])) or vector(0)',
    'sum by (app) (count_over_time({env="prod"} | json | route="" [1m]))',
    'sum by (route) (count_over_time({env="prod"} !~ "plain|level" | json | __error__=""'
    ' | status=~"5.." [1m]))',
    'topk(2, sum by (route) (rate({env="prod"} | json | __error__="" [1m])))',
    'sum by (app) (rate({env="prod"} | json | unwrap latency_ms | latency_ms > 1'
    ' | __error__="" [1m]))',
    'quantile_over_time(0.95, {env="prod"} | json | unwrap latency_ms [1m]) by (app)',
    'count_over_time({env="prod"} | json | __error__="" [1m])',
    'sum by (status, flag) (count_over_time({env="prod"} | json | __error__="" [1m]))',
    'sum by (status) (count_over_time({env="prod"} | json | status != 404 [1m]))',
]


# ----------------------------------------------------------------------------- parser streams

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
    'level=info msg="say \\"hi\\"" route=/a status=500 latency_ms=2',  # an escape
    'level=info msg="x status=500" route=/b latency_ms=3',  # a key only inside quotes
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
    msg = rng.choice([" msg=served", ' msg="request served"', ' msg=""', ' msg="a=b c"'])
    return " ".join(f"{k}={v}" for k, v in pairs) + msg


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


# ----------------------------------------------------------------------------- the table

# (query, stores, must give samples, path): ``path`` "columnar" demands the columnar path
# on every stream, "general" that some stream is left to the general path (a logfmt query
# reading x_extracted where x is a stream label), None checks nothing (no grouping).
CONFORMANCE = [
    pytest.param(
        query,
        "json",
        "1abc" not in query,
        "columnar" if "json" in query and "by (" in query else None,
        id=f"json-{i}",
    )
    for i, query in enumerate(JSON_QUERIES)
] + [
    pytest.param(
        template.format(p=stage),
        "parsers",
        reads <= sets,
        "general" if name.startswith("logfmt") and "_extracted" in template else "columnar",
        id=f"{name}-{i}",
    )
    for i, (template, reads) in enumerate(TEMPLATES)
    for name, (stage, sets) in PARSERS.items()
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[LocalLogs, LocalLogs]]:
    return {
        "json": (_mixed_store(), _mixed_store(tmp_path_factory.mktemp("mixed"))),
        "parsers": _stores(tmp_path_factory.mktemp("parsers")),
    }


def _outcome(store: LocalLogs, query: str) -> object:
    try:
        return store.query_range(query, ns(0), ns(130), step="10s")
    except LogQLEvalError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize(("query", "data", "samples", "path"), CONFORMANCE)
def test_columnar_path_equals_general_path_cold_and_cached(
    stores: dict[str, tuple[LocalLogs, LocalLogs]],
    query: str,
    data: str,
    samples: bool,
    path: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_memory, from_file = stores[data]
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = _outcome(in_memory, query)
    assert _outcome(from_file, query) == expected
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    monkeypatch.setattr(columnar, "THREADS", 2)  # streams run on two threads, however few
    monkeypatch.setattr(columnar, "PARALLEL_LINES", 0)  # lines the table has
    # json: orjson only, pyarrow reading every key, pyarrow reading the wanted keys first
    for arrow, narrow in (
        ((False, False), (True, False), (True, True)) if "json" in query else ((True, True),)
    ):
        monkeypatch.setattr(columnar, "ARROW_JSON", arrow)
        monkeypatch.setattr(columnar, "NARROW_JSON", narrow)
        taken = _check_columnar(query, expected, (in_memory, from_file), monkeypatch)
        if path is not None:
            assert taken and all(taken) is (path == "columnar")
    if isinstance(expected, dict) and samples:
        assert expected["result"]  # the table exercises real samples


def _check_columnar(
    query: str, expected: object, stores: tuple[LocalLogs, ...], monkeypatch: pytest.MonkeyPatch
) -> list[bool]:
    """Run ``query`` cold then cached on each store; which streams took the columnar path."""
    in_memory, from_file = stores
    for store in stores:  # start cold: nothing parsed yet
        for stream in store._streams.values():
            stream.cache.clear()
    taken: list[bool] = []
    real_run = columnar.ColumnarPlan.run

    def counted_run(plan: columnar.ColumnarPlan, stream: object) -> object:
        parts = real_run(plan, stream)
        taken.append(parts is not None)
        return parts

    monkeypatch.setattr(columnar.ColumnarPlan, "run", counted_run)
    for store in (in_memory, from_file, in_memory, from_file):  # twice: cold, then cached
        assert _outcome(store, query) == expected
    monkeypatch.setattr(columnar.ColumnarPlan, "run", real_run)
    return taken


# ----------------------------------------------------------------------------- json specifics


@pytest.mark.parametrize(
    ("lines", "taken"),
    [
        (['{"status": 200, "route": "/a"}', '{"status": 500.5, "route": "/b", "x": [1.5]}'], True),
        (['{"status": 200}', '{"status": NaN}'], False),
        (['{"status": 200}', '{"x": {"y": [1, -Infinity]}}'], False),
        (['{"status": 200} {"status": 500}', '{"status": 200}'], False),
        (['{"status": 200}', '{"status": "x"}'], False),  # one key, two types
        (['{"status": 200}', '{"status": 1}}'], False),
        (['{"status": 200}', "plain"], False),
        (['{"status": 200}', '{"status": 2, "status": 3}'], False),
        (['{"status": 200}', '{" status": 3}'], False),  # two keys give one label
        (['{"status": 200}', '{"other": {"a": 1}}'], True),  # a nested object nobody reads
        (['{"status": 200}', '{"route": {"a": 1}}'], False),  # could flatten into route
        (['{"status": 200}', '{"status": {"a": 1}}'], False),
        (['{"status": 200}', '{"status": 500, "route": "\udc80"}'], False),  # lone surrogate
    ],
)
def test_arrow_json_takes_only_what_orjson_reads_the_same(
    lines: list[str], taken: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(i), line) for i, line in enumerate(lines)])
    query = 'sum by (route) (count_over_time({app="x"} | json | status >= 200 [1m]))'
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = _outcome(store, query)
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    results: list[bool] = []
    real_fill = columnar._arrow_fill

    def spy(*args: object) -> bool:
        results.append(real_fill(*args))  # type: ignore[arg-type]
        return results[-1]

    monkeypatch.setattr(columnar, "_arrow_fill", spy)
    assert _outcome(store, query) == expected
    assert results == [taken]


_SUM_LATENCY = 'sum by (app) (sum_over_time({app="x"} | json | unwrap latency_ms [1m]))'
_BY_ROUTE = 'sum by (route) (count_over_time({app="x"} | json | status >= 200 [1m]))'


@pytest.mark.parametrize(
    ("lines", "query", "taken"),
    [
        # the wanted keys as written: read narrow, whatever the values say
        (['{"latency_ms": 5, "msg": "latency_ms: high"}', '{"latency_ms": 2.5}'], None, True),
        (['{"msg": "see latency_ms", "latency_ms": 5}'], None, True),
        (['{"a": {"latency_ms": 1}, "latency_ms": 5}'], None, True),  # nested elsewhere
        (['{"arr": [{"latency_ms": 1}], "latency_ms": 5}'], None, True),
        (['{"a\\"latency_ms": 1, "latency_ms": 5}'], None, True),  # another key holds it
        (['{"latency_ms": 5, "x": "NaN", "y": "Infinity"}'], None, True),
        (['{"latency_ms": 5, "route": "\\u003ca\\u003e"}'], None, True),
        (['{"route": "/a"}', '{"latency_ms": 7, "route": "/b"}'], None, True),  # absent first
        (['{"status": 200, "route": "/a"}', '{"status": 500, "route": null}'], _BY_ROUTE, True),
        (
            ['{"flag": true, "status": 1}'],
            'sum by (flag) (count_over_time({app="x"} | json [1m]))',
            True,
        ),
        (
            ['{"code": 200}', '{"code": -0}'],
            'sum by (code) (count_over_time({app="x"} | json [1m]))',
            True,
        ),
        (
            ['{"app": "inner", "n": 1}'],
            'sum by (app) (count_over_time({app="x"} | json [1m]))',
            True,
        ),
        # another key could set the label (the json stage keeps the first): full reading
        (['{" latency_ms": 3, "latency_ms": 5}'], None, False),
        (['{"latency_ms ": 3, "latency_ms": 5}'], None, False),
        (['{"latency-ms": 3, "latency_ms": 5}'], None, False),
        (['{"latency\u00e9ms": 3}'], None, False),
        (['{"latency\\u00e9ms": 3}'], None, False),
        (['{"\\u0073tatus ": 300}', '{"status": 200}'], _BY_ROUTE, False),
        (['{"\\nlatency_ms": 3}'], None, False),
        (['{"latency": {"ms": 3}}', '{"latency_ms": 5}'], None, False),  # flattens into it
        (['{"latency_ms": 5, "latency_ms": 6}'], None, False),  # written twice
        # what orjson refuses or reads otherwise
        (['{"latency_ms": 1}', '{"latency_ms": 5, "x": NaN}'], None, False),
        (['{"latency_ms": 1}', '{"latency_ms": 5, "x": [1, -Infinity]}'], None, False),
        (['{"latency_ms": 5}', "plain"], None, False),
        (['{"latency_ms": 5}', '{"latency_ms": "6"}'], None, False),  # a number, then text
        (['{"latency_ms": 5}', '{"latency_ms": {"v": 1}}'], None, False),
        (['{"status": 200, "route": "/a"}', '{"status": 2, "route": 5}'], _BY_ROUTE, False),
        (['{"ratio": 1.50}'], 'sum by (ratio) (count_over_time({app="x"} | json [1m]))', False),
        # labels it does not declare
        (
            ['{"latency_ms": 5}'],
            'sum by (app) (count_over_time({app="x"} | json | latency_ms > 1 | __error__="" [1m]))',
            False,
        ),
        (
            ['{"app": "in"}'],
            'sum by (app_extracted) (count_over_time({app="x"} | json [1m]))',
            False,
        ),
    ],
)
def test_narrow_json_reading_equals_the_json_stage(
    lines: list[str], query: str | None, taken: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow reading only the wanted keys gives what ``| json`` gives, cold and cached,
    and is used exactly where no other key, type or literal could make them differ."""
    query = query or _SUM_LATENCY
    store = LocalLogs([])
    store.add_lines({"app": "x"}, [(ns(i), line) for i, line in enumerate(lines)])
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = _outcome(store, query)
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    results: list[bool] = []
    real_narrow = columnar._narrow_table

    def spy(*args: object) -> object:
        table = real_narrow(*args)  # type: ignore[arg-type]
        results.append(table is not None)
        return table

    monkeypatch.setattr(columnar, "_narrow_table", spy)
    assert _outcome(store, query) == expected
    assert _outcome(store, query) == expected  # cached
    assert results == [taken]
    if taken:  # the same outcome as reading every key (the next query's table)
        for stream in store._streams.values():
            stream.cache.clear()
        monkeypatch.setattr(columnar, "NARROW_JSON", False)
        assert _outcome(store, query) == expected


def test_a_second_set_of_labels_reads_every_key_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first query of a stream reads its keys narrowly; the next one with other labels
    reads the whole table, which serves every later query."""
    store = LocalLogs([])
    lines = [
        f'{{"status": {200 + i % 3}, "route": "/{i % 2}", "latency_ms": {i}}}' for i in range(9)
    ]
    store.add_lines({"app": "x"}, [(ns(i), line) for i, line in enumerate(lines)])
    queries = [_SUM_LATENCY, _BY_ROUTE, 'sum by (status) (count_over_time({app="x"} | json [1m]))']
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = [_outcome(store, query) for query in queries]
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    reads: list[str] = []
    real_narrow, real_table = columnar._narrow_table, columnar._arrow_table

    def narrow(*args: object) -> object:
        reads.append("narrow")
        return real_narrow(*args)  # type: ignore[arg-type]

    def full(*args: object) -> object:
        reads.append("full" if len(args) == 1 else "declared")
        return real_table(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(columnar, "_narrow_table", narrow)
    monkeypatch.setattr(columnar, "_arrow_table", full)
    assert [_outcome(store, query) for query in queries] == expected
    assert reads == ["narrow", "declared", "full"]


def test_columnar_caches_serve_a_sequence_of_different_queries(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsed tables and labels cached by one query stay right for the next ones."""
    store = _mixed_store(tmp_path)
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected = [_outcome(store, query) for query in JSON_QUERIES]
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    for _ in range(2):
        assert [_outcome(store, query) for query in JSON_QUERIES] == expected
    narrow = (
        'sum by (route) (count_over_time({env="prod"} | json | status >= 500 | __error__="" [10s]))'
    )
    monkeypatch.setattr(columnar, "FAST_PATH", False)
    expected_narrow = store.query(narrow, time=ns(30))
    monkeypatch.setattr(columnar, "FAST_PATH", True)
    assert store.query(narrow, time=ns(30)) == expected_narrow  # a slice, not the stream
    assert expected_narrow["result"]


@pytest.mark.parametrize("arrow", [False, True])
def test_error_series_show_numbers_and_errors_as_the_json_stage_wrote_them(
    arrow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalLogs([])
    lines = [
        '{"__error__": "x", "latency_ms": 5.50, "v": "abc"}',  # unwrap error replaces "x"
        '{"latency_ms": 7, "v": "1.5"}',
        '{"latency_ms": 1e2, "v": "nope"}',
    ]
    store.add_lines({"app": "e"}, [(ns(i), line) for i, line in enumerate(lines)])
    monkeypatch.setattr(columnar, "ARROW_JSON", arrow)
    for query in (
        'sum by (__error__) (sum_over_time({app="e"} | json | latency_ms > 0 | unwrap v [1m]))',
        'sum by (app) (count_over_time({app="e"} | json | latency_ms > 0 | v > 1 [1m]))',
    ):
        monkeypatch.setattr(columnar, "FAST_PATH", False)
        expected = _outcome(store, query)
        monkeypatch.setattr(columnar, "FAST_PATH", True)
        for stream in store._streams.values():
            stream.cache.clear()
        assert _outcome(store, query) == expected
        assert isinstance(expected, tuple) and "Err" in expected[1]


# ----------------------------------------------------------------------------- logfmt, regexp, pattern specifics


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
    # the stage reads: a key twice, a.b, "=x", "5=00", "é", "\x01", an escaped quote, a
    # key inside quotes; quoted values, a standalone key, an empty value, "", plain text
    # and a failed conversion are read vectorised
    assert by_stage == [[2, 3, 4, 5, 6, 7, 13, 14]]
    assert got == {"info": "8", "info\x01": "1", "warn": "1", "debug": "1"}


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
