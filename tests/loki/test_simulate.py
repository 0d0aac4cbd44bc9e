"""The log simulator: deterministic, realistic shapes, incidents where the truth says."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import orjson
import pytest

from opsbook.errors import ConfigError
from opsbook.loki.simulate import SERVICES, load_ground_truth, simulate
from opsbook.loki.timeutil import NS_PER_S, to_ns

START = "2026-11-28T06:00:00Z"


def _read(path):
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def three_hours(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "logs.jsonl"
    result = simulate(path, START, hours=3, seed=7)
    return result, _read(path)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = simulate(tmp_path / "a.jsonl", START, hours=3, seed=3)
    b = simulate(tmp_path / "b.jsonl", START, hours=3, seed=3)
    c = simulate(tmp_path / "c.jsonl", START, hours=3, seed=4)
    assert _digest(a.path) == _digest(b.path)
    assert _digest(a.path) != _digest(c.path)
    assert a.incidents == b.incidents


def test_lines_are_sorted_inside_the_window_with_service_labels(three_hours):
    result, rows = three_hours
    ts = np.array([r["ts"] for r in rows])
    assert np.all(np.diff(ts) >= 0)
    assert ts[0] >= result.start_ns and ts[-1] < result.end_ns
    assert {r["labels"]["service"] for r in rows} == set(SERVICES)
    assert {r["labels"]["env"] for r in rows} == {"prod"}
    assert {r["labels"]["level"] for r in rows} <= {"debug", "info", "warn", "error"}
    assert result.lines == len(rows)
    assert sum(result.lines_per_service.values()) == len(rows)


def test_each_service_speaks_its_own_format(three_hours):
    _, rows = three_hours
    by = {}
    for r in rows:
        by.setdefault(r["labels"]["service"], []).append(r["line"])
    ts_lines = [json.loads(line) for line in by["backend-ts"]]
    ai = [d for d in ts_lines if "model" in d]
    assert ai and all({"route", "status", "latency_ms", "tokens", "cost_usd"} <= set(d) for d in ai)
    assert all(d["cost_usd"] > 0 and d["tokens"] > 0 for d in ai)
    assert all(line.startswith("ts=") and " level=" in line for line in by["backend-rag"])
    assert any(" INFO actix_web::middleware::logger: " in line for line in by["qdrant"])
    assert all(line.split(" ", 1)[0].endswith(("M", "C")) for line in by["redis"])
    assert any("DB saved on disk" in line for line in by["redis"])


def test_ground_truth_matches_the_injected_incidents(three_hours):
    result, rows = three_hours
    truth = load_ground_truth(result.ground_truth_path)
    kinds = [i["kind"] for i in truth["incidents"]]
    assert kinds == [
        "outage",
        "error_burst",
        "latency_regression",
        "vector_db_errors",
        "budget_overrun",
    ]
    inc = {i["kind"]: i for i in truth["incidents"]}
    for i in truth["incidents"]:
        assert result.start_ns <= i["start_ns"] < i["end_ns"] <= result.end_ns
        assert to_ns(i["start"]) == i["start_ns"] and i["alerts"]
    out = inc["outage"]
    rag = [r["ts"] for r in rows if r["labels"]["service"] == "backend-rag"]
    assert not [t for t in rag if out["start_ns"] <= t < out["end_ns"]]
    assert [t for t in rag if out["end_ns"] <= t < out["end_ns"] + 60 * NS_PER_S]

    def errors_per_min(service, incident):
        span = (incident["end_ns"] - incident["start_ns"]) / (60 * NS_PER_S)
        hits = [
            r
            for r in rows
            if r["labels"]["service"] == service
            and r["labels"]["level"] == "error"
            and incident["start_ns"] <= r["ts"] < incident["end_ns"]
        ]
        return len(hits) / span

    assert errors_per_min("backend-ts", inc["error_burst"]) > 15
    assert errors_per_min("qdrant", inc["vector_db_errors"]) > 15
    spend = sum(
        json.loads(r["line"]).get("cost_usd", 0)
        for r in rows
        if r["labels"]["service"] == "backend-ts"
        and inc["budget_overrun"]["start_ns"] <= r["ts"] < inc["budget_overrun"]["end_ns"]
    )
    assert spend > 2.0


def _lat(rows, lo, hi):
    return [
        json.loads(r["line"])["latency_ms"]
        for r in rows
        if r["labels"]["service"] == "backend-ts"
        and lo <= r["ts"] < hi
        and '"/healthz"' not in r["line"]
        and '"/api/agent/step"' not in r["line"]
    ]


def test_latency_regression_is_slower(three_hours):
    result, rows = three_hours
    inc = {i["kind"]: i for i in result.incidents}["latency_regression"]
    during = np.median(_lat(rows, inc["start_ns"], inc["end_ns"]))
    before = np.median(_lat(rows, inc["start_ns"] - 30 * 60 * NS_PER_S, inc["start_ns"]))
    assert during > 3 * before


def test_quiet_baseline_has_every_service_every_two_minutes_and_no_bursts(tmp_path):
    result = simulate(tmp_path / "q.jsonl", START, hours=3, seed=5, incidents=False, scale=0.2)
    rows = _read(result.path)
    assert result.incidents == []
    window = 120 * NS_PER_S
    for service in SERVICES:
        ts = np.array([r["ts"] for r in rows if r["labels"]["service"] == service])
        gaps = np.diff(np.concatenate([[result.start_ns], ts, [result.end_ns]]))
        assert gaps.max() < window, service
    per_min = Counter(
        (r["labels"]["service"], r["ts"] // (60 * NS_PER_S))
        for r in rows
        if r["labels"]["level"] == "error"
    )
    assert max(per_min.values(), default=0) <= 3


def test_scale_changes_traffic_and_baseline_spend_stays_under_budget(tmp_path):
    small = simulate(tmp_path / "s.jsonl", START, hours=24, seed=1, incidents=False, scale=0.5)
    full = simulate(tmp_path / "f.jsonl", START, hours=24, seed=1, incidents=False, scale=1.0)
    assert full.lines_per_service["backend-ts"] > 1.6 * small.lines_per_service["backend-ts"]
    spend = sum(
        json.loads(r["line"]).get("cost_usd", 0)
        for r in _read(full.path)
        if r["labels"]["service"] == "backend-ts"
    )
    assert 0.5 < spend < 1.6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": 0}, "hours must be positive"),
        ({"hours": 1}, "too short"),
        ({"scale": 0}, "scale must be"),
        ({"start": "yesterday"}, "invalid time"),
    ],
)
def test_bad_arguments_are_rejected_and_nothing_is_written(tmp_path, kwargs, message):
    args = {"start": START, "hours": 3} | kwargs
    with pytest.raises(ConfigError, match=message):
        simulate(tmp_path / "x.jsonl", **args)
    assert not list(tmp_path.iterdir())
