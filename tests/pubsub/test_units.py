"""Pure units: wire format, RESP, URLs, histograms, profiles, knee and verdict logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsbook.errors import ConfigError
from opsbook.pubsub import hist, message, scenarios, verdict
from opsbook.pubsub.errors import BadRedisURL
from opsbook.pubsub.harness import StepResult
from opsbook.pubsub.resp import ReplyError, make_reader, pack, parse_url


def test_message_round_trip_and_exact_size() -> None:
    pad = message.padding(1024)
    data = message.encode(3, 7, 11, 123456, 987654321, pad)
    assert len(data) == 1024
    assert message.decode(data) == message.Header(3, 7, 11, 123456, 987654321)


def test_message_smaller_than_header_is_refused() -> None:
    with pytest.raises(ValueError, match="header"):
        message.padding(message.HEADER_SIZE - 1)


def test_pack_is_resp_array_of_bulk_strings() -> None:
    assert pack("PUBLISH", "ch", b"\x00x") == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n\x00x\r\n"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"+OK\r\n"], b"OK"),
        ([b":42\r\n"], 42),
        ([b"$3\r\nabc\r\n"], b"abc"),
        ([b"$-1\r\n"], None),
        ([b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"], [b"message", b"c", b"hi"]),
        ([b"*2\r\n$1\r\na", b"\r\n:5", b"\r\n"], [b"a", 5]),
    ],
)
def test_reader_parses_split_replies(chunks: list[bytes], expected: object) -> None:
    reader = make_reader()
    got: object = False
    for chunk in chunks:
        reader.feed(chunk)
        got = reader.gets()
    assert got == expected
    assert reader.gets() is False


def test_reader_returns_error_replies() -> None:
    reader = make_reader()
    reader.feed(b"-WRONGPASS invalid\r\n")
    reply = reader.gets()
    assert isinstance(reply, ReplyError) and "WRONGPASS" in str(reply)


@pytest.mark.parametrize(
    ("url", "host", "port", "db", "password", "tls"),
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, None, False),
        ("redis://:s3cret@cache.internal:6380/2", "cache.internal", 6380, 2, "s3cret", False),
        ("rediss://user:p%40ss@host", "host", 6379, 0, "p@ss", True),
    ],
)
def test_parse_url(
    url: str, host: str, port: int, db: int, password: str | None, tls: bool
) -> None:
    p = parse_url(url)
    assert (p.host, p.port, p.db, p.password, p.tls) == (host, port, db, password, tls)
    if password:
        assert password not in p.redacted() and "***" in p.redacted()


@pytest.mark.parametrize(
    "url", ["localhost:6379", "http://x:6379", "redis://h:notaport", "redis://h/abc", "unix://"]
)
def test_bad_urls_say_what_to_use(url: str) -> None:
    with pytest.raises(BadRedisURL) as info:
        parse_url(url)
    assert info.value.hint or "use" in info.value.message


def test_histogram_counts_merge_and_monotone_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = hist.from_values(rng.integers(50, 5000, 1000))
    b = hist.from_values(rng.integers(100, 90000, 500))
    merged = hist.merge([hist.encode(a), hist.encode(b)])
    assert merged.get_total_count() == 1500
    s = hist.summary(merged)
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["p999_ms"] <= s["max_ms"]
    path = hist.save(merged, tmp_path / "x.hdr")
    assert hist.load(path).get_total_count() == 1500
    table = path.with_suffix(".csv").read_text().splitlines()
    assert table[0] == "percentile,latency_ms" and len(table) == 11


def test_histogram_clamps_out_of_range_values() -> None:
    h = hist.from_values([0, -5, hist.HIGHEST_US * 10])
    assert h.get_total_count() == 3


def test_profile_overrides_and_bad_values() -> None:
    p = scenarios.profile("quick", duration_s=2.0, rates=[], connections=0)
    assert p.duration_s == 2.0 and p.rates == scenarios.PROFILES["quick"].rates
    with pytest.raises(ConfigError, match="unknown profile"):
        scenarios.profile("huge")
    with pytest.raises(ConfigError, match="rates"):
        scenarios.profile("quick", rates=[1000, -1])
    with pytest.raises(ConfigError, match="channels"):
        scenarios.profile("quick", channels=["ai:jobz"])


def _step(rate: float, p99: float, lost: int = 0) -> StepResult:
    summary = {
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        "p999_ms": p99,
        "lost": lost,
        "publish_rate": rate,
        "disconnects": 0,
        "received": 100,
        "sent": 100,
        "delivered_rate": rate,
        "host_load_1m": 1.5,
    }
    return StepResult(
        label=str(rate),
        scenario="rate_sweep",
        config={"offered_rate": rate, "size": 1024, "pubs": 1},
        summary=summary,
        latency=hist.new(),
    )


def test_knee_is_first_rate_over_target_after_last_good() -> None:
    k = scenarios.knee([_step(1000, 1.0), _step(10000, 4.0), _step(40000, 12.0)])
    assert (k["last_ok_rate"], k["knee_rate"], k["crossed"]) == (10000, 40000, True)
    k = scenarios.knee([_step(1000, 1.0), _step(10000, 4.0)])
    assert k["crossed"] is False and k["last_ok_rate"] == 10000


def test_a_rate_is_judged_by_the_majority_of_its_runs_not_its_best() -> None:
    once_bad = [_step(1000, 1.0), _step(10000, 30.0), _step(10000, 3.0), _step(10000, 4.0)]
    assert scenarios.knee(once_bad + [_step(40000, 12.0)])["last_ok_rate"] == 10000
    mostly_bad = [_step(1000, 1.0), _step(10000, 30.0), _step(10000, 3.0), _step(10000, 14.0)]
    k = scenarios.knee(mostly_bad)
    assert (k["last_ok_rate"], k["knee_rate"]) == (1000, 10000)


def test_a_claim_passing_in_some_repeats_reads_unstable() -> None:
    p99s = iter([3.0, 14.0, 4.0])  # pass, fail, pass: the median (4 ms) alone would pass
    runs = scenarios.repeated(lambda i: _step(10000, next(p99s)), 3)
    row = verdict.latency_claim(runs, {"knee_rate": None, "last_ok_rate": 40000})
    assert row["verdict"] == "unstable" and row["pass"] is False
    assert [r["pass"] for r in row["repeats"]] == [True, False, True]
    assert row["measured"].startswith("median p99 4.00 ms of 3 runs: 3.00, 14.00, 4.00 ms")
    assert "host load 1.5, 1.5, 1.5" in row["measured"]


@pytest.mark.parametrize(
    ("p99s", "expected"),
    [([3.0, 4.0, 5.0], "pass"), ([11.0, 12.0, 13.0], "fail"), ([11.0, 3.0, 12.0], "unstable")],
)
def test_latency_verdict_from_repeats(p99s: list[float], expected: str) -> None:
    row = verdict.latency_claim([_step(10000, p) for p in p99s], {"last_ok_rate": 1000})
    assert row["verdict"] == expected and row["pass"] is (expected == "pass")


def test_throughput_verdict_from_repeats_counts_loss() -> None:
    runs = [_step(10000, 2.0), _step(10000, 2.0, lost=3), _step(10000, 2.0)]
    row = verdict.throughput_claim(runs, 20000, "x", scenarios.sustained)
    assert row["verdict"] == "unstable"
    assert "sustained in 2 of 3 runs" in row["measured"]


def test_repeats_at_rate_runs_only_the_missing_ones() -> None:
    calls: list[float] = []

    class FakeBench:
        def channel(self, name: str) -> str:
            return name

        def step(self, **kw: object) -> StepResult:
            calls.append(float(kw["rate"]))  # type: ignore[arg-type]
            return _step(10000, 2.0)

    sweep = [_step(1000, 1.0), _step(10000, 2.0)]
    runs = scenarios.repeats_at_rate(FakeBench(), sweep, 10000, 0.1, repeats=3)  # type: ignore[arg-type]
    assert len(runs) == 3 and runs[0] is sweep[1]
    assert calls == [10000.0, 10000.0] and len(sweep) == 4
    with pytest.raises(ConfigError, match="repeats"):
        scenarios.repeated(lambda i: _step(1, 1), 0)


def test_loss_makes_a_step_unsustained() -> None:
    assert scenarios.sustained(_step(1000, 2.0))
    assert not scenarios.sustained(_step(1000, 2.0, lost=1))
    assert not scenarios.sustained(_step(1000, 500.0))


def test_single_figure_verdicts_pass_and_fail() -> None:
    assert (
        verdict.connections_claim(9_990, 10_000, "max number of clients reached", 10_000)["verdict"]
        == "fail"
    )
    assert verdict.memory_claim(17_000, 900, 30)["verdict"] == "pass"
    assert verdict.memory_claim(17_000, 2_000, 30)["pass"] is False
    assert verdict.delivery_claim(0, 3)["verdict"] == "fail"


def test_crosscheck_table_divides_by_the_first_redis_benchmark_row() -> None:
    from opsbook.pubsub import crosscheck

    runs = [
        {"available": True, "rps": 50_000.0, "clients": 50, "pipeline": 1, "size": 1024},
        {"available": True, "rps": 400_000.0, "clients": 50, "pipeline": 16, "size": 1024},
        {"available": False, "note": "not on PATH"},
    ]
    step = _step(40_000, 2.0)
    step.summary["delivered_rate"] = 40_000.0
    frame = crosscheck.side_by_side(runs, [step], None)
    assert list(frame["vs_redis_benchmark"]) == [1.0, 8.0, 0.8]
    assert "-P 16" in frame["measurement"][1]


def _cluster_rows(sharded_lost: int, sharded_cpu: float) -> pd.DataFrame:
    base = {"delivered_rate": 3000.0, "p50_ms": 1.0, "p99_ms": 4.0, "shards": 3}
    return pd.DataFrame(
        [
            {
                **base,
                "pattern": "classic",
                "lost": 0,
                "redis_cpu_us_per_msg": 30.0,
                "redis_cpu_pct_per_node": [5.0, 5.0, 5.0],
                "bus_messages_in_per_node": [3000, 3000, 3000],
            },
            {
                **base,
                "pattern": "sharded",
                "lost": sharded_lost,
                "redis_cpu_us_per_msg": sharded_cpu,
                "redis_cpu_pct_per_node": [2.0, 2.0, 2.0],
                "bus_messages_in_per_node": [2, 2, 2],
            },
        ]
    )


@pytest.mark.parametrize(
    ("lost", "cpu", "expected"),
    [
        (0, 10.0, "use SPUBLISH/SSUBSCRIBE"),
        (0, 40.0, "use SPUBLISH/SSUBSCRIBE"),  # more CPU, but no bus broadcast
        (5, 10.0, "use PUBLISH/SUBSCRIBE"),  # sharded lost messages
    ],
)
def test_cluster_pattern_verdict(lost: int, cpu: float, expected: str) -> None:
    row = verdict.cluster_pattern(_cluster_rows(lost, cpu))
    assert row["verdict"] == expected
    assert "9,000 bus messages" in row["measured"] and "6 bus messages" in row["measured"]


def test_cluster_comparison_choice() -> None:
    from opsbook.pubsub import cluster

    assert cluster.wanted("off", True) is False
    assert cluster.wanted("auto", False) is False
    assert cluster.wanted("auto", True) is cluster.available()
    with pytest.raises(ConfigError, match="cluster_compare"):
        cluster.wanted("yes", True)
