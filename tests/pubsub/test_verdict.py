"""Verdict rows with their exact figures, verdicts and the edges of each rule."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from opsbook.pubsub import verdict


def _run(**summary: Any) -> SimpleNamespace:
    return SimpleNamespace(summary=summary)


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        ([], "not measured"),
        ([True], "pass"),
        ([True, True, True], "pass"),
        ([False], "fail"),
        ([False, False], "fail"),
        ([True, False], "unstable"),
        ([False, True, False], "unstable"),
    ],
)
def test_outcome(passes: list[bool], expected: str) -> None:
    assert verdict.outcome(passes) == expected


def test_latency_rows_exact() -> None:
    runs = [_run(p99_ms=3.0, host_load_1m=1.0), _run(p99_ms=10.0, host_load_1m=2.25)]
    row = verdict.latency_claim(runs, {"knee_rate": 40_000, "last_ok_rate": 20_000})
    assert row == {
        "claim": verdict.CLAIM_LATENCY,
        "measured": "median p99 6.50 ms of 2 runs: 3.00, 10.00 ms (host load 1.0, 2.2)",
        "verdict": "pass",  # 10.0 is not over the 10 ms target
        "pass": True,
        "breaks_when": "p99 crosses 10 ms between 20,000 and 40,000 msg/s offered",
        "repeats": [
            {"repeat": 1, "figure": 3.0, "pass": True, "host_load_1m": 1.0},
            {"repeat": 2, "figure": 10.0, "pass": True, "host_load_1m": 2.25},
        ],
    }


def test_latency_unmeasured_repeats_fail() -> None:
    runs = [_run(p99_ms=None, host_load_1m=None), _run(p99_ms=math.nan, host_load_1m=1.0)]
    row = verdict.latency_claim(runs, {}, target_ms=5.0)
    assert row["verdict"] == "fail" and row["pass"] is False
    assert row["measured"] == "median p99 not measured of 2 runs: ?, nan ms (host load ?, 1.0)"
    assert row["breaks_when"] == "p99 stayed under 5 ms up to 0 msg/s (highest tested)"
    assert [r["pass"] for r in row["repeats"]] == [False, False]


def test_latency_just_over_target_fails() -> None:
    row = verdict.latency_claim([_run(p99_ms=10.01, host_load_1m=0.5)], {"last_ok_rate": 1000})
    assert (row["verdict"], row["pass"]) == ("fail", False)
    assert row["breaks_when"] == "p99 stayed under 10 ms up to 1,000 msg/s (highest tested)"


def test_throughput_rows_exact() -> None:
    runs = [
        _run(delivered_rate=9_990.0, host_load_1m=1.0, ok=True),
        _run(delivered_rate=10_000.0, host_load_1m=1.0, ok=False),
        _run(delivered_rate=10_010.0, host_load_1m=1.0, ok=True),
    ]
    row = verdict.throughput_claim(runs, 25_000.0, "CPU of Redis", lambda s: s.summary["ok"])
    assert row["verdict"] == "unstable" and row["pass"] is False
    assert row["measured"] == (
        "at 10,000 msg/s offered: sustained in 2 of 3 runs, median delivered 10,000 msg/s of "
        "9,990.00, 10,000.00, 10,010.00 msg/s (host load 1.0, 1.0, 1.0); highest sustained "
        "rate found 25,000 msg/s (one run per rate)"
    )
    assert row["breaks_when"] == "CPU of Redis"
    assert [r["pass"] for r in row["repeats"]] == [True, False, True]
    every = verdict.throughput_claim(runs, None, "x", lambda s: True)
    assert every["verdict"] == "pass" and every["pass"] is True
    assert every["measured"].endswith(
        "highest sustained rate found not measured (one run per rate)"
    )


@pytest.mark.parametrize(
    ("reached", "requested", "limit", "expected", "breaks"),
    [
        (10_000, 10_000, None, "pass", "maxclients=10,000 and the fd limit cap it"),
        (9_999, 10_000, None, "fail", "maxclients=10,000 and the fd limit cap it"),
        (2_000, 2_000, None, "fail", "only 2,000 tried (profile); maxclients=10,000"),
        (9_999, 9_999, None, "fail", "only 9,999 tried (profile); maxclients=10,000"),
        (
            9_000,
            12_000,
            "max number of clients reached",
            "fail",
            "stopped at 9,000 connections: max number of clients reached (maxclients=10,000)",
        ),
    ],
)
def test_connections(
    reached: int, requested: int, limit: str | None, expected: str, breaks: str
) -> None:
    row = verdict.connections_claim(reached, requested, limit, 10_000)
    assert (row["verdict"], row["pass"], row["breaks_when"]) == (
        expected,
        expected == "pass",
        breaks,
    )
    assert row["measured"] == f"{reached:,} idle subscribers" and row["repeats"] == []


@pytest.mark.parametrize(
    ("settled", "expected"),
    [(1536.0, "pass"), (1536.5, "fail"), (None, "fail"), (0.0, "pass")],
)
def test_memory_threshold(settled: float | None, expected: str) -> None:
    row = verdict.memory_claim(2048.0, settled, 30)
    assert (row["verdict"], row["pass"]) == (expected, expected == "pass")


def test_memory_measured_text() -> None:
    row = verdict.memory_claim(2048.0, 1024.0, 30)
    assert row["measured"] == "2.0 KB just connected, 1.0 KB settled (after 30 s)"
    row = verdict.memory_claim(None, 512.0, 7.5, stable=False)
    assert row["measured"] == "not measured just connected, 0.5 KB after 7.5 s, NOT settled"
    row = verdict.memory_claim(1_024_000.0, 512_000.0, 30)  # bytes / 1024, not 1023 or 1025
    assert row["measured"] == "1,000.0 KB just connected, 500.0 KB settled (after 30 s)"


@pytest.mark.parametrize(
    ("slow_lost", "jobs_lost", "expected"),
    [(0, 0, "pass"), (1, 0, "fail"), (0, 1, "fail"), (4, 2, "fail")],
)
def test_delivery_counts_both_losses(slow_lost: int, jobs_lost: int, expected: str) -> None:
    row = verdict.delivery_claim(slow_lost, jobs_lost)
    assert (row["verdict"], row["pass"]) == (expected, expected == "pass")
    assert row["measured"] == (
        f"{slow_lost:,} lost by a slow subscriber; {jobs_lost:,} ai:jobs lost over pub/sub"
    )


def _cluster(sharded: dict[str, Any], classic: dict[str, Any] | None = None) -> pd.DataFrame:
    base = {
        "delivered_rate": 3000.0,
        "p99_ms": 4.0,
        "lost": 0,
        "redis_cpu_us_per_msg": 30.0,
        "redis_cpu_pct_per_node": [5.0],
        "bus_messages_in_per_node": [10, 10],
    }
    small = {**base, "shards": 1, "pattern": "classic", "lost": 99}
    return pd.DataFrame(
        [
            small,
            {**small, "pattern": "sharded"},
            {**base, "shards": 3, "pattern": "classic", **(classic or {})},
            {**base, "shards": 3, "pattern": "sharded", **sharded},
        ]
    )


@pytest.mark.parametrize(
    ("sharded", "expected"),
    [
        ({}, True),  # equal CPU counts as less-or-equal
        ({"redis_cpu_us_per_msg": 30.5, "bus_messages_in_per_node": [10, 10]}, False),
        ({"redis_cpu_us_per_msg": 30.5, "bus_messages_in_per_node": [10, 9]}, True),
        ({"lost": 1}, False),
    ],
)
def test_cluster_pattern_rules(sharded: dict[str, Any], expected: bool) -> None:
    row = verdict.cluster_pattern(_cluster(sharded))
    assert row["pass"] is expected
    assert row["verdict"] == ("use SPUBLISH/SSUBSCRIBE" if expected else "use PUBLISH/SUBSCRIBE")


def test_cluster_pattern_reads_the_most_shards_only() -> None:
    row = verdict.cluster_pattern(_cluster({}))
    assert row["measured"] == (
        "3 shards: classic: 3,000 msg/s delivered, p99 4.00 ms, Redis CPU 30.0 µs/msg "
        "(per node, % of a core: [5.0]), 20 bus messages, 0 lost; sharded: 3,000 msg/s "
        "delivered, p99 4.00 ms, Redis CPU 30.0 µs/msg (per node, % of a core: [5.0]), "
        "20 bus messages, 0 lost"
    )
    assert row["repeats"] == [] and row["claim"] == verdict.CLAIM_CLUSTER


def test_table_columns() -> None:
    frame = verdict.table([verdict.delivery_claim(0, 0)])
    assert list(frame.columns) == ["claim", "measured", "verdict", "breaks_when"]
    assert frame.iloc[0]["verdict"] == "pass"


def test_latency_breaks_without_a_last_good_rate() -> None:
    row = verdict.latency_claim([_run(p99_ms=30.0, host_load_1m=1.0)], {"knee_rate": 1000})
    assert row["breaks_when"] == "p99 crosses 10 ms between 0 and 1,000 msg/s offered"
