"""Dashboards as LogQL queries plus matplotlib charts, identical on both backends.

Each ``*_query`` function returns the LogQL a Grafana panel would hold; each
``*_frame`` runs it through :mod:`opsbook.loki.source` and returns a tidy frame; the
``*_figure`` functions draw frames and shade known incidents on the time axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from opsbook.errors import ConfigError  # noqa: E402
from opsbook.loki import panels as ps  # noqa: E402
from opsbook.loki.source import instant_frame, metric_frame, step_seconds  # noqa: E402
from opsbook.loki.timeutil import NS_PER_S, parse_duration, to_ns  # noqa: E402

DEFAULT_PARSERS = {"backend-ts": "json", "backend-rag": "logfmt"}
AI_SERVICE = "backend-ts"
QUANTILES = (0.5, 0.95, 0.99)


def _regex_alt(values: Sequence[str]) -> str:
    """``a|b`` for a regex matcher, metacharacters escaped for RE2 inside a LogQL string."""
    meta = set(".+*?()|[]{}^$\\")
    return "|".join("".join("\\\\" + ch if ch in meta else ch for ch in v) for v in values)


def window_text(ns: int) -> str:
    """A LogQL range (``[...]``) for ``ns`` nanoseconds, in whole seconds."""
    seconds = max(1, ns // NS_PER_S)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def http_pipeline(service: str, parsers: Mapping[str, str] = DEFAULT_PARSERS) -> str:
    """Selector and pipeline keeping the request lines of an HTTP service."""
    parser = parsers.get(service)
    if parser is None:
        raise ConfigError(
            f"no parser known for {service!r}", hint=f"HTTP services: {sorted(parsers)}"
        )
    return f'{{service="{service}"}} | {parser} | __error__="" | route!="" | route!="/healthz"'


def requests_query(service: str, window: str, parsers: Mapping[str, str] = DEFAULT_PARSERS) -> str:
    """Requests per second of an HTTP service."""
    return f"sum by (service) (rate({http_pipeline(service, parsers)} [{window}]))"


def server_errors_query(
    service: str, window: str, parsers: Mapping[str, str] = DEFAULT_PARSERS
) -> str:
    """Requests answered with a 5xx status, counted per window."""
    return (
        f"sum by (service) (count_over_time({http_pipeline(service, parsers)} "
        f"| status >= 500 [{window}]))"
    )


def requests_count_query(
    service: str, window: str, parsers: Mapping[str, str] = DEFAULT_PARSERS
) -> str:
    """Requests counted per window."""
    return f"sum by (service) (count_over_time({http_pipeline(service, parsers)} [{window}]))"


def error_lines_query(services: Sequence[str], window: str) -> str:
    """Error-level log lines per service and window."""
    sel = f'{{service=~"{_regex_alt(services)}", level="error"}}'
    return f"sum by (service) (count_over_time({sel}[{window}]))"


def all_lines_query(services: Sequence[str], window: str) -> str:
    """Log lines per service and window."""
    return f'sum by (service) (count_over_time({{service=~"{_regex_alt(services)}"}}[{window}]))'


def latency_query(
    service: str,
    quantile: float,
    window: str,
    by: str = "service",
    parsers: Mapping[str, str] = DEFAULT_PARSERS,
) -> str:
    """Latency quantile (ms) of an HTTP service over each window."""
    return (
        f"quantile_over_time({quantile:g}, {http_pipeline(service, parsers)} "
        f'| unwrap latency_ms | __error__="" [{window}]) by ({by})'
    )


def ai_pipeline(service: str = AI_SERVICE) -> str:
    return f'{{service="{service}"}} | json | __error__="" | model!=""'


def ai_cost_query(window: str, service: str = AI_SERVICE) -> str:
    """USD spent per model over each window."""
    return (
        f"sum by (model) (sum_over_time({ai_pipeline(service)} "
        f'| unwrap cost_usd | __error__="" [{window}]))'
    )


def ai_latency_query(quantile: float, window: str, service: str = AI_SERVICE) -> str:
    """Latency quantile (ms) of model calls per model."""
    return (
        f"quantile_over_time({quantile:g}, {ai_pipeline(service)} "
        f'| unwrap latency_ms | __error__="" [{window}]) by (model)'
    )


def vector_db_errors_query(window: str, service: str = "qdrant") -> str:
    """Vector DB ERROR lines per window."""
    return f'sum by (service) (count_over_time({{service="{service}", level="error"}}[{window}]))'


def redis_problems_query(window: str, service: str = "redis") -> str:
    """Redis warnings and errors per level and window."""
    sel = f'{{service="{service}", level=~"warn|error"}}'
    return f"sum by (level) (count_over_time({sel}[{window}]))"


# ------------------------------------------------------------------ frames


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["timestamp", "value", "series", "labels"])
    return pd.concat(frames, ignore_index=True)


def fill_zeros(frame: pd.DataFrame, start: Any, end: Any, step: str) -> pd.DataFrame:
    """Add zero samples where a count/rate series had no sample (Loki omits empty steps).

    The grid is anchored on the samples' own timestamps (both backends return steps at
    ``anchor + k*step``) and spans ``[start, end]``.
    """
    if frame.empty:
        return frame
    step_ns = int(step_seconds(step) * NS_PER_S)
    anchor = int(frame["timestamp"].iloc[0].value)
    start_ns, end_ns = to_ns(start), to_ns(end)
    first = anchor - (anchor - start_ns) // step_ns * step_ns
    grid = pd.to_datetime(np.arange(first, end_ns + 1, step_ns, dtype="int64"), unit="ns", utc=True)
    parts = []
    for key, part in frame.groupby("series", sort=True):
        filled = part.set_index("timestamp").reindex(grid.union(part["timestamp"]))
        filled["value"] = filled["value"].fillna(0.0)
        filled["series"] = key
        constant = [c for c in part.columns if c not in ("timestamp", "value", "series")]
        for column in constant:
            filled[column] = [part[column].iloc[0]] * len(filled)
        parts.append(filled.rename_axis("timestamp").reset_index())
    return pd.concat(parts, ignore_index=True)[list(frame.columns)]


def http_services(services: Sequence[str], parsers: Mapping[str, str] = DEFAULT_PARSERS) -> list:
    return [s for s in services if s in parsers]


def panel_window(panel: ps.Panel, step: Any) -> str:
    """The window ``$__auto`` stands for at ``step``: the step, or the panel's minimum."""
    ns = int(step_seconds(step) * NS_PER_S)
    if panel.min_window:
        ns = max(ns, parse_duration(panel.min_window))
    return window_text(ns)


def target_frame(
    source: Any,
    panel: ps.Panel,
    target: ps.Target,
    start: Any,
    end: Any,
    step: Any,
    services: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One panel query evaluated the way Grafana would run it, plus a ``legend`` column.

    Range targets run over ``[start, end]`` at ``step`` (or the target's fixed step);
    instant targets (stat panels) run at ``end``.
    """
    expr = ps.bind(target.expr, window=panel_window(panel, step), services=services)
    if target.instant:
        frame = instant_frame(source, expr, end)
    else:
        frame = metric_frame(source, expr, start, end, target.step or step)
    legends = [ps.legend_text(target.legend, labels) for labels in frame.get("labels", [])]
    return frame.assign(legend=legends, target=target.ref_id)


def panel_frame(
    source: Any,
    panel: ps.Panel,
    start: Any,
    end: Any,
    step: Any,
    services: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every query of ``panel`` (see :func:`target_frame`), one frame."""
    return _concat(
        [target_frame(source, panel, t, start, end, step, services) for t in panel.targets]
    )


def traffic_frame(source: Any, services: Sequence[str], start: Any, end: Any, step: str) -> Any:
    """Requests/s of every HTTP service over time (panel System Health / requests)."""
    frame = panel_frame(
        source, ps.panel_by_key("system_health", "requests"), start, end, step, services
    )
    return fill_zeros(frame, start, end, step)


def errors_frame(source: Any, services: Sequence[str], start: Any, end: Any, step: str) -> Any:
    """Error lines per minute of every service over time (panel System Health / error_lines)."""
    panel = ps.panel_by_key("system_health", "error_lines")
    return fill_zeros(panel_frame(source, panel, start, end, step, services), start, end, step)


def latency_frame(source: Any, services: Sequence[str], start: Any, end: Any, step: str) -> Any:
    """P50/P95/P99 latency (ms) per HTTP service over time; column ``quantile``."""
    frame = panel_frame(
        source, ps.panel_by_key("system_health", "latency"), start, end, step, services
    )
    if frame.empty:
        return frame.assign(quantile=[])
    return frame.assign(quantile=frame["legend"].str.split().str[-1])


def health_table(source: Any, services: Sequence[str], start: Any, end: Any) -> pd.DataFrame:
    """Per service over the whole window: requests, 5xx, error rate, P50/P95/P99 (ms).

    HTTP services count requests and 5xx answers; others count log lines and error lines.
    """
    start_ns, end_ns = to_ns(start), to_ns(end)
    window = window_text(end_ns - start_ns)
    rows = {s: {"service": s, "basis": "log lines"} for s in services}
    lines = instant_frame(source, all_lines_query(services, window), end_ns)
    errors = instant_frame(source, error_lines_query(services, window), end_ns)
    for frame, column in ((lines, "requests"), (errors, "errors")):
        for _, row in frame.iterrows():
            if row.get("service") in rows:
                rows[row["service"]][column] = row["value"]
    for service in http_services(services):
        rows[service]["basis"] = "requests"
        for query, column in (
            (requests_count_query(service, window), "requests"),
            (server_errors_query(service, window), "errors"),
        ):
            frame = instant_frame(source, query, end_ns)
            rows[service][column] = float(frame["value"].sum()) if not frame.empty else 0.0
        for q in QUANTILES:
            frame = instant_frame(source, latency_query(service, q, window), end_ns)
            rows[service][f"p{int(q * 100)}_ms"] = (
                float(frame["value"].iloc[0]) if not frame.empty else np.nan
            )
    table = pd.DataFrame(list(rows.values()))
    for column in ("requests", "errors", "p50_ms", "p95_ms", "p99_ms"):
        if column not in table.columns:
            table[column] = np.nan
    table[["requests", "errors"]] = table[["requests", "errors"]].fillna(0.0)
    table["error_rate"] = np.where(
        table["requests"] > 0, table["errors"] / table["requests"].where(table["requests"] > 0), 0.0
    )
    columns = ["service", "basis", "requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms"]
    return table[columns]


def route_latency_table(
    source: Any, services: Sequence[str], start: Any, end: Any, quantile: float = 0.95
) -> pd.DataFrame:
    """Latency quantile (ms) per service and route over the whole window."""
    start_ns, end_ns = to_ns(start), to_ns(end)
    window = window_text(end_ns - start_ns)
    frames = [
        instant_frame(source, latency_query(s, quantile, window, by="service, route"), end_ns)
        for s in http_services(services)
    ]
    frame = _concat(frames)
    if frame.empty:
        return pd.DataFrame(columns=["service", "route", f"p{int(quantile * 100)}_ms"])
    out = frame[["service", "route", "value"]].rename(
        columns={"value": f"p{int(quantile * 100)}_ms"}
    )
    return out.sort_values(["service", "route"]).reset_index(drop=True)


def ai_cost_frame(source: Any, start: Any, end: Any, step: str) -> pd.DataFrame:
    """USD per model per step (windows tile the range exactly; panel AI Models / ai_cost)."""
    frame = panel_frame(source, ps.panel_by_key("ai_models", "ai_cost"), start, end, step)
    return fill_zeros(frame, start, end, step)


def ai_cost_per_day(cost: pd.DataFrame) -> pd.DataFrame:
    """Daily cost per model from :func:`ai_cost_frame` (a window ending at t is t's day)."""
    if cost.empty:
        return pd.DataFrame(columns=["day", "model", "cost_usd"])
    day = (cost["timestamp"] - pd.Timedelta(1, "ns")).dt.strftime("%Y-%m-%d")
    table = (
        cost.assign(day=day)
        .groupby(["day", "model"], as_index=False)["value"]
        .sum()
        .rename(columns={"value": "cost_usd"})
    )
    table = table[table["cost_usd"] != 0]
    return table.sort_values(["day", "cost_usd"], ascending=[True, False]).reset_index(drop=True)


def ai_latency_table(source: Any, start: Any, end: Any) -> pd.DataFrame:
    """P50/P95 latency (ms) per model over the whole window."""
    start_ns, end_ns = to_ns(start), to_ns(end)
    window = window_text(end_ns - start_ns)
    parts = {}
    for q in (0.5, 0.95):
        frame = instant_frame(source, ai_latency_query(q, window), end_ns)
        parts[f"p{int(q * 100)}_ms"] = frame.set_index("model")["value"] if not frame.empty else {}
    table = pd.DataFrame(parts)
    table.index.name = "model"
    return table.reset_index()


def ai_latency_frame(source: Any, start: Any, end: Any, step: str) -> pd.DataFrame:
    """P95 latency (ms) of model calls per model over time (panel AI Models / ai_latency)."""
    return panel_frame(source, ps.panel_by_key("ai_models", "ai_latency"), start, end, step)


def infra_errors_frame(source: Any, start: Any, end: Any, step: str) -> pd.DataFrame:
    """Vector DB errors and Redis warnings/errors per step; column ``panel``."""
    parts = []
    for key, name in (("vector_db_errors", "vector DB errors"), ("redis_problems", "redis")):
        frame = panel_frame(source, ps.panel_by_key("database", key), start, end, step)
        parts.append(fill_zeros(frame, start, end, step).assign(panel=name))
    return _concat(parts)


# ------------------------------------------------------------------ charts


def _to_ts(value: Any) -> pd.Timestamp:
    return pd.Timestamp(to_ns(value), tz="UTC")


def shade_incidents(ax: Any, incidents: Sequence[Mapping[str, Any]] | None) -> None:
    """Shade every incident's ``[start, end)`` on ``ax`` and label it at the top."""
    for incident in incidents or []:
        start = _to_ts(incident.get("start_ns") or incident["start"])
        end = _to_ts(incident.get("end_ns") or incident["end"])
        ax.axvspan(start, end, color="tab:red", alpha=0.12, lw=0)
        label = str(incident.get("kind") or incident.get("id") or "")
        ax.annotate(
            label,
            xy=(start, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="tab:red",
            va="top",
            rotation=90,
        )


def _plot_lines(ax: Any, frame: pd.DataFrame, by: str, title: str, ylabel: str) -> None:
    if frame.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    else:
        for key, part in frame.groupby(by, sort=True):
            ax.plot(part["timestamp"], part["value"], label=str(key), lw=1)
        ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))


def timeseries_figure(
    panels: Sequence[tuple[str, pd.DataFrame, str, str]],
    incidents: Sequence[Mapping[str, Any]] | None = None,
    width: float = 11.0,
) -> Figure:
    """Stacked panels sharing the time axis: ``(title, frame, group column, y label)``."""
    if not panels:
        raise ConfigError("timeseries_figure needs at least one panel")
    fig = Figure(figsize=(width, 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, frame, by, ylabel) in zip(axes, panels, strict=True):
        _plot_lines(ax, frame, by, title, ylabel)
        shade_incidents(ax, incidents)
    axes[-1].set_xlabel("time (UTC)")
    return fig


def latency_figure(
    latency: pd.DataFrame, incidents: Sequence[Mapping[str, Any]] | None = None
) -> Figure:
    """One panel per service with its P50/P95/P99 lines."""
    services = sorted(latency["service"].dropna().unique()) if not latency.empty else []
    panels = [
        (f"{s} latency", latency[latency["service"] == s], "quantile", "ms") for s in services
    ] or [("latency", latency, "series", "ms")]
    return timeseries_figure(panels, incidents)


def firings_figure(
    episodes: pd.DataFrame,
    start: Any,
    end: Any,
    incidents: Sequence[Mapping[str, Any]] | None = None,
) -> Figure:
    """Timeline of pending (light) and firing (dark) intervals per alert and series."""
    end_ts = _to_ts(end)
    keys = (
        sorted({(r, s) for r, s in zip(episodes["rule"], episodes["series"], strict=True)})
        if not episodes.empty
        else []
    )
    fig = Figure(figsize=(11.0, 1.0 + 0.4 * max(1, len(keys))), layout="constrained")
    ax = fig.subplots()
    for row, key in enumerate(keys):
        part = episodes[(episodes["rule"] == key[0]) & (episodes["series"] == key[1])]
        for _, ep in part.iterrows():
            stop = ep["resolved_at"] if pd.notna(ep["resolved_at"]) else end_ts
            fired = ep["fired_at"] if pd.notna(ep["fired_at"]) else stop
            ax.barh(row, fired - ep["pending_at"], left=ep["pending_at"], color="orange", alpha=0.5)
            if pd.notna(ep["fired_at"]):
                ax.barh(row, stop - fired, left=fired, color="tab:red")
    ax.set_yticks(range(len(keys)), [f"{r} {s}" for r, s in keys], fontsize=7)
    ax.set_xlim(_to_ts(start), end_ts)
    ax.set_title("alert backtest: pending (orange) and firing (red)", fontsize=10)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    shade_incidents(ax, incidents)
    if not keys:
        ax.text(0.5, 0.5, "no alert fired", ha="center", va="center", transform=ax.transAxes)
    return fig


def sweep_figure(sweeps: pd.DataFrame, tuned: Mapping[str, float] | None = None) -> Figure:
    """Firings vs threshold, one panel per rule; dashed = current, dotted = tuned."""
    rules = list(dict.fromkeys(sweeps["rule"])) if not sweeps.empty else []
    fig = Figure(figsize=(11.0, 2.6 * max(1, (len(rules) + 1) // 2)), layout="constrained")
    axes = fig.subplots(max(1, (len(rules) + 1) // 2), 2, squeeze=False).ravel()
    for ax, rule in zip(axes, rules, strict=False):
        part = sweeps[sweeps["rule"] == rule].sort_values("threshold")
        ax.step(part["threshold"], part["firings"], where="post", label="firings")
        if "unexpected" in part.columns:
            ax.step(part["threshold"], part["unexpected"], where="post", label="unexpected")
        current = part.loc[part["current"], "threshold"]
        if not current.empty:
            ax.axvline(current.iloc[0], ls="--", color="gray", label="current")
        if tuned and rule in tuned:
            ax.axvline(tuned[rule], ls=":", color="tab:green", label="tuned")
        ax.set_title(f"{rule} ({part['op'].iloc[0]} threshold)", fontsize=10)
        ax.set_ylabel("firings")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(rules) :]:
        ax.set_visible(False)
    return fig


# ------------------------------------------------------------------ Grafana previews


def _calendar_days(start: Any, end: Any) -> tuple[int, int]:
    """First and last UTC midnight that close a day touched by ``[start, end]``."""
    day = 86400 * NS_PER_S
    return -(-(to_ns(start) + 1) // day) * day, -(-to_ns(end) // day) * day


def preview_frame(
    source: Any, panel: ps.Panel, start: Any, end: Any, step: str, services: Sequence[str] | None
) -> pd.DataFrame:
    """What a dashboard preview draws for ``panel``: calendar panels per closing midnight."""
    if any(t.step == "1d" for t in panel.targets):
        first, last = _calendar_days(start, end)
        return panel_frame(source, panel, first, last, "1d", services)
    frame = panel_frame(source, panel, start, end, step, services)
    if panel.kind == "timeseries" and panel.unit != "ms":
        frame = fill_zeros(frame, start, end, step)
    return frame


def _is_bad(panel: ps.Panel, value: float) -> bool:
    """Whether ``value`` is past the panel's first threshold (red in Grafana)."""
    if not panel.thresholds:
        return False
    limit = panel.thresholds[0]
    return value < limit if panel.bad_when == "below" else value >= limit


def _draw_values(ax: Any, panel: ps.Panel, frame: pd.DataFrame) -> None:
    """Stat and bar panels: one bar per legend (and per day), red past the threshold."""
    if frame.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    limit = panel.thresholds[0] if panel.thresholds else None
    if panel.kind == "stat":
        names = list(frame["legend"])
        values = list(frame["value"])
        colours = ["tab:red" if _is_bad(panel, v) else "tab:green" for v in values]
        ax.barh(names, values, color=colours)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.2f}", va="center", fontsize=8)
        return
    table = frame.pivot_table(index="timestamp", columns="legend", values="value", aggfunc="sum")
    table.index = [t.strftime("%Y-%m-%d") for t in table.index - pd.Timedelta(1, "ns")]
    table.plot.bar(ax=ax, stacked=True, rot=0, legend=True)
    if limit is not None:
        ax.axhline(limit, ls="--", color="tab:red", lw=1)


def dashboard_figure(
    source: Any,
    spec: ps.Dashboard,
    start: Any,
    end: Any,
    step: str = "1m",
    incidents: Sequence[Mapping[str, Any]] | None = None,
    services: Sequence[str] | None = None,
) -> Figure:
    """Every panel of a Grafana dashboard as the export defines it, drawn with matplotlib.

    The data come from the exported queries themselves (:func:`preview_frame`), so this is
    the dashboard a reviewer will see after importing the JSON into Grafana.
    """
    count = len(spec.panels)
    columns = 2 if count > 1 else 1
    rows = -(-count // columns)
    fig = Figure(figsize=(12.0, 2.8 * rows + 0.4), layout="constrained")
    fig.suptitle(f"{spec.title} (Grafana dashboard {spec.uid})", fontsize=11)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, spec.panels, strict=False):
        frame = preview_frame(source, panel, start, end, step, services)
        unit = ps.units_label(panel.unit)
        if panel.kind == "timeseries":
            _plot_lines(ax, frame, "legend", panel.title, unit)
            for limit in panel.thresholds:
                ax.axhline(limit, ls="--", color="tab:red", lw=1)
            shade_incidents(ax, incidents)
        else:
            _draw_values(ax, panel, frame)
            ax.set_title(panel.title, fontsize=10)
            ax.set_ylabel(unit)
            ax.grid(alpha=0.3)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig
