"""The P0 dashboards as data: one spec per panel, read by the notebook and the Grafana export.

A :class:`Panel` holds what Grafana needs (title, kind, unit, thresholds, LogQL targets
with legends) and nothing about drawing. Its targets are written in Grafana's own variable
syntax (``$__auto`` for the range window, ``$service`` and ``$env`` for the template
variables), so the exported JSON carries the very text below. The notebook evaluates the
same text after :func:`bind` substitutes the variables the way Grafana does: that is how
the charts in the notebook and the panels in Grafana cannot drift apart.

>>> panel = panel_by_key("system_health", "error_lines")
>>> bind(panel.targets[0].expr, window="1m", services=["api"])
'sum by (service) (rate({service=~"(api)", env=~".*", level="error"}[1m])) * 60'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opsbook.errors import ConfigError

PanelKind = Literal["timeseries", "stat", "barchart"]

#: Grafana units used by the panels (Grafana's unit ids).
UNITS = {"reqps": "req/s", "ms": "ms", "currencyUSD": "USD", "short": "", "none": ""}

HTTP_PARSERS = {"backend-ts": "json", "backend-rag": "logfmt"}
AI_SERVICE = "backend-ts"
VECTOR_DB = "qdrant"
REDIS = "redis"
QUANTILES = (0.5, 0.95, 0.99)
#: Variables every dashboard declares, with the value meaning "all".
ALL_VALUES = {"service": ".+", "env": ".*"}
#: ``$__auto`` never falls below this in latency panels (a quantile needs enough samples).
LATENCY_MIN_WINDOW = "5m"


@dataclass(frozen=True)
class Target:
    """One LogQL query of a panel; ``legend`` is Grafana's legend format."""

    expr: str
    legend: str
    ref_id: str = "A"
    #: ``instant`` for stat panels; a fixed ``step`` (e.g. ``1d``) for calendar panels.
    instant: bool = False
    step: str = ""


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: what it shows, in which unit, with which queries."""

    key: str
    title: str
    kind: PanelKind
    unit: str
    targets: tuple[Target, ...]
    description: str
    #: The label a chart's lines are grouped by (the legend).
    group_by: str
    #: Threshold steps (value where the colour turns red); empty for none.
    thresholds: tuple[float, ...] = ()
    #: ``above``: values at or past a threshold are bad; ``below``: values under it are.
    bad_when: Literal["above", "below"] = "above"
    #: Lower bound of ``$__auto`` (Grafana's panel "min interval").
    min_window: str = ""
    width: int = 12
    height: int = 8

    def labels(self) -> set[str]:
        """Every label name the panel's queries select or group by (see :func:`query_labels`)."""
        names: set[str] = set()
        for target in self.targets:
            names |= query_labels(target.expr)
        return names


@dataclass(frozen=True)
class Dashboard:
    """A Grafana dashboard: uid, title and panels in reading order."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("opsbook", "p0"))


# ------------------------------------------------------------------ LogQL building blocks


def _selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def _http_pipeline(service: str) -> str:
    parser = HTTP_PARSERS[service]
    sel = _selector(f'service="{service}"', 'service=~"$service"', 'env=~"$env"')
    return f'{sel} | {parser} | __error__="" | route!="" | route!="/healthz"'


def _ai_pipeline() -> str:
    sel = _selector(f'service="{AI_SERVICE}"', 'service=~"$service"', 'env=~"$env"')
    return f'{sel} | json | __error__="" | model!=""'


def _q(quantile: float) -> str:
    return f"p{int(round(quantile * 100))}"


def _per_http_service(build: object, legend: str) -> tuple[Target, ...]:
    refs = "ABCDEFGHIJ"
    return tuple(
        Target(build(service), legend, refs[i])  # type: ignore[operator]
        for i, service in enumerate(HTTP_PARSERS)
    )


# ------------------------------------------------------------------ the four dashboards


def _system_health() -> Dashboard:
    every = _selector('service=~"$service"', 'env=~"$env"')
    errors = _selector('service=~"$service"', 'env=~"$env"', 'level="error"')
    latency = tuple(
        Target(
            f"quantile_over_time({q:g}, {_http_pipeline(s)} "
            f'| unwrap latency_ms | __error__="" [$__auto]) by (service)',
            "{{service}} " + _q(q),
            "ABCDEFGHIJ"[i * len(QUANTILES) + j],
        )
        for i, s in enumerate(HTTP_PARSERS)
        for j, q in enumerate(QUANTILES)
    )
    return Dashboard(
        uid="opsbook-system-health",
        title="System Health",
        description="Service status, request rate, errors and latency of the AI platform.",
        panels=(
            Panel(
                "service_status",
                "Service status: log lines in the last 2 minutes",
                "stat",
                "short",
                (
                    Target(
                        f"sum by (service) (count_over_time({every}[2m]))",
                        "{{service}}",
                        instant=True,
                    ),
                ),
                "0 means the service shipped no log line for 2 minutes (the ServiceDown alert).",
                "service",
                thresholds=(1.0,),
                bad_when="below",
                width=24,
                height=4,
            ),
            Panel(
                "requests",
                "Requests per second",
                "timeseries",
                "reqps",
                _per_http_service(
                    lambda s: f"sum by (service) (rate({_http_pipeline(s)} [$__auto]))",
                    "{{service}}",
                ),
                "HTTP requests answered per second (health checks excluded).",
                "service",
            ),
            Panel(
                "error_lines",
                "Error lines per minute",
                "timeseries",
                "short",
                (Target(f"sum by (service) (rate({errors}[$__auto])) * 60", "{{service}}"),),
                "Log lines at level=error per minute; the HighErrorRate alert fires above 10.",
                "service",
                thresholds=(10.0,),
            ),
            Panel(
                "server_errors",
                "5xx answers per second",
                "timeseries",
                "reqps",
                _per_http_service(
                    lambda s: (
                        f"sum by (service) (rate({_http_pipeline(s)} | status >= 500 [$__auto]))"
                    ),
                    "{{service}}",
                ),
                "Requests answered with a 5xx status, per second.",
                "service",
            ),
            Panel(
                "latency",
                "Request latency P50 / P95 / P99",
                "timeseries",
                "ms",
                latency,
                "Latency quantiles over a window of at least 5 minutes; the HighLatencyP95 "
                "alert fires above 2 s.",
                "series",
                thresholds=(2000.0,),
                min_window=LATENCY_MIN_WINDOW,
                width=24,
            ),
        ),
    )


def _ai_models() -> Dashboard:
    return Dashboard(
        uid="opsbook-ai-models",
        title="AI Models Performance",
        description="Cost, latency and usage of the model calls made by the TypeScript API.",
        panels=(
            Panel(
                "ai_cost",
                "AI spend per model",
                "timeseries",
                "currencyUSD",
                (
                    Target(
                        f"sum by (model) (sum_over_time({_ai_pipeline()} "
                        '| unwrap cost_usd | __error__="" [$__auto]))',
                        "{{model}}",
                    ),
                ),
                "USD spent per model in each interval.",
                "model",
            ),
            Panel(
                "ai_latency",
                "Model call latency P95",
                "timeseries",
                "ms",
                (
                    Target(
                        f"quantile_over_time(0.95, {_ai_pipeline()} "
                        '| unwrap latency_ms | __error__="" [$__auto]) by (model)',
                        "{{model}}",
                    ),
                ),
                "P95 latency of model calls per model, over a window of at least 5 minutes.",
                "model",
                min_window=LATENCY_MIN_WINDOW,
            ),
            Panel(
                "ai_calls",
                "Model calls per minute",
                "timeseries",
                "short",
                (
                    Target(
                        f"sum by (model) (rate({_ai_pipeline()} [$__auto])) * 60",
                        "{{model}}",
                    ),
                ),
                "How often each model is called (usage).",
                "model",
                width=24,
            ),
        ),
    )


def _database() -> Dashboard:
    return Dashboard(
        uid="opsbook-database",
        title="Database Metrics",
        description="The vector DB (Qdrant) and Redis, as their logs tell it.",
        panels=(
            Panel(
                "vector_db_errors",
                "Vector DB error lines",
                "timeseries",
                "short",
                (
                    Target(
                        "sum by (service) (count_over_time("
                        + _selector(f'service="{VECTOR_DB}"', 'env=~"$env"', 'level="error"')
                        + "[$__auto]))",
                        "{{service}}",
                    ),
                ),
                "Qdrant ERROR lines per interval; the VectorDBErrors alert fires above 2 in 5 min.",
                "service",
            ),
            Panel(
                "redis_problems",
                "Redis warnings and errors",
                "timeseries",
                "short",
                (
                    Target(
                        "sum by (level) (count_over_time("
                        + _selector(f'service="{REDIS}"', 'env=~"$env"', 'level=~"warn|error"')
                        + "[$__auto]))",
                        "{{level}}",
                    ),
                ),
                "Redis log lines at warn or error level per interval.",
                "level",
            ),
        ),
    )


def _cost() -> Dashboard:
    cost = f'{_ai_pipeline()} | unwrap cost_usd | __error__=""'
    return Dashboard(
        uid="opsbook-cost-tracking",
        title="Cost Tracking",
        description="Daily and monthly AI spend against the $2/day budget.",
        panels=(
            Panel(
                "daily_spend",
                "Daily AI spend per model",
                "barchart",
                "currencyUSD",
                (Target(f"sum by (model) (sum_over_time({cost} [1d]))", "{{model}}", step="1d"),),
                "Spend per model and calendar day (UTC); the AIBudgetExceeded alert fires "
                "when a day's total passes $2.",
                "model",
                thresholds=(2.0,),
            ),
            Panel(
                "monthly_spend",
                "AI spend over the last 30 days",
                "stat",
                "currencyUSD",
                (Target(f"sum(sum_over_time({cost} [30d]))", "total", instant=True),),
                "Total model spend over the 30 days before the end of the range.",
                "series",
                thresholds=(60.0,),
            ),
        ),
    )


DASHBOARDS: tuple[Dashboard, ...] = (_system_health(), _ai_models(), _database(), _cost())


def dashboard_by_uid(uid: str) -> Dashboard:
    for dashboard in DASHBOARDS:
        if dashboard.uid == uid:
            return dashboard
    raise ConfigError(
        f"no dashboard {uid!r}", hint=f"dashboards: {', '.join(d.uid for d in DASHBOARDS)}"
    )


def panel_by_key(dashboard: str, key: str) -> Panel:
    """The panel ``key`` of a dashboard named by uid or by the short name (``system_health``)."""
    uid = dashboard if dashboard.startswith("opsbook-") else _short_uid(dashboard)
    for panel in dashboard_by_uid(uid).panels:
        if panel.key == key:
            return panel
    raise ConfigError(f"dashboard {uid!r} has no panel {key!r}")


def _short_uid(name: str) -> str:
    short = {
        "system_health": "opsbook-system-health",
        "ai_models": "opsbook-ai-models",
        "database": "opsbook-database",
        "cost_tracking": "opsbook-cost-tracking",
    }
    if name not in short:
        raise ConfigError(f"no dashboard {name!r}", hint=f"dashboards: {', '.join(short)}")
    return short[name]


# ------------------------------------------------------------------ binding variables

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::(\w+))?\}|(\w+))")
_LABEL_NAMES = re.compile(r"(?:\{|,)\s*([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _regex_escape(value: str) -> str:
    """``value`` as an RE2 literal inside a LogQL double-quoted string."""
    meta = set(".+*?()|[]{}^$\\")
    return "".join("\\\\" + ch if ch in meta else ch for ch in value)


def _multi(values: Sequence[str] | None, name: str) -> str:
    if not values:
        return ALL_VALUES[name]
    return "(" + "|".join(_regex_escape(v) for v in values) + ")"


def bind(
    expr: str,
    *,
    window: str,
    services: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would replace them.

    ``$__auto``/``$__interval``/``$__range`` become ``window``; ``$service`` and ``$env``
    become a regex alternation of the selected values (Grafana formats multi-value
    variables in ``=~`` matchers as ``(a|b)``, escaped), or the "All" value when none is
    selected. An unknown variable is an error rather than text Loki would refuse.
    """
    values = {
        "__auto": window,
        "__interval": window,
        "__range": window,
        "service": _multi(services, "service"),
        "env": _multi(envs, "env"),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in values:
            raise ConfigError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def query_labels(expr: str) -> set[str]:
    """Label names a panel query selects on or groups by (stream selectors and by/without)."""
    names = set()
    for selector in re.findall(r"\{[^{}]*\}", expr):
        if selector.startswith("{{"):
            continue
        names.update(_LABEL_NAMES.findall(selector))
    for group in _GROUPING.findall(expr):
        names.update(n.strip() for n in group.split(",") if n.strip())
    return names


def variables(expr: str) -> set[str]:
    """Grafana variables an expression uses (``{"__auto", "service"}``)."""
    return {m.group(1) or m.group(3) for m in _VARIABLE.finditer(expr)}


def panels(dashboards: Sequence[Dashboard] = DASHBOARDS) -> list[tuple[Dashboard, Panel]]:
    """Every (dashboard, panel) pair in reading order."""
    return [(d, p) for d in dashboards for p in d.panels]


def units_label(unit: str) -> str:
    """The axis label the notebook uses for a Grafana unit."""
    return UNITS.get(unit, unit)


def legend_text(legend: str, labels: Mapping[str, str]) -> str:
    """Grafana's legend format applied to one series' labels (``{{service}} p95``)."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(labels.get(m.group(1), "")), legend)
