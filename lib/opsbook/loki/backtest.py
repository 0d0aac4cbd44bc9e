"""Backtest Loki alert rules the way the ruler evaluates them, and tune their thresholds.

The ruler runs each rule's ``expr`` as an instant query every group ``interval``; every
series in the result is *active*. An active series becomes *pending*; once it has been
active for ``for:`` it is *firing*; the first evaluation where it is absent resolves it
(after ``keep_firing_for:`` if set). A range query with ``step = interval`` at
interval-aligned times returns exactly the instant values at every evaluation, so one
query per rule replays a whole day.

The threshold sweep queries the left-hand side of ``expr <op> <threshold>`` once and
replays the state machine for each candidate threshold, so the sweep costs one query per
rule too. At the rule's own threshold the sweep agrees with the backtest.

>>> result = backtest(source, load_rules("runbooks/alerts/p0-alerts.yaml"), start, end)
... # doctest: +SKIP
>>> result.counts()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from opsbook.errors import ConfigError
from opsbook.loki.frames import matrix_frame, vector_frame
from opsbook.loki.rules import (
    Rule,
    RuleGroup,
    Threshold,
    compare,
    format_number,
    range_windows_ns,
    split_threshold,
    with_thresholds,
)
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns

EPISODE_COLUMNS = [
    "group",
    "rule",
    "series",
    "labels",
    "pending_at",
    "fired_at",
    "resolved_at",
    "firing_s",
    "value",
    "summary",
]
DAY_NS = 86400 * NS_PER_S


@dataclass
class Evaluation:
    """Values of one expression at every evaluation time: ``values[time, series]``."""

    times: np.ndarray  # int64 ns
    values: pd.DataFrame  # index: times (int ns), columns: series keys; NaN = absent
    labels: dict[str, dict[str, str]]
    present: np.ndarray  # bool (times × series): the series was in the result (even NaN)

    def active(self) -> np.ndarray:
        """Boolean matrix (times × series): the series was in the result."""
        return self.present


@dataclass
class BacktestResult:
    """Every activation episode of every rule over ``[start_ns, end_ns]``."""

    episodes: pd.DataFrame
    start_ns: int
    end_ns: int
    rules: list[tuple[RuleGroup, Rule]] = field(default_factory=list)

    @property
    def firings(self) -> pd.DataFrame:
        """Episodes that reached ``firing`` (the alerts a pager would have sent)."""
        return self.episodes[self.episodes["fired_at"].notna()].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """Number of firings per alert (zero for rules that never fired)."""
        fired = self.firings["rule"].value_counts()
        return {rule.name: int(fired.get(rule.name, 0)) for _, rule in self.rules}


def evaluation_times(start_ns: int, end_ns: int, interval_ns: int) -> np.ndarray:
    """Interval-aligned evaluation times in ``[start, end]``.

    The real ruler starts each group at a fixed offset inside the interval (derived from
    a hash of the group), so its evaluations are shifted by less than one interval from
    these; a firing found here happens within one interval of the ruler's.
    """
    if interval_ns <= 0:
        raise ConfigError("the evaluation interval must be positive")
    first = -(-start_ns // interval_ns) * interval_ns
    if first > end_ns:
        raise ConfigError(
            "the window is shorter than one evaluation interval",
            hint="widen start/end or use a smaller interval",
        )
    return np.arange(first, end_ns + 1, interval_ns, dtype="int64")


def step_text(interval_ns: int) -> str:
    """An interval as a step string both backends accept (``60s``, ``0.5s``)."""
    if interval_ns % NS_PER_S == 0:
        return f"{interval_ns // NS_PER_S}s"
    return f"{interval_ns / NS_PER_S:g}s"


def evaluate(source: Any, expr: str, times: np.ndarray) -> Evaluation:
    """Run ``expr`` at every time in ``times`` with one range query."""
    interval = int(times[1] - times[0]) if len(times) > 1 else NS_PER_S
    if len(times) == 1:
        data = source.query(expr, time=int(times[0]))
        frame = vector_frame(data) if data.get("resultType") == "vector" else matrix_frame(data)
    else:
        data = source.query_range(expr, int(times[0]), int(times[-1]), step=step_text(interval))
        if data.get("resultType") != "matrix":
            raise ConfigError(
                f"rule expression returned {data.get('resultType')!r}, not a metric result",
                hint="a rule's expr must be a metric query",
            )
        frame = matrix_frame(data)
    labels = {key: labels for key, labels in zip(frame["series"], frame["labels"], strict=True)}
    ts = frame["timestamp"].astype("int64").to_numpy() if not frame.empty else np.empty(0, "int64")
    long = pd.DataFrame({"t": ts, "series": frame["series"].to_numpy(), "value": frame["value"]})
    long = long.drop_duplicates(["t", "series"], keep="last")
    columns = sorted(labels)
    values = long.pivot(index="t", columns="series", values="value")
    values = values.reindex(index=times, columns=columns)
    values.columns.name = None
    present = np.zeros(values.shape, dtype=bool)
    if not long.empty:
        rows = np.searchsorted(times, long["t"].to_numpy())
        in_grid = (rows < len(times)) & (times[np.minimum(rows, len(times) - 1)] == long["t"])
        cols = pd.Index(columns).get_indexer(long["series"])
        present[rows[in_grid], cols[in_grid]] = True
    return Evaluation(times=times, values=values, labels=labels, present=present)


def episodes_for(
    times: np.ndarray, active: np.ndarray, for_ns: int, keep_firing_for_ns: int = 0
) -> list[tuple[int, int | None, int | None]]:
    """Replay the ruler's state machine for one series.

    Returns ``(pending_at, fired_at or None, resolved_at or None)`` per activation; a
    None ``resolved_at`` means still pending/firing at the end of the window.
    """
    out: list[tuple[int, int | None, int | None]] = []
    state = "inactive"
    active_at = fired_at = 0
    absent_since: int | None = None  # Prometheus' KeepFiringSince
    for t, is_active in zip(times.tolist(), active.tolist(), strict=True):
        if is_active:
            absent_since = None
            if state == "inactive":
                state, active_at = "pending", t
            if state == "pending" and t - active_at >= for_ns:
                state, fired_at = "firing", t
        elif state == "pending":
            out.append((active_at, None, t))
            state = "inactive"
        elif state == "firing":
            absent_since = t if absent_since is None else absent_since
            if keep_firing_for_ns and t - absent_since < keep_firing_for_ns:
                continue
            out.append((active_at, fired_at, t))
            state, absent_since = "inactive", None
    if state == "pending":
        out.append((active_at, None, None))
    elif state == "firing":
        out.append((active_at, fired_at, None))
    return out


def episodes_frame(
    group: str, rule: Rule, evaluation: Evaluation, active: np.ndarray, end_ns: int
) -> pd.DataFrame:
    """Episodes of every series of one rule as rows of :data:`EPISODE_COLUMNS`.

    ``value`` is the expression's value when the alert fired and ``summary`` the rule's
    ``summary`` annotation rendered with it, as the ruler would send it.
    """
    rows = []
    index = {int(t): i for i, t in enumerate(evaluation.times)}
    template = rule.annotations.get("summary", "")
    for j, key in enumerate(evaluation.values.columns):
        labels = evaluation.labels.get(key, {})
        for pending, fired, resolved in episodes_for(
            evaluation.times, active[:, j], rule.for_ns, rule.keep_firing_for_ns
        ):
            stop = resolved if resolved is not None else end_ns
            value = float(evaluation.values.iat[index[fired], j]) if fired is not None else np.nan
            rows.append(
                {
                    "group": group,
                    "rule": rule.name,
                    "series": key,
                    "labels": labels,
                    "pending_at": pending,
                    "fired_at": fired,
                    "resolved_at": resolved,
                    "firing_s": (stop - fired) / NS_PER_S if fired is not None else 0.0,
                    "value": value,
                    "summary": render_annotation(template, labels, value) if fired else "",
                }
            )
    return pd.DataFrame(rows, columns=EPISODE_COLUMNS)


_TEMPLATE_FIELD = re.compile(r"{{\s*\$(labels\.([A-Za-z_][A-Za-z0-9_]*)|value)\s*}}")


def render_annotation(template: str, labels: dict[str, str], value: float) -> str:
    """Fill ``{{ $labels.name }}`` and ``{{ $value }}`` in an annotation template.

    Other Go template constructs are left as written.
    """

    def field(match: re.Match[str]) -> str:
        if match.group(1) == "value":
            return format_number(round(value, 4)) if np.isfinite(value) else str(value)
        return labels.get(match.group(2), "")

    return _TEMPLATE_FIELD.sub(field, template)


def _as_datetimes(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("pending_at", "fired_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column].astype("Int64"), unit="ns", utc=True)
    return frame


def iter_alerts(groups: Sequence[RuleGroup]) -> Iterable[tuple[RuleGroup, Rule]]:
    """Every alerting rule (recording rules are skipped: they never fire)."""
    for group in groups:
        for rule in group.rules:
            if rule.kind == "alert":
                yield group, rule


def backtest(
    source: Any,
    groups: Sequence[RuleGroup],
    start: Any,
    end: Any,
    *,
    only: Iterable[str] | None = None,
    warmup: str | int = "auto",
) -> BacktestResult:
    """Replay every alert of ``groups`` over ``[start, end]``; one range query per rule.

    ``warmup`` delays the first evaluation so that range windows are not cut by the
    start of the data: ``"auto"`` uses the rule's longest window of at most one hour
    (an ``absent_over_time(...[2m])`` would otherwise fire at the very first
    evaluation); windows longer than that (a ``[1d]`` budget) are evaluated on the data
    available, which can only under-count. Pass ``"0s"`` when the data starts earlier
    (an int is taken as nanoseconds).
    """
    start_ns, end_ns = to_ns(start), to_ns(end)
    wanted = set(only) if only else None
    frames = []
    selected = []
    for group, rule in iter_alerts(groups):
        if wanted is not None and rule.name not in wanted:
            continue
        selected.append((group, rule))
        times = evaluation_times(start_ns + warmup_ns(rule, warmup), end_ns, group.interval_ns)
        evaluation = evaluate(source, rule.expr, times)
        frames.append(episodes_frame(group.name, rule, evaluation, evaluation.active(), end_ns))
    episodes = pd.concat(frames, ignore_index=True) if frames else _empty_episodes()
    episodes = _as_datetimes(episodes)
    return BacktestResult(episodes=episodes, start_ns=start_ns, end_ns=end_ns, rules=selected)


def warmup_ns(rule: Rule, warmup: str | int = "auto") -> int:
    """Delay before a rule's first evaluation (see :func:`backtest`)."""
    if warmup == "auto":
        short = [w for w in range_windows_ns(rule.expr) if w <= 3600 * NS_PER_S]
        return max(short, default=0)
    if isinstance(warmup, int) and not isinstance(warmup, bool):
        return warmup  # nanoseconds
    return parse_duration(str(warmup))


def _empty_episodes() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="object") for column in EPISODE_COLUMNS})


# ------------------------------------------------------------- incidents


def grace_ns(group: RuleGroup, rule: Rule) -> int:
    """How long after an incident ends a firing can still be caused by it.

    One interval, the ``for:`` and the rule's range window (capped at one hour: a
    ``[1d]`` budget window would otherwise tie every later firing to an incident).
    """
    window = min(max(range_windows_ns(rule.expr), default=0), 3600 * NS_PER_S)
    return group.interval_ns + rule.for_ns + window


def _labels_agree(incident_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k, v) == v for k, v in incident_labels.items())


def match_incidents(result: BacktestResult, incidents: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """For each incident and each alert it should trigger: detected, first firing, delay.

    Detected means the alert (with labels agreeing with the incident's) started firing
    between the incident's start and one evaluation interval after its end.
    """
    intervals = {rule.name: group.interval_ns for group, rule in result.rules}
    firings = result.firings
    rows = []
    for incident in incidents:
        start, end = to_ns(incident["start_ns"]), to_ns(incident["end_ns"])
        for alert in incident.get("alerts", []):
            interval = intervals.get(alert)
            first = None
            if interval is not None:
                mine = firings[firings["rule"] == alert]
                for fired, labels in zip(mine["fired_at"], mine["labels"], strict=True):
                    at = int(fired.value)
                    ok = start <= at <= end + interval
                    if ok and _labels_agree(incident.get("labels", {}), labels):
                        first = at if first is None else min(first, at)
            rows.append(
                {
                    "incident": incident.get("id", ""),
                    "kind": incident.get("kind", ""),
                    "alert": alert,
                    "start": pd.Timestamp(start, tz="UTC"),
                    "end": pd.Timestamp(end, tz="UTC"),
                    "detected": first is not None,
                    "fired_at": pd.Timestamp(first, tz="UTC") if first is not None else pd.NaT,
                    "delay_s": (first - start) / NS_PER_S if first is not None else np.nan,
                    "evaluated": interval is not None,
                }
            )
    return pd.DataFrame(rows)


def detection_summary(detection: pd.DataFrame) -> dict[str, Any]:
    """``{"detected": n, "missed": [incident ids]}`` of a :func:`match_incidents` table.

    ``detected`` counts (incident, alert) pairs that fired in time; ``missed`` names each
    incident with at least one expected alert that did not. The notebook records these
    and ``opsbook loki backtest`` prints them (and exits 1 when ``missed`` is not empty).
    """
    if detection.empty:
        return {"detected": 0, "missed": []}
    missed = detection.loc[~detection["detected"], "incident"]
    return {"detected": int(detection["detected"].sum()), "missed": sorted(set(missed))}


def tuned_thresholds(tuning: pd.DataFrame) -> dict[str, float]:
    """Rule name -> tuned threshold, from the summary :func:`tune` returns.

    The notebook records and charts this; ``opsbook loki backtest --tuned-out`` prints it.
    """
    if tuning.empty:
        return {}
    return {
        str(rule): float(value) for rule, value in zip(tuning["rule"], tuning["tuned"], strict=True)
    }


def explain_firings(result: BacktestResult, incidents: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Firings with the incident that explains each (empty string = unexpected noise).

    A firing is explained by an incident when it starts between the incident's start and
    :func:`grace_ns` after its end; incidents that list the alert win, then the one that
    started last.
    """
    graces = {rule.name: grace_ns(group, rule) for group, rule in result.rules}
    firings = result.firings.copy()
    firings["incident"] = [
        _explaining(int(f.value), rule, graces.get(rule, 0), incidents)
        for f, rule in zip(firings["fired_at"], firings["rule"], strict=True)
    ]
    return firings


def _explaining(fired_ns: int, rule: str, grace: int, incidents: Sequence[dict[str, Any]]) -> str:
    best: tuple[bool, int] | None = None
    found = ""
    for incident in incidents:
        start, end = to_ns(incident["start_ns"]), to_ns(incident["end_ns"])
        if not start <= fired_ns <= end + grace:
            continue
        rank = (rule in incident.get("alerts", []), start)
        if best is None or rank > best:
            best, found = rank, str(incident.get("id", "incident"))
    return found


# ------------------------------------------------------------- threshold sweep


def candidate_thresholds(values: np.ndarray, current: float, count: int = 16) -> list[float]:
    """Thresholds worth trying: around the current one and across observed values."""
    finite = values[np.isfinite(values)]
    picks = {float(current)}
    if current:
        picks.update(current * f for f in (0.25, 0.5, 0.75, 1.25, 1.5, 2.0, 3.0, 5.0))
    else:
        picks.update(float(i) for i in range(1, 6))
    if finite.size:
        quantiles = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
        picks.update(float(q) for q in np.quantile(finite, quantiles))
    nice = sorted({_round_nice(p) for p in picks if p >= 0 or current < 0})
    if len(nice) > count:
        keep = np.unique(np.linspace(0, len(nice) - 1, count).round().astype(int))
        nice = sorted({nice[i] for i in keep} | {float(current)})
    return nice


def _round_nice(value: float) -> float:
    if value == 0 or not np.isfinite(value):
        return float(value)
    digits = 2 - int(np.floor(np.log10(abs(value)))) - 1  # two significant digits
    return float(round(value, digits))


def sweep(
    source: Any,
    group: RuleGroup,
    rule: Rule,
    start: Any,
    end: Any,
    *,
    thresholds: Sequence[float] | None = None,
    incidents: Sequence[dict[str, Any]] | None = None,
    warmup: str | int = "auto",
) -> pd.DataFrame:
    """Firings of ``rule`` for each candidate threshold (one query of the left side).

    Columns: ``rule, op, threshold, current, firings, firing_minutes`` and, with
    ``incidents``, ``detected`` (incidents of this alert caught) and ``unexpected``
    (firings no incident explains).
    """
    split = split_threshold(rule.expr)
    if split is None or split.bool_modifier:
        raise ConfigError(
            f"rule {rule.name!r} has no `<query> <op> <number>` threshold to sweep",
            hint="absent_over_time-style rules fire on absence; tune their window instead",
        )
    start_ns, end_ns = to_ns(start), to_ns(end)
    times = evaluation_times(start_ns + warmup_ns(rule, warmup), end_ns, group.interval_ns)
    evaluation = evaluate(source, split.lhs, times)
    values = evaluation.values.to_numpy(dtype="float64")
    candidates = (
        sorted({float(t) for t in thresholds} | {split.value})
        if thresholds is not None
        else candidate_thresholds(values.ravel(), split.value)
    )
    present = evaluation.present
    rows = []
    for threshold in candidates:
        with np.errstate(invalid="ignore"):
            active = present & compare(values, split.op, threshold)
        episodes = _as_datetimes(episodes_frame(group.name, rule, evaluation, active, end_ns))
        rows.append(
            _sweep_row(rule, split, threshold, episodes, incidents, group, start_ns, end_ns)
        )
    return pd.DataFrame(rows)


def _sweep_row(
    rule: Rule,
    split: Threshold,
    threshold: float,
    episodes: pd.DataFrame,
    incidents: Sequence[dict[str, Any]] | None,
    group: RuleGroup,
    start_ns: int,
    end_ns: int,
) -> dict[str, Any]:
    result = BacktestResult(episodes, start_ns, end_ns, [(group, rule)])
    fired = result.firings
    row: dict[str, Any] = {
        "rule": rule.name,
        "op": split.op,
        "threshold": threshold,
        "current": threshold == split.value,
        "firings": len(fired),
        "firing_minutes": float(fired["firing_s"].sum()) / 60.0,
    }
    if incidents is not None:
        mine = [inc for inc in incidents if rule.name in inc.get("alerts", [])]
        matched = match_incidents(result, mine)
        row["detected"] = detection_summary(matched)["detected"]
        row["expected"] = len(mine)
        explained = explain_firings(result, incidents)
        row["unexpected"] = int((explained["incident"] == "").sum())
    return row


def pick_threshold(table: pd.DataFrame, max_noise: float) -> tuple[float, str]:
    """The tuned threshold from a :func:`sweep` table, and why.

    Noise is ``unexpected`` firings when incidents are known, else all firings. Among
    thresholds whose noise is within ``max_noise`` (preferring those that still catch
    the most incidents) keep the one closest to the current threshold; if none is quiet
    enough take the quietest.
    """
    if table.empty:
        raise ConfigError("empty sweep table")
    current = float(table.loc[table["current"], "threshold"].iloc[0])
    noise_col = "unexpected" if "unexpected" in table.columns else "firings"
    quiet = table[table[noise_col] <= max_noise]
    if quiet.empty:
        best = table.sort_values([noise_col, "firings"]).iloc[0]
        return float(best["threshold"]), f"no candidate within {max_noise:g} noisy firings"
    if "detected" in quiet.columns:
        quiet = quiet[quiet["detected"] == quiet["detected"].max()]
    distance = (quiet["threshold"] - current).abs()
    best = quiet.loc[distance.idxmin()]
    value = float(best["threshold"])
    if value == current:
        return value, "current threshold is within the noise budget"
    return value, f"{int(best[noise_col])} noisy firing(s) at {format_number(value)}"


def tune(
    source: Any,
    groups: Sequence[RuleGroup],
    start: Any,
    end: Any,
    *,
    incidents: Sequence[dict[str, Any]] | None = None,
    max_firings_per_day: float = 1.0,
    warmup: str | int = "auto",
) -> tuple[list[RuleGroup], pd.DataFrame, pd.DataFrame]:
    """Sweep every alert with a threshold; return (tuned groups, summary, all sweep rows)."""
    start_ns, end_ns = to_ns(start), to_ns(end)
    budget = max_firings_per_day * (end_ns - start_ns) / DAY_NS
    tuned: dict[str, float] = {}
    summary = []
    sweeps = []
    for group, rule in iter_alerts(groups):
        split = split_threshold(rule.expr)
        if split is None or split.bool_modifier:
            continue
        table = sweep(source, group, rule, start_ns, end_ns, incidents=incidents, warmup=warmup)
        value, reason = pick_threshold(table, budget)
        sweeps.append(table)
        tuned[rule.name] = value
        at = table.set_index("threshold")
        summary.append(
            {
                "rule": rule.name,
                "op": split.op,
                "current": split.value,
                "tuned": value,
                "firings_current": int(at.loc[split.value, "firings"]),
                "firings_tuned": int(at.loc[value, "firings"]),
                "reason": reason,
            }
        )
    all_sweeps = pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame()
    return with_thresholds(list(groups), tuned), pd.DataFrame(summary), all_sweeps
