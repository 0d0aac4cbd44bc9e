"""What must be true before tuned alert thresholds are approved, computed from the review."""

from __future__ import annotations

from typing import Any

import pandas as pd

from opsbook.checklist import Check, Checklist
from opsbook.loki.backtest import DAY_NS, detection_summary
from opsbook.loki.rules import format_number


def checklist(
    detection: pd.DataFrame,
    tuning: pd.DataFrame,
    sweeps: pd.DataFrame,
    *,
    max_firings_per_day: float,
    start_ns: int,
    end_ns: int,
) -> Checklist:
    """The checks a reviewer answers before the tuned thresholds replace the current ones.

    ``detection`` is :func:`~opsbook.loki.backtest.match_incidents` of the current rules,
    ``tuning`` and ``sweeps`` the summary and sweep rows of
    :func:`~opsbook.loki.backtest.tune` over the same window. Without known incidents the
    detection checks cannot be decided (``ok`` None): a person has to judge the firings.
    """
    changes = _changes(tuning)
    budget = max_firings_per_day * (end_ns - start_ns) / DAY_NS
    known = not detection.empty
    found = detection_summary(detection)
    noisy = _over_budget(tuning, sweeps, budget)
    lost = _detection_lost(tuning, sweeps) if known else []
    checks = [
        Check(
            "there is a threshold change to write",
            bool(changes),
            ", ".join(changes) if changes else "every tuned threshold equals the current one",
        ),
        Check(
            "the current rules detect every known incident",
            (not found["missed"]) if known else None,
            f"{found['detected']} of {len(detection)} expected alert(s) fired in time"
            + (f"; missed: {', '.join(found['missed'])}" if found["missed"] else "")
            if known
            else "no known incidents: judge the firings in the backtest table yourself",
        ),
        Check(
            "each tuned threshold keeps its rule within the noise budget",
            not noisy,
            f"over {budget:.2f} noisy firing(s) in the window: {', '.join(noisy)}"
            if noisy
            else f"at most {budget:.2f} noisy firing(s) each ({max_firings_per_day:g}/day)",
        ),
        Check(
            "the tuned thresholds still detect every incident the current ones detect",
            (not lost) if known else None,
            f"would miss more: {', '.join(lost)}"
            if lost
            else "no incident lost"
            if known
            else "no known incidents to compare",
        ),
    ]
    return Checklist(f"write {len(changes)} tuned threshold(s)", checks)


def _changes(tuning: pd.DataFrame) -> list[str]:
    if tuning.empty:
        return []
    changed = tuning[tuning["tuned"] != tuning["current"]]
    return [
        f"{row.rule} {row.op} {format_number(row.current)} -> {format_number(row.tuned)}"
        for row in changed.itertuples()
    ]


def _at(sweeps: pd.DataFrame, rule: str, threshold: float) -> dict[str, Any]:
    rows = sweeps[(sweeps["rule"] == rule) & (sweeps["threshold"] == threshold)]
    return rows.iloc[0].to_dict() if len(rows) else {}


def _over_budget(tuning: pd.DataFrame, sweeps: pd.DataFrame, budget: float) -> list[str]:
    if tuning.empty:
        return []
    noise = "unexpected" if "unexpected" in sweeps.columns else "firings"
    return [
        f"{row.rule} ({_at(sweeps, row.rule, row.tuned).get(noise, 0)})"
        for row in tuning.itertuples()
        if _at(sweeps, row.rule, row.tuned).get(noise, 0) > budget
    ]


def _detection_lost(tuning: pd.DataFrame, sweeps: pd.DataFrame) -> list[str]:
    if tuning.empty or "detected" not in sweeps.columns:
        return []
    lost = []
    for row in tuning.itertuples():
        before = _at(sweeps, row.rule, row.current).get("detected", 0)
        after = _at(sweeps, row.rule, row.tuned).get("detected", 0)
        if after < before:
            lost.append(f"{row.rule} ({before} -> {after})")
    return lost
