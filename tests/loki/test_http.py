"""LokiHTTP against a real local HTTP server speaking Loki's API."""

from __future__ import annotations

import base64
import email.utils
import socket

import pytest

from opsbook.loki.http import (
    LokiAuthError,
    LokiHTTP,
    LokiQueryError,
    LokiUnavailable,
    is_log_query,
    retry_after_seconds,
    subranges,
)
from opsbook.loki.timeutil import NS_PER_S

from .conftest import CannedLogs

T0 = 1_795_824_000 * NS_PER_S  # 2026-11-28T00:00:00Z
A = {"service": "a"}
B = {"service": "b"}


def _entries() -> list[tuple[dict[str, str], int, str]]:
    """23 entries over two streams; groups of 3-4 share a nanosecond across page edges."""
    out = []
    for i in range(10):
        out.append((A, T0 + i * 1000, f"a{i}"))
    for i in (2, 3, 4, 5, 6):  # same ns as a2..a6 in another stream
        out.append((B, T0 + i * 1000, f"b{i}"))
    for i in range(4):  # four lines at the very same ns in one stream
        out.append((A, T0 + 20_000, f"same{i}"))
    for i in range(4):
        out.append((B, T0 + 30_000 + i, f"late{i}"))
    return out


def _flat(data: dict) -> list[tuple[tuple, int, str]]:
    return sorted(
        (tuple(sorted(s["stream"].items())), int(ts), line)
        for s in data["result"]
        for ts, line in s["values"]
    )


def _client(server, **kw) -> LokiHTTP:
    kw.setdefault("sleep", lambda s: None)
    return LokiHTTP(server.url, **kw)


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_paging_returns_every_entry_once_across_same_ns_duplicates(serve, direction):
    entries = _entries()
    server = serve(CannedLogs(entries), max_entries=5)
    loki = _client(server, page_limit=5)
    data = loki.query_range('{service=~".+"}', T0, T0 + 10**6, limit=1000, direction=direction)
    expected = sorted((tuple(sorted(lb.items())), ts, line) for lb, ts, line in entries)
    assert _flat(data) == expected
    limits = [int(r["params"]["limit"][0]) for r in server.requests]
    assert len(limits) >= len(entries) // 5 and max(limits) <= 5


def test_limit_keeps_the_newest_entries_backward(serve):
    entries = _entries()
    server = serve(CannedLogs(entries), max_entries=5)
    data = _client(server, page_limit=5).query_range('{a=~".+"}', T0, T0 + 10**6, limit=7)
    newest = sorted(entries, key=lambda e: e[1], reverse=True)
    cutoff = newest[6][1]
    got = _flat(data)
    assert len(got) == 7
    assert all(ts >= cutoff for _, ts, _ in got)
    assert {line for _, _, line in got} >= {e[2] for e in newest if e[1] > cutoff}


def test_limit_keeps_the_oldest_entries_forward(serve):
    entries = _entries()
    server = serve(CannedLogs(entries), max_entries=4)
    data = _client(server, page_limit=4).query_range(
        '{a=~".+"}', T0, T0 + 10**6, limit=6, direction="forward"
    )
    assert [line for _, _, line in sorted(_flat(data), key=lambda e: (e[1], e[2]))] == [
        "a0",
        "a1",
        "a2",
        "b2",
        "a3",
        "b3",
    ]


def test_end_is_exclusive_and_start_inclusive(serve):
    entries = _entries()
    server = serve(CannedLogs(entries))
    data = _client(server).query_range('{a=~".+"}', T0 + 2000, T0 + 5000, limit=100)
    assert sorted(line for _, _, line in _flat(data)) == ["a2", "a3", "a4", "b2", "b3", "b4"]


def test_more_same_ns_entries_than_a_page_is_a_clear_error(serve):
    entries = [(A, T0, f"x{i}") for i in range(6)]
    server = serve(CannedLogs(entries), max_entries=3)
    with pytest.raises(LokiQueryError, match="share the nanosecond"):
        _client(server, page_limit=3).query_range('{a=~".+"}', T0, T0 + 10, limit=100)


def test_long_log_range_is_split_and_still_complete(serve):
    entries = [(A, T0 + h * 3600 * NS_PER_S, f"h{h}") for h in range(6)]
    server = serve(CannedLogs(entries))
    loki = _client(server, split="1h")
    data = loki.query_range('{a=~".+"}', T0, T0 + 6 * 3600 * NS_PER_S, limit=100)
    assert sorted(line for _, _, line in _flat(data)) == [f"h{h}" for h in range(6)]
    assert len(server.requests) == 6


def test_metric_range_is_split_without_gaps_or_duplicate_steps(serve):
    server = serve(CannedLogs([]))
    loki = _client(server, split="1h")
    start, end = T0, T0 + 3 * 3600 * NS_PER_S + 30 * 60 * NS_PER_S
    data = loki.query_range('sum(rate({a="b"}[1m]))', start, end, step="60s")
    times = [float(t) for t, _ in data["result"][0]["values"]]
    assert times == [start / NS_PER_S + 60 * i for i in range(len(times))]
    assert times[-1] == end / NS_PER_S
    assert len(server.requests) == 4
    assert data["resultType"] == "matrix"


def test_429_is_retried_honouring_retry_after(serve):
    server = serve(CannedLogs(_entries()))
    server.faults = [
        (429, "too many outstanding requests", {"Retry-After": "2"}),
        (503, "upstream unavailable", {}),
    ]
    slept: list[float] = []
    loki = LokiHTTP(server.url, sleep=slept.append, backoff=0.1)
    data = loki.query_range('{a=~".+"}', T0, T0 + 10**6, limit=1000)
    assert len(_flat(data)) == len(_entries())
    assert len(slept) == 2 and slept[0] >= 2.0
    assert len(server.requests) == 3


def test_persistent_5xx_gives_up_with_the_server_text(serve):
    server = serve(CannedLogs([]))
    server.always_fail = (502, "bad gateway from the query frontend")
    loki = LokiHTTP(server.url, sleep=lambda s: None, retries=2)
    with pytest.raises(LokiUnavailable, match="bad gateway from the query frontend"):
        loki.labels()
    assert len(server.requests) == 3


def test_400_surfaces_lokis_error_text(serve):
    server = serve(CannedLogs([]))
    server.faults = [(400, "parse error at line 1, col 7: syntax error: unexpected IDENTIFIER", {})]
    with pytest.raises(LokiQueryError, match="parse error at line 1, col 7"):
        _client(server).query("sum(foo bar)")
    assert len(server.requests) == 1  # a 400 is not retried


def test_limit_above_server_max_is_a_400_with_text(serve):
    server = serve(CannedLogs(_entries()), max_entries=5)
    with pytest.raises(LokiQueryError, match="max entries limit per query exceeded"):
        _client(server, page_limit=50).query_range('{a=~".+"}', T0, T0 + 10**6, limit=100)


def test_basic_auth_and_tenant_headers(serve, monkeypatch):
    monkeypatch.setenv("LOKI_TEST_AUTH", "alice:s3cret")
    server = serve(CannedLogs(_entries()))
    loki = _client(server, tenant="team-a", auth_env="LOKI_TEST_AUTH")
    assert loki.label_values("service") == ["a", "b"]
    headers = server.requests[0]["headers"]
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_bearer_auth_header(serve, monkeypatch):
    monkeypatch.setenv("LOKI_TEST_TOKEN", "tok-123")
    server = serve(CannedLogs(_entries()))
    _client(server, auth_env="LOKI_TEST_TOKEN").labels()
    assert server.requests[0]["headers"]["Authorization"] == "Bearer tok-123"
    assert "X-Scope-OrgID" not in server.requests[0]["headers"]


def test_unset_auth_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LOKI_TEST_MISSING", raising=False)
    with pytest.raises(LokiAuthError, match="LOKI_TEST_MISSING"):
        LokiHTTP("http://127.0.0.1:1", auth_env="LOKI_TEST_MISSING")


def test_401_is_an_auth_error_not_retried(serve):
    server = serve(CannedLogs([]))
    server.faults = [(401, "no org id", {})]
    with pytest.raises(LokiAuthError, match="no org id"):
        _client(server).labels()
    assert len(server.requests) == 1


def test_unreachable_server_is_unavailable_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loki = LokiHTTP(f"http://127.0.0.1:{port}", retries=1, sleep=lambda s: None, timeout=2)
    with pytest.raises(LokiUnavailable, match="cannot connect"):
        loki.labels()


def test_metadata_endpoints(serve):
    server = serve(CannedLogs(_entries()))
    loki = _client(server)
    assert loki.labels(T0, T0 + 10**6) == ["service"]
    assert loki.series(['{service="a"}', '{service="b"}']) == [A, B]
    assert sorted(s["service"] for s in loki.series('{service=~".+"}')) == ["a", "b"]
    assert loki.stats('{service=~".+"}', T0, T0 + 10**6)["entries"] == len(_entries())
    series_req = [r for r in server.requests if r["path"] == "/loki/api/v1/series"][0]
    assert series_req["params"]["match[]"] == ['{service="a"}', '{service="b"}']


@pytest.mark.parametrize(
    ("query", "is_log"),
    [
        ('{a="b"}', True),
        ('  ({a="b"} |= "x")', True),
        ('rate({a="b"}[1m])', False),
        ('sum by (a) (count_over_time({a="b"}[1m])) > 1', False),
        ("vector(1)", False),
    ],
)
def test_log_vs_metric_query_detection(query, is_log):
    assert is_log_query(query) is is_log


def test_subranges_with_step_hold_whole_steps():
    pieces = subranges(0, 10 * NS_PER_S, 4 * NS_PER_S, NS_PER_S)
    assert pieces == [
        (0, 3 * NS_PER_S),
        (4 * NS_PER_S, 7 * NS_PER_S),
        (8 * NS_PER_S, 10 * NS_PER_S),
    ]
    assert subranges(0, 10, 4) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_paging_through_the_engine_matches_one_unlimited_query(serve, direction):
    """Same-nanosecond entries across streams and page edges, answered by LocalLogs."""
    from opsbook.loki.local import LocalLogs

    logs = LocalLogs([])
    for s in range(3):
        entries = [(T0 + (i // 2) * 1000, f"s{s}-{i}") for i in range(22)]  # 2 lines per ns
        logs.add_lines({"service": f"svc{s}", "env": "prod"}, entries)
    server = serve(logs, max_entries=5)
    loki = _client(server, page_limit=5)
    query = '{env="prod"} |~ "s[02]-"'
    paged = loki.query_range(query, T0, T0 + 10**6, limit=1000, direction=direction)
    whole = logs.query_range(query, T0, T0 + 10**6, limit=1000, direction=direction)
    assert _flat(paged) == _flat(whole)
    assert len(_flat(paged)) == 44
    some = loki.query_range(query, T0, T0 + 10**6, limit=13, direction=direction)
    first13 = logs.query_range(query, T0, T0 + 10**6, limit=13, direction=direction)
    assert {ts for _, ts, _ in _flat(some)} == {ts for _, ts, _ in _flat(first13)}
    assert len(_flat(some)) == 13


# -- retries: urllib3's Retry with Retry-After in both forms ------------------------------

NOW = 1_795_824_000.0  # the injected clock's time (2026-11-28T00:00:00Z)


def _http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def _retrying(server, slept: list[float], **kw) -> LokiHTTP:
    kw.setdefault("backoff", 0.0)  # no jitter: the wait is exactly what the server asked
    return LokiHTTP(server.url, sleep=slept.append, clock=lambda: NOW, **kw)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("3", 3.0), (_http_date(NOW + 7), 7.0)],
    ids=["delta-seconds", "http-date"],
)
def test_retry_after_in_either_form_is_waited_then_retried(serve, status, retry_after, waited):
    server = serve(CannedLogs(_entries()))
    server.faults = [(status, "slow down", {"Retry-After": retry_after})]
    slept: list[float] = []
    assert _retrying(server, slept).label_values("service") == ["a", "b"]
    assert len(server.requests) == 2
    assert slept == [waited]


@pytest.mark.parametrize(
    "retry_after", ["3600", _http_date(NOW + 3600)], ids=["delta-seconds", "http-date"]
)
def test_retry_after_is_capped_at_max_backoff(serve, retry_after):
    server = serve(CannedLogs(_entries()))
    server.faults = [(429, "slow down", {"Retry-After": retry_after})] * 2
    slept: list[float] = []
    _retrying(server, slept, max_backoff=10.0).labels()
    assert len(server.requests) == 3
    assert slept == [10.0, 10.0]


def test_retry_after_date_in_the_past_means_no_wait(serve):
    server = serve(CannedLogs(_entries()))
    server.faults = [(503, "restarting", {"Retry-After": _http_date(NOW - 60)})]
    slept: list[float] = []
    _retrying(server, slept).labels()
    assert len(server.requests) == 2
    assert slept == []


def test_unreadable_retry_after_falls_back_to_the_backoff(serve):
    server = serve(CannedLogs(_entries()))
    server.faults = [(429, "slow down", {"Retry-After": "soon"})]
    slept: list[float] = []
    _retrying(server, slept, backoff=2.0).labels()
    assert len(server.requests) == 2
    assert len(slept) == 1 and 1.0 <= slept[0] <= 2.0


def test_backoff_doubles_from_the_first_retry_up_to_the_cap(serve):
    server = serve(CannedLogs([]))
    server.faults = [(502, "bad gateway", {})] * 5
    slept: list[float] = []
    with pytest.raises(LokiUnavailable, match="HTTP 502: bad gateway"):
        _retrying(server, slept, backoff=1.0, max_backoff=3.0, retries=4).labels()
    assert len(server.requests) == 5
    bounds = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)]  # 1, 2, 4->3, 8->3 jittered 50-100%
    assert len(slept) == 4
    assert all(lo <= wait <= hi for wait, (lo, hi) in zip(slept, bounds, strict=True)), slept


def test_retries_run_out_while_the_server_keeps_asking_to_wait(serve):
    server = serve(CannedLogs([]))
    server.faults = [(429, "too many outstanding requests", {"Retry-After": "1"})] * 3
    slept: list[float] = []
    with pytest.raises(LokiUnavailable, match="too many outstanding requests"):
        _retrying(server, slept, retries=2).labels()
    assert len(server.requests) == 3
    assert slept == [1.0, 1.0]


@pytest.mark.parametrize(
    ("value", "now", "seconds"),
    [
        ("120", NOW, 120.0),
        (" 0 ", NOW, 0.0),
        (_http_date(NOW + 90), NOW, 90.0),
        ("Sat, 28 Nov 2026 00:00:30 GMT", NOW, 30.0),
        (_http_date(NOW - 5), NOW, 0.0),
        ("soon", NOW, None),
        ("-3", NOW, None),
        ("1.5", NOW, None),  # delta-seconds is a whole number
    ],
)
def test_retry_after_seconds(value, now, seconds):
    assert retry_after_seconds(value, now=now) == seconds


def test_a_body_cut_off_mid_way_is_retried_with_the_same_policy(serve):
    server = serve(CannedLogs(_entries()))
    server.cut_off = 2
    slept: list[float] = []
    assert _retrying(server, slept, backoff=1.0).label_values("service") == ["a", "b"]
    assert len(server.requests) == 3
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0


def test_a_body_always_cut_off_gives_up_after_the_retries(serve):
    server = serve(CannedLogs([]))
    server.cut_off = 10
    slept: list[float] = []
    with pytest.raises(LokiUnavailable, match="cut off mid-body"):
        _retrying(server, slept, retries=2).labels()
    assert len(server.requests) == 3
    assert slept == []  # backoff 0: no wait, but the attempts are counted
