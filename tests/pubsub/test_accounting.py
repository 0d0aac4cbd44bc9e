"""Loss, duplicate and reorder accounting on crafted sequences (paths real Redis never takes:
it neither duplicates nor reorders, so these are fed by hand)."""

from __future__ import annotations

from array import array
from types import SimpleNamespace
from typing import Any

import pytest

from opsbook.pubsub import harness, hist, workers
from opsbook.pubsub.message import HEADER

STEP = 7
END = f"end:{STEP}".encode()


class _NoConn:
    """A stand-in connection: the accounting functions never touch it."""


def _conn(spec: dict[str, Any] | None = None) -> workers._SubConn:
    return workers._SubConn(spec=spec or {}, conn=_NoConn())  # type: ignore[arg-type]


def _msg(seq: int, *, pub: int = 1, chan: int = 0, step: int = STEP, at: int = 0) -> list:
    return [b"message", b"ch", HEADER.pack(pub, chan, step, seq, at) + b"x" * 8]


def _feed(sub: workers._SubConn, replies: list[list], now: int = 5_000) -> dict[int, array]:
    lat: dict[int, array] = {}
    for reply in replies:
        workers._handle(sub, reply, now, STEP, lat, END, 0.0)
    return lat


def _flow(seqs: list[int]) -> workers._Flow:
    flow = workers._Flow()
    for seq in seqs:
        flow.add(seq)
    return flow


@pytest.mark.parametrize(
    ("seqs", "unique", "dups", "reorders", "max_seq"),
    [
        ([0, 1, 2, 3], 4, 0, 0, 3),  # in order
        ([0, 1, 1, 2], 3, 1, 0, 2),  # one duplicate
        ([0, 0, 0], 1, 2, 0, 0),  # the same message three times
        ([0, 2, 1, 3], 4, 0, 1, 3),  # one reorder: 1 after 2
        ([0, 1, 3, 4], 4, 0, 0, 4),  # a gap: 2 lost (loss = expected - unique)
        ([3, 2, 1, 0], 4, 0, 3, 3),  # reversed: three arrive after a higher one
        ([0, 2, 2, 1], 3, 1, 1, 2),  # a duplicate of the max, then a reorder
        ([0, 2, 1, 1], 3, 1, 1, 2),  # a duplicate of the reordered one is a duplicate only
        ([5], 1, 0, 0, 5),  # first seen beyond the start
        ([0, 1, 1], 2, 1, 0, 1),  # a duplicate equal to max_seq is not a reorder
    ],
)
def test_flow_counts(seqs: list[int], unique: int, dups: int, reorders: int, max_seq: int) -> None:
    flow = _flow(seqs)
    assert (flow.unique, flow.dups, flow.reorders, flow.max_seq) == (
        unique,
        dups,
        reorders,
        max_seq,
    )


def test_flow_grows_past_its_buffer_and_counts_a_duplicate_there() -> None:
    flow = _flow([0, 4095, 4096, 10_000, 4096])
    assert (flow.unique, flow.dups, flow.reorders, flow.max_seq) == (4, 1, 0, 10_000)
    assert len(flow.seen) == 12_288  # 4096, 8192, then 4096 more
    assert flow.seen[10_000] == 1 and flow.seen[9_999] == 0


def test_flow_buffer_grows_by_at_least_4096_and_exactly_to_a_far_seq() -> None:
    flow = _flow([0])
    assert len(flow.seen) == 4096
    flow.add(4096)
    assert len(flow.seen) == 8192
    flow.add(20_000)
    assert len(flow.seen) == 20_001


def test_handle_counts_per_publisher_and_channel() -> None:
    sub = _conn()
    _feed(sub, [_msg(0), _msg(1), _msg(0, pub=2), _msg(0, chan=1), _msg(1, pub=2), _msg(1)])
    flows = {k: (f.unique, f.dups, f.reorders, f.max_seq) for k, f in sub.flows.items()}
    assert flows == {
        (1 << 16) | 0: (2, 1, 0, 1),
        (2 << 16) | 0: (2, 0, 0, 1),
        (1 << 16) | 1: (1, 0, 0, 0),
    }
    assert sub.received == 6  # a duplicate is received, not delivered: flows say unique
    assert sub.stale == 0 and sub.ended is False


def test_handle_counts_a_stale_step_apart() -> None:
    sub = _conn()
    lat = _feed(sub, [_msg(0, step=STEP - 1), _msg(0), _msg(1, step=STEP + 1)])
    assert sub.stale == 2
    assert sub.received == 1
    assert [(f.unique, f.max_seq) for f in sub.flows.values()] == [(1, 0)]
    assert {ch: list(a) for ch, a in lat.items()} == {0: [5]}


def test_handle_end_marker_and_short_messages() -> None:
    sub = _conn()
    _feed(sub, [[b"message", b"ctl", b"end:6"]])
    assert sub.ended is False and sub.received == 0 and sub.stale == 0
    _feed(sub, [[b"message", b"ctl", END]])
    assert sub.ended is True and sub.received == 0 and sub.flows == {}


def test_handle_counts_a_message_of_exactly_the_header_size() -> None:
    sub = _conn()
    _feed(sub, [[b"message", b"ch", HEADER.pack(1, 0, STEP, 0, 0)]])  # size=24: no padding
    assert sub.received == 1 and sub.ended is False


def test_handle_reads_pattern_and_sharded_messages_and_ignores_the_rest() -> None:
    sub = _conn()
    pmessage = [b"pmessage", b"user:*", b"user:1", _msg(0)[2]]
    smessage = [b"smessage", b"ch", _msg(1)[2]]
    _feed(sub, [pmessage, smessage, [b"subscribe", b"ch", 1], [b"pong", b""]])
    assert sub.received == 2
    assert [(f.unique, f.max_seq) for f in sub.flows.values()] == [(2, 1)]


def test_handle_latency_from_the_intended_time_in_microseconds() -> None:
    sub = _conn()
    lat: dict[int, array] = {}
    workers._handle(sub, _msg(0, at=1_000_000, chan=2), 3_500_000, STEP, lat, END, 0.0)
    workers._handle(sub, _msg(1, at=2_000_000, chan=2), 3_500_000, STEP, lat, END, 0.0)
    workers._handle(sub, _msg(0, at=0, chan=3), 7_999, STEP, lat, END, 0.0)
    assert {ch: list(a) for ch, a in lat.items()} == {2: [2500, 1500], 3: [7]}


def test_handle_first_and_last_receive_times() -> None:
    sub = _conn()
    lat: dict[int, array] = {}
    for now, seq in ((100, 0), (200, 1), (300, 2)):
        workers._handle(sub, _msg(seq), now, STEP, lat, END, 0.0)
    workers._handle(sub, _msg(0, step=1), 400, STEP, lat, END, 0.0)  # stale: not a receive
    assert (sub.first_ns, sub.last_ns) == (100, 300)


def test_handle_sleeps_only_for_a_slow_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(workers.time, "sleep", slept.append)
    sub = _conn()
    lat: dict[int, array] = {}
    workers._handle(sub, _msg(0), 1, STEP, lat, END, 0.0)
    workers._handle(sub, _msg(1), 1, STEP, lat, END, 0.002)
    workers._handle(sub, _msg(2, step=1), 1, STEP, lat, END, 0.002)  # stale: no sleep
    assert slept == [0.002]


def test_conn_report_states_every_count() -> None:
    sub = _conn({"channels": ["a", "b"], "patterns": ["p:*"], "group": "slow"})
    sub.disconnects, sub.reconnects, sub.client_ids = 2, 1, [10, 11]
    lat = _feed(sub, [_msg(0), _msg(2), _msg(1), _msg(1), _msg(0, step=1)], now=50)
    _feed(sub, [[b"message", b"ctl", END]])
    report = workers._conn_report(sub)
    assert report == {
        "received": 4,
        "stale": 1,
        "ended": True,
        "disconnects": 2,
        "reconnects": 1,
        "client_ids": [10, 11],
        "first_ns": 50,
        "last_ns": 50,
        "flows": {str(1 << 16): [3, 1, 1, 2]},
        "channels": ["a", "b"],
        "patterns": ["p:*"],
        "group": "slow",
    }
    assert list(lat[0]) == [0, 0, 0, 0]


def test_conn_report_defaults_for_a_bare_spec() -> None:
    report = workers._conn_report(_conn())
    assert (report["channels"], report["patterns"], report["group"]) == ([], [], "")
    assert report["flows"] == {} and report["received"] == 0 and report["ended"] is False


# ------------------------------------------------------------------ step totals (harness)


def _sub_conn(
    channels: list[str], patterns: list[str], flows: dict[str, list[int]], last_ns: int, **kw: int
) -> dict[str, Any]:
    return {
        "channels": channels,
        "patterns": patterns,
        "flows": flows,
        "last_ns": last_ns,
        "disconnects": kw.get("disconnects", 0),
        "reconnects": kw.get("reconnects", 0),
    }


def _pub(pub_id: int, per_channel: list[int], first: int, last: int, **kw: Any) -> dict[str, Any]:
    return {
        "pub_id": pub_id,
        "sent_per_channel": per_channel,
        "sent": sum(per_channel),
        "first_ns": first,
        "last_ns": last,
        "lag": hist.encode(hist.from_values(kw.get("lag", [1000]))),
        "zero_receivers": kw.get("zero", 0),
        "errors": kw.get("errors", 0),
        "max_in_flight": kw.get("in_flight", 1),
    }


LAG = list(range(1_000, 101_000, 1_000))  # 1 .. 100 ms, one each
B = 1_764_460_800 * 10**9  # a real clock reading (ns): sums and differences differ


def _step(
    pubs: list[dict[str, Any]], subs: list[dict[str, Any]], start: int = B + 1_000
) -> harness.StepResult:
    bench = SimpleNamespace(_row_env=lambda: {"env": "test"})
    return harness.Bench._result(
        bench,  # type: ignore[arg-type]
        scenario="fanout",
        label="",
        channels=["c0", "c1", "c2"],
        start=start,
        pub_reports=pubs,
        sub_reports=subs,
        config={"rate": 1},
        cpu={"client_cpu_s": 1.5, "redis_cpu_s": 0.75},
    )


def _enc(values: list[int]) -> str:
    return hist.encode(hist.from_values(values))


def test_step_loss_is_the_sum_over_connections_of_expected_minus_unique(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three connections, each losing a different share: lost is 2 + 3 + 0 (not the max),
    duplicates and reorders summed over every flow, a channel both subscribed and matched
    by a pattern expected once."""
    pubs = [
        _pub(1, [10, 5, 0], B + 2_000, B + 1_000_002_000, lag=LAG, zero=1, in_flight=4),
        _pub(2, [0, 5, 7], B + 5_000, B + 2_000_002_000, errors=2, in_flight=2),
    ]
    a = _sub_conn(["c0"], [], {"65536": [8, 2, 1, 9]}, B + 2_500_000_000, disconnects=1)
    b = _sub_conn(
        [],
        ["c*"],
        {
            "65536": [10, 0, 0, 9],
            "65537": [5, 0, 0, 4],
            "131073": [5, 1, 0, 4],
            "131074": [4, 0, 2, 6],
        },
        B + 3_000_001_000,
        reconnects=2,
    )
    c = _sub_conn(
        ["c1"],
        ["c1", "c2"],
        {"65537": [5, 0, 0, 4], "131073": [5, 0, 0, 4], "131074": [7, 0, 0, 6]},
        0,
    )
    subs = [
        {"conns": [a, b], "latency": {"0": _enc([100, 200]), "1": _enc([300])}, "timed_out": False},
        {"conns": [c], "latency": {"1": _enc([400]), "2": ""}, "timed_out": True},
    ]
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (1.234, 5.678, 9.012))
    result = _step(pubs, subs)
    s = result.summary
    assert [(x["expected"], x["lost"]) for x in result.conns] == [(10, 2), (27, 3), (17, 0)]
    assert (s["sent"], s["received"], s["lost"]) == (27, 49, 5)
    assert (s["duplicates"], s["reordered"]) == (3, 3)
    assert (s["disconnects"], s["reconnects"]) == (1, 2)
    assert (s["zero_receiver_publishes"], s["publish_errors"]) == (1, 2)
    assert s["publishes_in_flight_max"] == 4 and s["timed_out"] is True
    assert s["window_s"] == pytest.approx(3.0)  # from the step start to the last delivery
    assert s["delivered_rate"] == pytest.approx(49 / 3.0)
    assert s["publish_rate"] == pytest.approx(27 / 2.0)  # first to last publish
    assert s["client_cpu_pct"] == pytest.approx(50.0) and s["redis_cpu_pct"] == pytest.approx(25.0)
    lags = (s["publisher_lag_p50_ms"], s["publisher_lag_p99_ms"], s["publisher_lag_max_ms"])
    assert lags == pytest.approx((50.0, 99.0, 100.0), rel=2e-3)  # the second publisher: 1 ms
    assert s["host_load_1m"] == 1.23  # the 1-minute figure, two decimals
    assert s["count"] == 4 and s["env"] == "test"
    assert {k: v.get_total_count() for k, v in result.per_channel.items()} == {
        "c0": 2,
        "c1": 2,
        "c2": 0,
    }
    assert result.label == "fanout" and result.scenario == "fanout"


def test_step_window_starts_at_the_first_publish_when_it_precedes_the_start() -> None:
    pubs = [_pub(1, [4, 0, 0], B + 500, B + 1_000_000_500)]
    conn = _sub_conn(["c0"], [], {"65536": [4, 0, 0, 3]}, 0)  # no delivery time known
    result = _step(pubs, [{"conns": [conn], "latency": {}, "timed_out": False}], start=B + 2_000)
    s = result.summary
    assert s["window_s"] == pytest.approx(1.0)  # first publish (500) to last publish
    assert (s["lost"], s["received"], s["timed_out"]) == (0, 4, False)


def test_expected_counts_each_listened_channel_once() -> None:
    sent = {1: [3, 4, 5], 2: [1, 1, 1]}
    conn = {"channels": ["c0", "c2"], "patterns": ["c2", "x*"], "flows": {"a": [2], "b": [3]}}
    assert harness._expected(conn, ["c0", "c1", "c2"], sent) == (10, 5)
    nothing = {"channels": [], "patterns": [], "flows": {}}
    assert harness._expected(nothing, ["c0"], sent) == (0, 0)
