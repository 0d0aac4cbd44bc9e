"""Backtest: the ruler's state machine, incidents found, quiet baseline quiet, tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsbook.errors import ConfigError
from opsbook.loki.backtest import (
    backtest,
    candidate_thresholds,
    episodes_for,
    evaluation_times,
    explain_firings,
    match_incidents,
    pick_threshold,
    sweep,
    tune,
)
from opsbook.loki.local import LocalLogs
from opsbook.loki.rules import load_rules, parse_rules, split_threshold, write_rules
from opsbook.loki.timeutil import NS_PER_S

from .conftest import rules_path

M = 60 * NS_PER_S
T0 = 1_795_824_000 * NS_PER_S  # a whole minute


def _times(n: int) -> np.ndarray:
    return T0 + np.arange(n, dtype="int64") * M


@pytest.mark.parametrize(
    ("active", "for_min", "keep_min", "expected"),
    [
        ("0000", 0, 0, []),
        ("0110", 0, 0, [(1, 1, 3)]),
        ("0110", 1, 0, [(1, 2, 3)]),
        ("0110", 2, 0, [(1, None, 3)]),  # pending, never fired
        ("1111", 2, 0, [(0, 2, None)]),  # still firing at the end
        ("0111", 5, 0, [(1, None, None)]),  # still pending at the end
        ("1101101", 1, 0, [(0, 1, 2), (3, 4, 5), (6, None, None)]),
        ("1101100", 1, 2, [(0, 1, None)]),  # keep_firing_for bridges short gaps
        ("110000", 1, 2, [(0, 1, 4)]),  # resolved keep_firing_for after the first absence
    ],
)
def test_state_machine(active, for_min, keep_min, expected):
    flags = np.array([c == "1" for c in active])
    got = episodes_for(_times(len(active)), flags, for_min * M, keep_min * M)
    as_steps = [
        tuple(None if v is None else int((v - T0) // M) for v in episode) for episode in got
    ]
    assert as_steps == expected


def test_evaluation_times_are_interval_aligned():
    times = evaluation_times(T0 + 1, T0 + 3 * M, M)
    assert list(times) == [T0 + M, T0 + 2 * M, T0 + 3 * M]
    with pytest.raises(ConfigError, match="shorter than one evaluation interval"):
        evaluation_times(T0 + 1, T0 + 2, M)


def _rules(expr: str, for_: str = "0s", interval: str = "1m"):
    rule = {
        "alert": "A",
        "expr": expr,
        "for": for_,
        "annotations": {"summary": "{{ $labels.app }}: {{ $value }} errors/min"},
    }
    return parse_rules({"groups": [{"name": "g", "interval": interval, "rules": [rule]}]})


def test_hand_computed_backtest_on_the_engine():
    logs = LocalLogs([])
    # minute k gets counts[k] error lines, at 10 s past the minute
    counts = [0, 1, 4, 5, 6, 0, 5, 0]
    entries = [
        (T0 + k * M + 10 * NS_PER_S + i, f"err {k}.{i}")
        for k, n in enumerate(counts)
        for i in range(n)
    ]
    logs.add_lines({"app": "api", "level": "error"}, entries)
    groups = _rules('sum by (app) (count_over_time({app="api"}[1m])) > 3', for_="1m")
    result = backtest(logs, groups, T0, T0 + 8 * M, warmup="0s")
    # evaluation at T0+kM sees minute k-1: active at k = 3, 4, 5 and 7; fires at 4 (for 1m)
    fired = result.firings
    assert len(fired) == 1
    row = fired.iloc[0]
    assert row["pending_at"] == pd.Timestamp(T0 + 3 * M, tz="UTC")
    assert row["fired_at"] == pd.Timestamp(T0 + 4 * M, tz="UTC")
    assert row["resolved_at"] == pd.Timestamp(T0 + 6 * M, tz="UTC")
    assert row["labels"] == {"app": "api"} and row["firing_s"] == 120.0
    assert row["value"] == 5.0  # the evaluation at 4m sees minute 3: 5 lines
    assert row["summary"] == "api: 5 errors/min"
    pending_only = result.episodes[result.episodes["fired_at"].isna()]
    assert list(pending_only["pending_at"]) == [pd.Timestamp(T0 + 7 * M, tz="UTC")]
    assert result.counts() == {"A": 1}


def test_absent_rule_fires_after_warmup_only_when_logs_stop():
    logs = LocalLogs([])
    logs.add_lines({"app": "api"}, [(T0 + (5 + k * 20) * NS_PER_S, "tick") for k in range(30)])
    groups = _rules('absent_over_time({app="api"}[2m])')
    result = backtest(logs, groups, T0, T0 + 20 * M)  # auto warmup = 2m
    fired = result.firings
    # the last line is at 9m45s: (t-2m, t] is empty from t = 11m45s, i.e. the 12m evaluation
    assert list(fired["fired_at"]) == [pd.Timestamp(T0 + 12 * M, tz="UTC")]
    assert pd.isna(fired["resolved_at"].iloc[0])
    without_warmup = backtest(logs, groups, T0, T0 + 20 * M, warmup="0s")
    assert len(without_warmup.firings) == 2  # the first evaluation sees no data yet


@pytest.fixture(scope="module")
def p0():
    return load_rules(rules_path())


@pytest.fixture(scope="module")
def day_logs(sim_day):
    return LocalLogs([sim_day.path])


@pytest.mark.slow
def test_backtest_finds_every_injected_incident_within_one_interval(sim_day, day_logs, p0):
    result = backtest(day_logs, p0, sim_day.start_ns, sim_day.end_ns)
    matched = match_incidents(result, sim_day.incidents)
    assert len(matched) == 5
    assert matched["detected"].all(), matched
    intervals = {r.name: g.interval_ns for g in p0 for r in g.rules}
    for _, row in matched.iterrows():
        incident = next(i for i in sim_day.incidents if i["id"] == row["incident"])
        assert incident["start_ns"] <= row["fired_at"].value
        assert row["fired_at"].value <= incident["end_ns"] + intervals[row["alert"]]
    explained = explain_firings(result, sim_day.incidents)
    assert (explained["incident"] != "").all(), explained


@pytest.mark.slow
def test_quiet_day_fires_nothing(sim_quiet, p0):
    logs = LocalLogs([sim_quiet.path])
    result = backtest(logs, p0, sim_quiet.start_ns, sim_quiet.end_ns)
    assert result.counts() == {name: 0 for name in result.counts()}
    assert len(result.counts()) == 5
    assert result.episodes.empty or result.episodes["fired_at"].isna().all()


@pytest.mark.slow
def test_sweep_at_the_rule_threshold_agrees_with_the_backtest(sim_day, day_logs, p0):
    result = backtest(day_logs, p0, sim_day.start_ns, sim_day.end_ns)
    counts = result.counts()
    for group in p0:
        for rule in group.rules:
            if split_threshold(rule.expr) is None:
                continue
            table = sweep(day_logs, group, rule, sim_day.start_ns, sim_day.end_ns)
            assert table.loc[table["current"], "firings"].item() == counts[rule.name], rule.name
            ordered = table.sort_values("threshold")
            # for a `>` rule, raising the threshold never adds firing minutes
            assert (np.diff(ordered["firing_minutes"]) <= 1e-9).all(), rule.name


@pytest.mark.slow
def test_tuning_raises_a_noisy_threshold_and_keeps_detection(sim_day, day_logs, p0, tmp_path):
    noisy = load_rules(rules_path())
    for group in noisy:
        for rule in group.rules:
            if rule.name == "HighLatencyP95":
                rule.expr = split_threshold(rule.expr).expr_with(1000)
    tuned, summary, sweeps = tune(
        day_logs, noisy, sim_day.start_ns, sim_day.end_ns, incidents=sim_day.incidents
    )
    row = summary.set_index("rule").loc["HighLatencyP95"]
    assert row["current"] == 1000 and row["tuned"] > 1000
    lat = sweeps[sweeps["rule"] == "HighLatencyP95"].set_index("threshold")
    assert lat.loc[1000, "unexpected"] > 0
    assert lat.loc[row["tuned"], "unexpected"] == 0 and lat.loc[row["tuned"], "detected"] == 1
    # rules that were already quiet keep their thresholds
    assert summary.set_index("rule").loc["HighErrorRate", "tuned"] == 10
    out = write_rules(tuned, tmp_path / "tuned.yaml")
    again = {r.name: r for g in load_rules(out) for r in g.rules}
    assert split_threshold(again["HighLatencyP95"].expr).value == row["tuned"]
    result = backtest(day_logs, load_rules(out), sim_day.start_ns, sim_day.end_ns)
    assert result.counts()["HighLatencyP95"] == lat.loc[row["tuned"], "firings"]


def _table(rows, current):
    frame = pd.DataFrame(rows, columns=["threshold", "firings", "unexpected", "detected"])
    frame["current"] = frame["threshold"] == current
    return frame


def test_pick_threshold_keeps_a_quiet_current_threshold():
    table = _table([(5, 3, 0, 1), (10, 1, 0, 1), (20, 0, 0, 0)], current=10)
    assert pick_threshold(table, 0)[0] == 10


def test_pick_threshold_moves_to_the_nearest_quiet_one_that_still_detects():
    table = _table([(5, 9, 6, 1), (10, 4, 2, 1), (15, 1, 0, 1), (30, 0, 0, 0)], current=5)
    value, reason = pick_threshold(table, 0)
    assert value == 15 and "15" in reason


def test_pick_threshold_without_incidents_uses_all_firings():
    frame = pd.DataFrame({"threshold": [1.0, 2.0, 4.0], "firings": [5, 2, 0]})
    frame["current"] = frame["threshold"] == 1.0
    assert pick_threshold(frame, 2)[0] == 2.0
    assert pick_threshold(frame, 0)[0] == 4.0


def test_pick_threshold_when_nothing_is_quiet_takes_the_quietest():
    table = _table([(1, 9, 5, 1), (2, 8, 3, 1)], current=1)
    value, reason = pick_threshold(table, 0)
    assert value == 2 and "no candidate" in reason


def test_candidate_thresholds_include_current_and_span_the_values():
    values = np.array([0.0, 1.0, 2.0, 50.0, np.nan, np.inf])
    picks = candidate_thresholds(values, 10.0)
    assert 10.0 in picks and picks == sorted(picks)
    assert max(picks) >= 50.0 and min(picks) <= 2.5
    assert 0.0 in candidate_thresholds(np.array([0.0, 3.0]), 0.0)


def test_sweep_refuses_rules_without_a_threshold(day_logs, p0, sim_day):
    group = p0[0]
    rule = next(r for r in group.rules if r.name == "ServiceDown")
    with pytest.raises(ConfigError, match="no `<query> <op> <number>` threshold"):
        sweep(day_logs, group, rule, sim_day.start_ns, sim_day.end_ns)


@pytest.mark.slow
def test_one_range_query_equals_an_instant_query_at_every_evaluation(sim_day, day_logs, p0):
    """The backtest's shortcut is exact: range values at step t == instant query at t."""
    from opsbook.loki.backtest import evaluate
    from opsbook.loki.frames import vector_frame

    checked = 0
    for group in p0:
        for rule in group.rules:
            times = evaluation_times(sim_day.start_ns, sim_day.end_ns, group.interval_ns)
            evaluation = evaluate(day_logs, rule.expr, times)
            picks = set(range(0, len(times), max(1, len(times) // 12)))
            for incident in sim_day.incidents:  # plus the minutes around each incident
                picks.update(np.searchsorted(times, [incident["start_ns"], incident["end_ns"]]))
            for i in sorted(p for p in picks if p < len(times)):
                instant = vector_frame(day_logs.query(rule.expr, time=int(times[i])))
                expected = dict(zip(instant["series"], instant["value"], strict=True))
                row = evaluation.values.iloc[i]
                got = {
                    k: row[k]
                    for k, present in zip(row.index, evaluation.present[i], strict=True)
                    if present
                }
                assert got.keys() == expected.keys(), (rule.name, i)
                for key, value in expected.items():
                    assert got[key] == pytest.approx(value, rel=1e-9, nan_ok=True)
                checked += 1
    assert checked > 60


def test_tuned_thresholds_maps_each_rule_to_its_tuned_value() -> None:
    from opsbook.loki.backtest import tuned_thresholds

    tuning = pd.DataFrame(
        [
            {"rule": "HighErrorRate", "current": 10.0, "tuned": 25.0},
            {"rule": "HighLatencyP95", "current": 2000.0, "tuned": 2000.0},
        ]
    )
    assert tuned_thresholds(tuning) == {"HighErrorRate": 25.0, "HighLatencyP95": 2000.0}
    assert tuned_thresholds(pd.DataFrame()) == {}
