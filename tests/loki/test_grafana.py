"""Grafana export: the JSON holds the notebook's own queries, loads back, and is stable."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from grafana_foundation_sdk.models import dashboard as gm

from opsbook.loki import dashboards, grafana
from opsbook.loki import panels as ps
from opsbook.loki.backtest import backtest, explain_firings
from opsbook.loki.cli import cli
from opsbook.loki.local import LocalLogs
from opsbook.loki.logql import parse
from opsbook.loki.rules import load_rules
from opsbook.loki.source import instant_frame, metric_frame

from .conftest import rules_path

SERVICES = ["backend-ts", "backend-rag", "qdrant", "redis"]
EXPECTED = {
    "opsbook-system-health": (
        "System Health",
        ["stat", "timeseries", "timeseries", "timeseries", "timeseries"],
        ["short", "reqps", "short", "reqps", "ms"],
    ),
    "opsbook-ai-models": (
        "AI Models Performance",
        ["timeseries"] * 3,
        ["currencyUSD", "ms", "short"],
    ),
    "opsbook-database": ("Database Metrics", ["timeseries"] * 2, ["short", "short"]),
    "opsbook-cost-tracking": (
        "Cost Tracking",
        ["barchart", "stat"],
        ["currencyUSD", "currencyUSD"],
    ),
}


@pytest.fixture(scope="module")
def logs(sim_day):
    return LocalLogs([sim_day.path])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sim_day, logs):
    out = tmp_path_factory.mktemp("grafana")
    groups = load_rules(rules_path())
    result = backtest(logs, groups, sim_day.start_ns, sim_day.end_ns)
    firings = explain_firings(result, sim_day.incidents)
    files = grafana.export(
        out, rules=groups, incidents=sim_day.incidents, firings=firings, end=sim_day.end_ns
    )
    return out, files, firings


def _rows(sim_day):
    with open(sim_day.path, "rb") as fh:
        return [json.loads(line) for line in fh]


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _grafana_substitute(expr: str, window: str) -> str:
    """What Grafana sends to Loki with every variable at "All" (written apart from bind())."""
    out = expr.replace("[$__auto]", f"[{window}]")
    out = out.replace('=~"$service"', '=~".+"').replace('=~"$env"', '=~".*"')
    assert "$" not in out, out
    return out


def _targets(path):
    return [(panel, target) for panel in _json(path)["panels"] for target in panel["targets"]]


# ------------------------------------------------------------------ structure


def test_four_dashboards_with_their_panels_units_and_variables(exported):
    _, files, _ = exported
    assert sorted(k for k in files if k.startswith("opsbook-")) == sorted(EXPECTED)
    for uid, (title, kinds, units) in EXPECTED.items():
        data = _json(files[uid])
        assert data["uid"] == uid and data["title"] == title
        assert [p["type"] for p in data["panels"]] == kinds
        assert [p["fieldConfig"]["defaults"]["unit"] for p in data["panels"]] == units
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert list(variables) == ["datasource", "service", "env"]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "loki"
        assert variables["service"]["multi"] and variables["service"]["includeAll"]
        assert variables["service"]["allValue"] == ".+"
        for panel in data["panels"]:
            assert panel["datasource"] == {"type": "loki", "uid": "${datasource}"}
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert data["annotations"]["list"][0]["target"]["tags"] == [grafana.INCIDENT_TAG]


def test_dashboards_load_back_through_the_sdk_model(exported):
    _, files, _ = exported
    for uid, (title, kinds, units) in EXPECTED.items():
        model = gm.Dashboard.from_json(_json(files[uid]))
        assert model.title == title
        assert [p.type_val for p in model.panels] == kinds
        assert [p.field_config.defaults.unit for p in model.panels] == units
        assert [v.name for v in model.templating.list_val] == ["datasource", "service", "env"]
        assert model.to_json()["uid"] == uid


def test_panels_do_not_overlap_in_the_grid(exported):
    _, files, _ = exported
    for uid in EXPECTED:
        cells = set()
        for panel in _json(files[uid])["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24
            mine = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & mine, f"{panel['title']} overlaps another panel"
            cells |= mine


def test_export_is_byte_identical_on_a_second_run(exported, tmp_path, sim_day):
    out, files, firings = exported
    again = grafana.export(
        tmp_path,
        rules=load_rules(rules_path()),
        incidents=sim_day.incidents,
        firings=firings,
        end=sim_day.end_ns,
    )
    assert sorted(p.name for p in again.values()) == sorted(p.name for p in files.values())
    for name, path in files.items():
        assert again[name].read_bytes() == path.read_bytes(), name


# ------------------------------------------------------------------ queries


def test_every_exported_query_parses_with_our_parser(exported):
    _, files, _ = exported
    count = 0
    for uid in EXPECTED:
        for _, target in _targets(files[uid]):
            parse(_grafana_substitute(target["expr"], "5m"))
            count += 1
    assert count == sum(len(p.targets) for _, p in ps.panels())


@pytest.mark.parametrize(
    ("uid", "title", "frame"),
    [
        ("opsbook-system-health", "Requests per second", "traffic"),
        ("opsbook-system-health", "Error lines per minute", "errors"),
        ("opsbook-system-health", "Request latency P50 / P95 / P99", "latency"),
        ("opsbook-ai-models", "AI spend per model", "ai_cost"),
        ("opsbook-ai-models", "Model call latency P95", "ai_latency"),
        ("opsbook-database", "Vector DB error lines", "vector"),
        ("opsbook-database", "Redis warnings and errors", "redis"),
    ],
)
def test_exported_panel_gives_the_series_the_notebook_draws(
    exported, logs, sim_day, uid, title, frame
):
    """Run the JSON's own text through LocalLogs and compare with the notebook's frame."""
    _, files, _ = exported
    start, end, step = sim_day.start_ns, sim_day.end_ns, "5m"
    panel = next(p for p in _json(files[uid])["panels"] if p["title"] == title)
    window = "5m"  # step 5m; latency panels have a 5m minimum interval as well
    assert panel.get("interval") in (None, "5m")
    got = pd.concat(
        [
            metric_frame(logs, _grafana_substitute(t["expr"], window), start, end, step)
            for t in panel["targets"]
        ],
        ignore_index=True,
    )
    notebook = {
        "traffic": lambda: dashboards.traffic_frame(logs, SERVICES, start, end, step),
        "errors": lambda: dashboards.errors_frame(logs, SERVICES, start, end, step),
        "latency": lambda: dashboards.latency_frame(logs, SERVICES, start, end, step),
        "ai_cost": lambda: dashboards.ai_cost_frame(logs, start, end, step),
        "ai_latency": lambda: dashboards.ai_latency_frame(logs, start, end, step),
        "vector": lambda: dashboards.infra_errors_frame(logs, start, end, step).query(
            "panel == 'vector DB errors'"
        ),
        "redis": lambda: dashboards.infra_errors_frame(logs, start, end, step).query(
            "panel == 'redis'"
        ),
    }[frame]()
    assert not got.empty
    drawn = notebook[notebook["value"] != 0] if frame not in ("latency", "ai_latency") else notebook
    key = ["series", "timestamp"]
    left = got.sort_values(key).reset_index(drop=True)
    right = drawn.sort_values(key).reset_index(drop=True)
    assert list(left["series"]) == list(right["series"])
    assert list(left["timestamp"]) == list(right["timestamp"])
    assert np.allclose(left["value"], right["value"], rtol=1e-9, equal_nan=True)


def test_stat_panels_answer_with_hand_counted_values(exported, logs, sim_day):
    _, files, _ = exported
    status = next(p for p in _json(files["opsbook-system-health"])["panels"] if p["type"] == "stat")
    expr = _grafana_substitute(status["targets"][0]["expr"], "5m")
    frame = instant_frame(logs, expr, sim_day.end_ns).set_index("service")["value"]
    rows = _rows(sim_day)
    lo = sim_day.end_ns - 120 * 10**9
    for service in SERVICES:
        want = sum(
            1
            for r in rows
            if r["labels"].get("service") == service and lo < r["ts"] <= sim_day.end_ns
        )
        assert frame.get(service, 0.0) == want


def test_daily_spend_panel_equals_the_notebooks_daily_table(logs, sim_day):
    panel = ps.panel_by_key("cost_tracking", "daily_spend")
    preview = dashboards.preview_frame(logs, panel, sim_day.start_ns, sim_day.end_ns, "5m", None)
    table = dashboards.ai_cost_per_day(
        dashboards.ai_cost_frame(logs, sim_day.start_ns, sim_day.end_ns, "5m")
    )
    day = (preview["timestamp"] - pd.Timedelta(1, "ns")).dt.strftime("%Y-%m-%d")
    got = {(d, m): v for d, m, v in zip(day, preview["model"], preview["value"], strict=True) if v}
    want = {
        (d, m): v for d, m, v in zip(table["day"], table["model"], table["cost_usd"], strict=True)
    }
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9)


def test_no_panel_queries_a_label_the_simulated_logs_lack(logs, sim_day):
    stream_labels = set(logs.labels())
    rows = _rows(sim_day)
    parsed: set[str] = set()
    for r in rows[:20000]:
        line = r["line"]
        if line.startswith("{"):
            parsed |= set(json.loads(line))
        else:
            parsed |= {m for m in re.findall(r"(\w+)=", line)}
    for dashboard, panel in ps.panels():
        for target in panel.targets:
            selector_labels = set()
            for selector in re.findall(r"\{[^{}]*\}", target.expr):
                selector_labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
            assert selector_labels <= stream_labels, (dashboard.uid, panel.key, selector_labels)
            assert panel.labels() <= stream_labels | parsed, (dashboard.uid, panel.key)
        frame = dashboards.preview_frame(logs, panel, sim_day.start_ns, sim_day.end_ns, "5m", None)
        assert not frame.empty, f"{dashboard.uid}/{panel.key} shows no data on the simulated day"


# ------------------------------------------------------------------ variables


@pytest.mark.parametrize(
    ("expr", "kwargs", "expected"),
    [
        ('{service=~"$service"}[$__auto]', {"window": "1m"}, '{service=~".+"}[1m]'),
        ('{env=~"$env"}', {"window": "1m"}, '{env=~".*"}'),
        ('{service=~"$service"}', {"window": "1m", "services": ["a", "b"]}, '{service=~"(a|b)"}'),
        (
            '{service=~"${service}"}',
            {"window": "1m", "services": ["a.b"]},
            '{service=~"(a\\\\.b)"}',
        ),
        ("[$__interval] [$__range]", {"window": "2h"}, "[2h] [2h]"),
        ('{env=~"$env"}', {"window": "1m", "envs": ["prod"]}, '{env=~"(prod)"}'),
    ],
)
def test_bind_replaces_variables_as_grafana_does(expr, kwargs, expected):
    assert ps.bind(expr, **kwargs) == expected


def test_bind_refuses_an_unknown_variable():
    with pytest.raises(Exception, match=r"unknown dashboard variable \$cluster"):
        ps.bind('{cluster=~"$cluster"}', window="1m")


def test_selecting_a_service_narrows_every_panel(logs, sim_day):
    only = dashboards.traffic_frame(logs, ["backend-rag"], sim_day.start_ns, sim_day.end_ns, "5m")
    assert set(only["service"]) == {"backend-rag"}


# ------------------------------------------------------------------ alerts and annotations


def test_alert_files_hold_every_rule(exported):
    _, files, _ = exported
    groups = load_rules(rules_path())
    names = [r.name for g in groups for r in g.rules]
    assert len(names) == 5
    assert [r.name for g in load_rules(files["loki-rules"]) for r in g.rules] == names
    provisioning = yaml.safe_load(files["grafana-alert-rules"].read_text())
    assert provisioning["apiVersion"] == 1
    rules = [r for g in provisioning["groups"] for r in g["rules"]]
    assert [r["title"] for r in rules] == names
    by_name = {r.name: r for g in groups for r in g.rules}
    for rule in rules:
        assert rule["data"][0]["model"]["expr"] == by_name[rule["title"]].expr
        assert rule["for"] == by_name[rule["title"]].for_


def test_annotations_cover_every_incident_and_firing(exported, sim_day):
    _, files, firings = exported
    notes = _json(files["incident-annotations"])
    assert len(notes) == len(sim_day.incidents) + len(firings)
    assert all(grafana.INCIDENT_TAG in n["tags"] and n["time"] <= n["timeEnd"] for n in notes)
    incident_ids = {f"incident:{i['id']}" for i in sim_day.incidents}
    assert incident_ids <= {t for n in notes for t in n["tags"]}
    first = min(sim_day.incidents, key=lambda i: i["start_ns"])
    assert any(n["time"] == first["start_ns"] // 10**6 for n in notes)


def test_cli_export_writes_the_files(tmp_path, sim_day):
    result = CliRunner().invoke(
        cli,
        [
            "dashboards",
            "export",
            "--out",
            str(tmp_path / "g"),
            "--rules",
            str(rules_path()),
            "--logs",
            str(sim_day.path),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == sorted(
        [f"{uid}.json" for uid in EXPECTED]
        + ["incident-annotations.json", "loki-rules.yaml", "grafana-alert-rules.yaml"]
    )
    assert json.loads((tmp_path / "g" / "incident-annotations.json").read_text())


def test_cli_export_refuses_a_file_as_out(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(cli, ["dashboards", "export", "--out", str(target), "--rules", ""])
    assert result.exit_code == 2
    assert "not a folder" in result.output
    assert target.read_text() == "x"


def test_dashboard_figure_draws_one_axis_per_panel(logs, sim_day):
    for spec in ps.DASHBOARDS:
        fig = dashboards.dashboard_figure(
            logs, spec, sim_day.start_ns, sim_day.end_ns, "5m", sim_day.incidents
        )
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in visible] == [p.title for p in spec.panels]
