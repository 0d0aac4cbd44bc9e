"""``opsbook loki ...``: export a range from a live Loki, generate the demo logs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import orjson

from opsbook.clikit import OpsbookGroup
from opsbook.errors import ConfigError, ExitCode
from opsbook.loki.http import LokiHTTP, is_log_query
from opsbook.loki.source import resolve_window
from opsbook.loki.timeutil import ns_to_rfc3339

cli = OpsbookGroup(
    name="loki",
    help="Loki: export logs, validate and backtest alert rules, generate demo logs.",
)


def export_logs(
    client: LokiHTTP,
    query: str,
    start: Any,
    end: Any,
    output: str | Path,
    *,
    limit: int | None = None,
    progress: Any = None,
) -> int:
    """Write every entry of a log query in ``[start, end)`` to ``output``, oldest first.

    The file is JSONL in logcli's ``--output=jsonl`` shape
    (``{"labels": {...}, "line": "...", "timestamp": "<RFC3339 ns>"}``) plus, for entries
    that carry it, ``"structuredMetadata": {...}`` (Loki 3.x, kept apart from the stream
    labels), which ``LocalLogs`` reads back as structured metadata. It is written to a temporary name and renamed at the end, so a
    failed export leaves no partial file. Returns the number of entries.
    """
    if not is_log_query(query):
        raise ConfigError(
            f"{query!r} is not a log query",
            hint='export a stream selector with an optional pipeline, e.g. {env="prod"}',
        )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    count = 0
    try:
        with open(tmp, "wb") as out:
            for labels, ts, line, meta in client.iter_records(query, start, end, "forward", limit):
                record: dict[str, Any] = {
                    "labels": labels,
                    "line": line,
                    "timestamp": ns_to_rfc3339(ts),
                }
                if meta:
                    record["structuredMetadata"] = meta
                out.write(orjson.dumps(record))
                out.write(b"\n")
                count += 1
                if progress is not None:
                    progress(1)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return count


@cli.command("export")
@click.option("--url", "loki_url", required=True, help="Loki base URL, e.g. http://loki:3100")
@click.option("--query", "-q", required=True, help='Log query, e.g. {env="prod"}')
@click.option("--start", default="", help="RFC3339 / epoch; default: 6 hours before --end")
@click.option("--end", default="", help="RFC3339 / epoch; default: now")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False))
@click.option("--tenant", default="", help="X-Scope-OrgID tenant")
@click.option("--auth-env", default="", help="NAME of the env var holding user:password or a token")
@click.option("--limit", type=int, default=None, help="stop after this many entries")
@click.option("--page-limit", type=int, default=5000, help="entries per request (Loki max 5000)")
def export_command(
    loki_url: str,
    query: str,
    start: str,
    end: str,
    output: str,
    tenant: str,
    auth_env: str,
    limit: int | None,
    page_limit: int,
) -> None:
    """Pull a time range from a live Loki into a JSONL file for offline analysis.

    \b
    Example:
      opsbook loki export --url http://loki:3100 -q '{env="prod"}' \\
        --start 2026-11-28T00:00:00Z --end 2026-11-29T00:00:00Z -o prod-2026-11-28.jsonl
    """
    from tqdm import tqdm

    start_ns, end_ns = resolve_window(start, end)
    client = LokiHTTP(loki_url, tenant=tenant, auth_env=auth_env, page_limit=page_limit)
    with tqdm(unit=" lines", disable=None) as bar:
        count = export_logs(
            client, query, start_ns, end_ns, output, limit=limit, progress=bar.update
        )
    click.echo(
        f"wrote {count} entries ({ns_to_rfc3339(start_ns)} .. {ns_to_rfc3339(end_ns)}) to {output}"
    )


@cli.command("simulate")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False))
@click.option("--start", default="2026-11-28T00:00:00Z", help="first timestamp (RFC3339)")
@click.option("--hours", type=float, default=24.0, help="length of the simulated window")
@click.option("--seed", type=int, default=0, help="random seed (same seed, same file)")
@click.option("--scale", type=float, default=1.0, help="traffic multiplier (1.0 ≈ 80k lines/day)")
@click.option("--no-incidents", is_flag=True, help="a quiet baseline without incidents")
def simulate_command(
    output: str, start: str, hours: float, seed: int, scale: float, no_incidents: bool
) -> None:
    """Generate demo logs for backend-ts, backend-rag, qdrant and redis, plus ground truth.

    \b
    Example:
      opsbook loki simulate -o demo/logs.jsonl --hours 24 --seed 0
    """
    from opsbook.loki.simulate import simulate

    result = simulate(
        output, start, hours=hours, seed=seed, incidents=not no_incidents, scale=scale
    )
    click.echo(
        json.dumps(
            {
                "path": str(result.path),
                "ground_truth": str(result.ground_truth_path),
                "lines": result.lines,
                "incidents": [i["id"] for i in result.incidents],
            }
        )
    )


@cli.command("check-rules")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def check_rules_command(paths: tuple[str, ...]) -> None:
    """Validate Loki ruler YAML files (structure, durations, labels, LogQL exprs).

    \b
    Example:
      opsbook loki check-rules runbooks/alerts/*.yaml
    """
    from opsbook.loki.rules import load_rules

    for path in paths:
        groups = load_rules(path)
        count = sum(len(g.rules) for g in groups)
        click.echo(f"ok {path}: {len(groups)} group(s), {count} rule(s)")


@cli.command("backtest")
@click.argument("rules_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", "loki_url", default="", help="Loki base URL (or use --logs)")
@click.option("--logs", "log_paths", multiple=True, help="exported log file/folder/glob")
@click.option("--start", default="", help="RFC3339 / epoch; default: start of the data")
@click.option("--end", default="", help="RFC3339 / epoch; default: end of the data")
@click.option("--tenant", default="", help="X-Scope-OrgID tenant")
@click.option("--auth-env", default="", help="NAME of the env var with Loki credentials")
@click.option("--incidents", "incidents_path", default="", help="known incidents JSON")
@click.option("--tuned-out", default="", help="also sweep thresholds and write tuned rules here")
@click.option("--max-firings-per-day", type=float, default=1.0, help="noise budget for tuning")
def backtest_command(
    rules_path: str,
    loki_url: str,
    log_paths: tuple[str, ...],
    start: str,
    end: str,
    tenant: str,
    auth_env: str,
    incidents_path: str,
    tuned_out: str,
    max_firings_per_day: float,
) -> None:
    """Replay alert rules like Loki's ruler; print firings per rule (JSON).

    Exits 1 when a known incident was not detected.

    \b
    Example:
      opsbook loki backtest runbooks/alerts/p0-alerts.yaml --logs prod-2026-11-28.jsonl
    """
    from opsbook.loki.backtest import (
        backtest,
        detection_summary,
        match_incidents,
        tune,
        tuned_thresholds,
    )
    from opsbook.loki.rules import load_rules, write_rules
    from opsbook.loki.source import open_analysis

    if not loki_url and not log_paths:
        raise ConfigError("give --url or --logs", hint="backtest needs logs to replay")
    analysis = open_analysis(
        loki_url=loki_url,
        log_paths=list(log_paths),
        start=start,
        end=end,
        tenant=tenant,
        auth_env=auth_env,
        incidents_path=incidents_path,
    )
    groups = load_rules(rules_path)
    result = backtest(analysis.source, groups, analysis.start_ns, analysis.end_ns)
    detection = detection_summary(match_incidents(result, analysis.incidents))
    report: dict[str, Any] = {
        "window": list(analysis.window),
        "firings": result.counts(),
        "incidents": len(analysis.incidents),
        **detection,
    }
    if tuned_out:
        tuned, summary, _ = tune(
            analysis.source,
            groups,
            analysis.start_ns,
            analysis.end_ns,
            incidents=analysis.incidents or None,
            max_firings_per_day=max_firings_per_day,
        )
        write_rules(tuned, tuned_out, header=f"tuned over {' .. '.join(analysis.window)}")
        report["tuned"] = tuned_thresholds(summary)
    click.echo(json.dumps(report, indent=2))
    if report["missed"]:
        raise click.exceptions.Exit(ExitCode.FAILED)


@cli.group("dashboards", cls=OpsbookGroup)
def dashboards_group() -> None:
    """The four P0 Grafana dashboards, built from the panels the notebook draws."""


@dashboards_group.command("export")
@click.option("--out", "out_dir", required=True, help="folder to write the JSON and YAML into")
@click.option(
    "--rules",
    "rules_path",
    default="runbooks/alerts/p0-alerts.yaml",
    show_default=True,
    help="Loki ruler YAML to export beside the dashboards (empty: none)",
)
@click.option("--logs", "log_paths", multiple=True, help="logs to backtest for annotations")
@click.option("--url", "loki_url", default="", help="or a Loki base URL to backtest against")
@click.option("--start", default="", help="RFC3339 / epoch; default: start of the data")
@click.option("--end", default="", help="RFC3339 / epoch; default: end of the data")
@click.option("--incidents", "incidents_path", default="", help="known incidents JSON")
@click.option("--auth-env", default="", help="NAME of the env var with Loki credentials")
def dashboards_export_command(
    out_dir: str,
    rules_path: str,
    log_paths: tuple[str, ...],
    loki_url: str,
    start: str,
    end: str,
    incidents_path: str,
    auth_env: str,
) -> None:
    """Write the dashboards as Grafana JSON, the alert rules, and incident annotations.

    With --logs or --url the rules are backtested and every firing (and known incident)
    becomes a Grafana annotation in incident-annotations.json. Import the dashboards with
    Grafana's "Import dashboard" page or its provisioning folder.

    \b
    Example:
      opsbook loki dashboards export --out grafana/ --logs prod-2026-11-28.jsonl
    """
    from opsbook.loki import grafana
    from opsbook.loki.backtest import backtest, explain_firings
    from opsbook.loki.rules import load_rules
    from opsbook.loki.source import open_analysis
    from opsbook.paths import resolve

    groups = load_rules(resolve(rules_path)) if rules_path else None
    incidents: list[dict[str, Any]] = []
    firings = None
    end_ns = None
    if loki_url or log_paths:
        analysis = open_analysis(
            loki_url=loki_url,
            log_paths=list(log_paths),
            start=start,
            end=end,
            auth_env=auth_env,
            incidents_path=incidents_path,
        )
        incidents, end_ns = list(analysis.incidents), analysis.end_ns
        if groups is not None:
            result = backtest(analysis.source, groups, analysis.start_ns, analysis.end_ns)
            firings = explain_firings(result, incidents)
    elif incidents_path:
        from opsbook.loki.simulate import load_ground_truth

        incidents = load_ground_truth(resolve(incidents_path))["incidents"]
    files = grafana.export(out_dir, rules=groups, incidents=incidents, firings=firings, end=end_ns)
    for name, path in files.items():
        click.echo(f"{name}: {path}")
