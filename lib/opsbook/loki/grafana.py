"""Grafana dashboards and alert files from the panel specs in :mod:`opsbook.loki.panels`.

Built with Grafana's own Python SDK (``grafana-foundation-sdk``), so the JSON follows
Grafana's dashboard model rather than a hand-written imitation of it. Every dashboard has
a Loki datasource variable (``${datasource}``), multi-value ``service`` and ``env``
variables, and an annotation query showing the incidents the backtest found (they are
written beside the dashboards as Grafana annotation payloads, tagged
:data:`INCIDENT_TAG`). The export is deterministic: the same specs, rules and incidents
give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import barchart, stat, timeseries
from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import loki as gl
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as gcm
from grafana_foundation_sdk.models import dashboard as gm

from opsbook.errors import ConfigError
from opsbook.loki import panels as ps
from opsbook.loki.rules import RuleGroup, write_rules
from opsbook.loki.timeutil import to_ns

DATASOURCE = gm.DataSourceRef(type_val="loki", uid="${datasource}")
INCIDENT_TAG = "opsbook-incident"
GRID_WIDTH = 24
_BUILDERS = {"timeseries": timeseries.Panel, "stat": stat.Panel, "barchart": barchart.Panel}


def _variables() -> list[Any]:
    source = gd.DatasourceVariable("datasource").label("Loki").type("loki")
    out = [source]
    for name, label in (("service", "Service"), ("env", "Environment")):
        out.append(
            gd.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(f"label_values({name})")
            .multi(True)
            .include_all(True)
            .all_value(ps.ALL_VALUES[name])
            .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(gm.VariableSort.ALPHABETICAL_ASC)
        )
    return out


def _thresholds(values: Sequence[float], bad_when: str) -> Any:
    good, bad = ("green", "red") if bad_when == "above" else ("red", "green")
    steps = [gm.Threshold(value=None, color=good)]
    steps += [gm.Threshold(value=float(v), color=bad) for v in values]
    return gd.ThresholdsConfig().mode(gm.ThresholdsMode.ABSOLUTE).steps(steps)


def _target(target: ps.Target) -> Any:
    query = (
        gl.Dataquery()
        .expr(target.expr)
        .legend_format(target.legend)
        .ref_id(target.ref_id)
        .datasource(DATASOURCE)
    )
    query = query.instant(True) if target.instant else query.range(True)
    if target.step:
        query = query.step(target.step)
    return query


def _panel(panel: ps.Panel, panel_id: int, x: int, y: int) -> Any:
    builder = (
        _BUILDERS[panel.kind]()
        .id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .grid_pos(gm.GridPos(h=panel.height, w=panel.width, x=x, y=y))
        .targets([_target(t) for t in panel.targets])
    )
    builder = _options(builder, panel)
    if panel.thresholds:
        builder = builder.thresholds(_thresholds(panel.thresholds, panel.bad_when))
    if panel.min_window:
        builder = builder.interval(panel.min_window)
    return builder


def _legend() -> Any:
    return (
        gc.VizLegendOptions()
        .display_mode(gcm.LegendDisplayMode.LIST)
        .placement(gcm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def _options(builder: Any, panel: ps.Panel) -> Any:
    """Display options per panel kind (Grafana leaves them null otherwise)."""
    if panel.kind == "stat":
        return (
            builder.reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .color_mode(gcm.BigValueColorMode.BACKGROUND)
            .graph_mode(gcm.BigValueGraphMode.NONE)
        )
    tooltip = (
        gc.VizTooltipOptions().mode(gcm.TooltipDisplayMode.MULTI).sort(gcm.SortOrder.DESCENDING)
    )
    builder = builder.legend(_legend()).tooltip(tooltip)
    if panel.kind == "barchart":
        return builder.stacking(gcm.StackingMode.NORMAL).show_value(gcm.VisibilityMode.AUTO)
    return builder


def _incident_annotation() -> Any:
    target = gd.AnnotationTarget().type("tags").tags([INCIDENT_TAG]).limit(500).match_any(False)
    return (
        gd.AnnotationQuery()
        .name("Incidents (opsbook backtest)")
        .datasource(gm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .icon_color("red")
        .target(target)
    )


def build_dashboard(spec: ps.Dashboard) -> gm.Dashboard:
    """The Grafana dashboard model of ``spec`` (panels laid out left to right, top down)."""
    builder = (
        gd.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .editable()
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .variables(_variables())
        .annotation(_incident_annotation())
    )
    x = y = row_height = 0
    for number, panel in enumerate(spec.panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        builder = builder.with_panel(_panel(panel, number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return builder.build()


def dashboard_json(spec: ps.Dashboard) -> str:
    """Grafana's JSON for ``spec``: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build_dashboard(spec), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def load_dashboard(path: str | Path) -> gm.Dashboard:
    """A dashboard file read back through the SDK's model (raises on a malformed file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read dashboard {path}: {exc}") from exc
    return gm.Dashboard.from_json(data)


def incident_annotations(
    incidents: Sequence[Mapping[str, Any]] = (), firings: Any = None, end: Any = None
) -> list[dict[str, Any]]:
    """Grafana annotation payloads (``POST /api/annotations``) for incidents and firings.

    ``incidents`` are the known incidents (``id``, ``kind``, ``start``/``start_ns``,
    ``end``/``end_ns``); ``firings`` is :func:`opsbook.loki.backtest.explain_firings`'s
    frame, one annotation per firing from ``fired_at`` to ``resolved_at`` (or ``end`` while
    still firing). Annotations are organisation-wide and tagged :data:`INCIDENT_TAG`, so
    every dashboard's annotation query shows them. Times are epoch milliseconds.
    """
    out = []
    for incident in incidents:
        kind = str(incident.get("kind") or incident.get("id") or "incident")
        tags = [INCIDENT_TAG, f"incident:{incident.get('id', kind)}", kind]
        if incident.get("service"):
            tags.append(f"service:{incident['service']}")
        text = str(incident.get("description") or kind)
        out.append(_annotation(_edge(incident, "start"), _edge(incident, "end"), tags, text))
    if firings is not None and len(firings):
        for row in firings.itertuples(index=False):
            stop = row.resolved_at if not _missing(row.resolved_at) else end
            if stop is None:
                raise ConfigError("a firing is still open: pass end= (the window end)")
            tags = [INCIDENT_TAG, f"alert:{row.rule}"]
            explained = getattr(row, "incident", "")
            tags.append(f"incident:{explained}" if explained else "unexpected")
            text = f"{row.rule} fired ({row.series}): {getattr(row, 'summary', '')}".rstrip(": ")
            out.append(_annotation(to_ns(row.fired_at), to_ns(stop), tags, text))
    return sorted(out, key=lambda a: (a["time"], a["text"]))


def _annotation(start_ns: int, end_ns: int, tags: list[str], text: str) -> dict[str, Any]:
    return {
        "time": start_ns // 1_000_000,
        "timeEnd": end_ns // 1_000_000,
        "tags": tags,
        "text": text,
    }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value) == "NaT"


def _edge(incident: Mapping[str, Any], edge: str) -> int:
    value = incident.get(f"{edge}_ns") or incident.get(edge)
    if value is None:
        raise ConfigError(f"incident {incident.get('id', '?')} has no {edge} time")
    return to_ns(value)


def grafana_alert_rules(groups: Sequence[RuleGroup], folder: str = "opsbook") -> dict[str, Any]:
    """Grafana-managed alert provisioning (``apiVersion: 1``) for Loki ruler groups.

    Each rule's LogQL is one instant query on the Loki datasource; a threshold expression
    is not needed because the rule's expression already carries its comparison (a LogQL
    filter that returns a series only while the condition holds), so the alert fires on
    any returned series, as Loki's ruler does. The datasource uid is a placeholder
    (``${LOKI_DATASOURCE_UID}``) that Grafana's file provisioning expands from the env.
    """
    out_groups = []
    for group in groups:
        rules = []
        for rule in (r for r in group.rules if r.kind == "alert"):
            uid = f"opsbook-{rule.name}".lower()[:40]
            rules.append(
                {
                    "uid": uid,
                    "title": rule.name,
                    "condition": "A",
                    "data": [
                        {
                            "refId": "A",
                            "datasourceUid": "${LOKI_DATASOURCE_UID}",
                            "relativeTimeRange": {"from": 600, "to": 0},
                            "model": {"refId": "A", "expr": rule.expr, "queryType": "instant"},
                        }
                    ],
                    "for": rule.for_ or "0s",
                    "labels": dict(sorted(rule.labels.items())),
                    "annotations": dict(sorted(rule.annotations.items())),
                    "noDataState": "OK",
                    "execErrState": "Error",
                }
            )
        out_groups.append(
            {
                "orgId": 1,
                "name": group.name,
                "folder": folder,
                "interval": group.interval or "1m",
                "rules": rules,
            }
        )
    return {"apiVersion": 1, "groups": out_groups}


def export(
    out_dir: str | Path,
    *,
    rules: Sequence[RuleGroup] | None = None,
    incidents: Sequence[Mapping[str, Any]] = (),
    firings: Any = None,
    end: Any = None,
    dashboards: Sequence[ps.Dashboard] = ps.DASHBOARDS,
) -> dict[str, Path]:
    """Write the dashboards, incident annotations and alert files into ``out_dir``.

    ``incidents``/``firings``/``end``: see :func:`incident_annotations`.
    Returns ``{name: path}``: one ``<uid>.json`` per dashboard, ``incident-annotations.json``,
    and with ``rules`` the Loki ruler YAML (``loki-rules.yaml``) and Grafana-managed alert
    provisioning (``grafana-alert-rules.yaml``).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder", hint="pass --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for spec in dashboards:
        files[spec.uid] = _write(out / f"{spec.uid}.json", dashboard_json(spec))
    annotations = json.dumps(
        incident_annotations(incidents, firings, end), indent=2, sort_keys=True
    )
    files["incident-annotations"] = _write(out / "incident-annotations.json", annotations + "\n")
    if rules is not None:
        files["loki-rules"] = write_rules(
            list(rules), out / "loki-rules.yaml", header="Loki ruler rules (opsbook export)"
        )
        grafana = yaml.safe_dump(grafana_alert_rules(rules), sort_keys=False, width=1000)
        files["grafana-alert-rules"] = _write(out / "grafana-alert-rules.yaml", grafana)
    return files


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
