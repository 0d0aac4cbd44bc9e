"""The alert-review gate's checklist and the detection summary shared with the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

from opsbook.loki.approval import checklist
from opsbook.loki.backtest import DAY_NS, detection_summary

WINDOW = {"start_ns": 0, "end_ns": DAY_NS}  # one day: the budget is max_firings_per_day


def _detection(*rows: tuple[str, bool]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"incident": i, "alert": "A", "detected": d} for i, d in rows],
        columns=["incident", "alert", "detected"],
    )


TUNING = pd.DataFrame(
    [
        {"rule": "HighErrorRate", "op": ">", "current": 10.0, "tuned": 25.0},
        {"rule": "HighLatencyP95", "op": ">", "current": 2000.0, "tuned": 2000.0},
    ]
)


def _sweeps(detected_at_25: int = 2, unexpected_at_25: int = 1) -> pd.DataFrame:
    rows = [
        ("HighErrorRate", 10.0, 2, 6),
        ("HighErrorRate", 25.0, detected_at_25, unexpected_at_25),
        ("HighLatencyP95", 2000.0, 1, 0),
    ]
    return pd.DataFrame(
        [{"rule": r, "threshold": t, "detected": d, "unexpected": u} for r, t, d, u in rows]
    )


@pytest.mark.parametrize(
    ("rows", "summary"),
    [
        ((), {"detected": 0, "missed": []}),
        (
            (("i1", True), ("i2", False), ("i2", False), ("i0", False)),
            {"detected": 1, "missed": ["i0", "i2"]},
        ),
        ((("i1", True), ("i1", True)), {"detected": 2, "missed": []}),
    ],
)
def test_detection_summary(rows, summary):
    assert detection_summary(_detection(*rows)) == summary


def test_good_tuning_passes():
    result = checklist(
        _detection(("i1", True), ("i2", True)), TUNING, _sweeps(), max_firings_per_day=1, **WINDOW
    )
    assert [c.ok for c in result.checks] == [True, True, True, True]
    assert result.gate == "write 1 tuned threshold(s)"
    assert result.checks[0].detail == "HighErrorRate > 10 -> 25"
    assert result.checks[1].detail == "2 of 2 expected alert(s) fired in time"


def test_missed_incident_noise_and_lost_detection_fail():
    result = checklist(
        _detection(("i1", True), ("i2", False)),
        TUNING,
        _sweeps(detected_at_25=1, unexpected_at_25=3),
        max_firings_per_day=1,
        **WINDOW,
    )
    assert {c.what: c.detail for c in result.failing} == {
        "the current rules detect every known incident": (
            "1 of 2 expected alert(s) fired in time; missed: i2"
        ),
        "each tuned threshold keeps its rule within the noise budget": (
            "over 1.00 noisy firing(s) in the window: HighErrorRate (3)"
        ),
        "the tuned thresholds still detect every incident the current ones detect": (
            "would miss more: HighErrorRate (2 -> 1)"
        ),
    }


def test_without_known_incidents_detection_is_for_a_person_to_judge():
    sweeps = _sweeps().drop(columns=["detected", "unexpected"]).assign(firings=[9, 1, 0])
    result = checklist(_detection(), TUNING, sweeps, max_firings_per_day=2, **WINDOW)
    assert [c.ok for c in result.checks] == [True, None, True, None]
    assert result.checks[2].detail == "at most 2.00 noisy firing(s) each (2/day)"


def test_nothing_changed_fails_the_first_check_and_keeps_the_noise():
    unchanged = TUNING.assign(tuned=TUNING["current"])
    result = checklist(
        _detection(("i1", True)), unchanged, _sweeps(), max_firings_per_day=1, **WINDOW
    )
    assert {c.what: c.detail for c in result.failing} == {
        "there is a threshold change to write": "every tuned threshold equals the current one",
        "each tuned threshold keeps its rule within the noise budget": (
            "over 1.00 noisy firing(s) in the window: HighErrorRate (6)"
        ),
    }
