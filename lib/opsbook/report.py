"""HTML for people: per-step reports, a page per run, and the audit index.

Everything is static, self-contained HTML (images embedded as data URIs, no script or
stylesheet from the network) so a report opened from disk, mailed, or archived still
renders. The stakeholder report hides code (nbconvert ``exclude_input``); the full
report keeps it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import nbformat

from opsbook import audit
from opsbook.record import MIME_TYPE
from opsbook.runrecord import (
    ActionRecord,
    AnyRecord,
    AttachmentRecord,
    Origin,
    RunRecord,
    StepRecord,
    StepStatus,
)

STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "approved": "#1a7f37",
    "carried": "#57606a",
    "skipped": "#57606a",
    "failed": "#cf222e",
    "awaiting_approval": "#9a6700",
    "running": "#0969da",
}

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
 margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:1.6em;margin:.2em 0 .4em} h2{font-size:1.25em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} a{color:#0969da}
.banner{border-radius:8px;padding:14px 18px;margin:0 0 18px;color:#fff}
.banner h1{margin:0 0 6px;color:#fff} .banner a{color:#fff}
.banner table{background:rgba(255,255,255,.95);color:#1f2328}
.pill{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:.85em}
.muted{color:#57606a} code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:.85em}
img{max-width:100%} .output_subarea{margin:.3em 0}
.input_area{border-left:3px solid #0969da;margin:.8em 0 .2em}
.output_error pre,.output_stderr pre{background:#ffebe9}
.ansi-red-fg{color:#cf222e}.ansi-green-fg{color:#1a7f37}.ansi-yellow-fg{color:#9a6700}
.ansi-blue-fg{color:#0969da}.ansi-cyan-fg{color:#1b7c83}.ansi-bold{font-weight:bold}
.dataframe{font-size:.88em}
"""


def page(title: str, body: str, extra_css: str = "") -> str:
    """A complete, self-contained HTML page."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}{extra_css}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def pill(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#57606a")
    return f'<span class="pill" style="background:{colour}">{html.escape(status)}</span>'


def fmt_value(value: Any, limit: int = 160) -> str:
    """Short, escaped rendering of a recorded value for tables."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def kv_table(items: dict[str, Any], empty: str = "none") -> str:
    if not items:
        return f'<p class="muted">{empty}</p>'
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{fmt_value(v)}</td></tr>" for k, v in items.items()
    )
    return f"<table>{rows}</table>"


# ----------------------------------------------------------------------- step reports


def _strip_records(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop the machine-readable record payloads; their text/plain line stays."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(MIME_TYPE, None)
    return nb


def notebook_html(nb_path: Path, *, with_code: bool) -> str:
    """The notebook body as HTML (nbconvert basic template, images embedded)."""
    from nbconvert import HTMLExporter

    nb = _strip_records(nbformat.read(nb_path, as_version=4))
    exporter = HTMLExporter(
        template_name="basic",
        exclude_input=not with_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    return body


def _pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter().get_style_defs(".highlight")


def _status(status: StepStatus | None) -> str:
    return status.value if status is not None else "?"


def step_banner(entry: StepRecord, run: RunRecord, *, full_link: str) -> str:
    """Status, parameters and recorded results of one step, for the top of its report."""
    status = _status(entry.status)
    colour = STATUS_COLOURS.get(status, "#57606a")
    error = entry.error
    err_html = ""
    if error:
        err_html = (
            f"<p><b>Error:</b> {html.escape(str(error.ename))}: "
            f"{html.escape(str(error.evalue)[:500])}"
            + (f" (cell {error.cell_index})" if error.cell_index is not None else "")
            + "</p>"
        )
    duration = entry.duration_s
    return (
        f'<div class="banner" style="background:{colour}">'
        f"<h1>{html.escape(entry.title or entry.id)}: {html.escape(status)}</h1>"
        f"<div>Runbook <b>{html.escape(run.title)}</b>, run "
        f"<code>{html.escape(run.run_id)}</code>, by {html.escape(run.user)}"
        + (f", {duration:.1f} s" if isinstance(duration, int | float) else "")
        + f' &middot; <a href="../../index.html">run page</a> &middot; '
        f'<a href="{full_link}">report with code</a></div>{err_html}</div>'
        f"<h2>Recorded results</h2>{kv_table(entry.outputs, 'nothing recorded')}"
        f"<h2>Parameters</h2>{kv_table(entry.parameters)}"
        f"<h2>Notebook</h2>"
    )


def step_reports(nb_path: Path, entry: StepRecord, run: RunRecord) -> None:
    """Write ``report.html`` (no code) and ``full.html`` (with code) beside the notebook."""
    folder = nb_path.parent
    banner = step_banner(entry, run, full_link="full.html")
    title = f"{entry.title or entry.id} · {run.title}"
    (folder / "report.html").write_text(
        page(title, banner + notebook_html(nb_path, with_code=False)), encoding="utf-8"
    )
    full_banner = step_banner(entry, run, full_link="report.html").replace(
        "report with code", "report without code"
    )
    (folder / "full.html").write_text(
        page(
            title + " (full)", full_banner + notebook_html(nb_path, with_code=True), _pygments_css()
        ),
        encoding="utf-8",
    )


# --------------------------------------------------------------------------- run page


def _steps_table(record: RunRecord, prefix: str = "") -> str:
    rows = []
    for step in record.steps:
        links = []
        if step.report:
            links.append(f'<a href="{prefix}{step.report}">report</a>')
        if step.full_report:
            links.append(f'<a href="{prefix}{step.full_report}">with code</a>')
        if step.notebook and step.status != StepStatus.CARRIED:
            links.append(f'<a href="{prefix}{step.notebook}">notebook</a>')
        for action_id in step.actions:
            links.append(f'<a href="{prefix}../{html.escape(action_id)}/index.html">action</a>')
        note = step.reason or step.message or ""
        if step.error:
            note = step.error.short(200)
        if step.from_run:
            note = f"carried from {step.from_run}"
        duration = step.duration_s
        rows.append(
            f"<tr><td><b>{html.escape(step.id)}</b></td><td>{pill(_status(step.status))}"
            f"</td><td>{'' if duration is None else f'{duration:.1f} s'}</td>"
            f"<td>{html.escape(note)}</td>"
            f"<td>{kv_table(step.scalar_outputs(), '')}</td>"
            f"<td>{' · '.join(links)}</td></tr>"
        )
    return (
        "<table><tr><th>step</th><th>status</th><th>time</th><th>note</th>"
        "<th>key results</th><th>reports</th></tr>" + "".join(rows) + "</table>"
    )


def _scalars(outputs: dict[str, Any], limit: int = 8) -> dict[str, Any]:
    picked = {
        k: v
        for k, v in outputs.items()
        if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) < 60)
    }
    return dict(list(picked.items())[:limit])


def run_page(folder: Path, record: RunRecord) -> None:
    """Write ``index.html`` for one run: banner, steps with links, approvals, parameters."""
    status = record.status.value
    colour = STATUS_COLOURS.get(status, "#57606a")
    approvals = "".join(
        f"<tr><td>{html.escape(a.step)}</td><td>{html.escape(a.by)}</td>"
        f"<td>{html.escape(a.at)}</td><td>{html.escape(a.via)}</td></tr>"
        for a in record.approvals
    )
    env = record.environment
    runbook = record.runbook
    extra = ""
    summary_html = folder / "summary.html"
    if summary_html.exists():
        extra = '<p><a href="summary.html"><b>Executive summary</b></a></p>'
    body = (
        f'<div class="banner" style="background:{colour}"><h1>{html.escape(record.title)}'
        f": {html.escape(status)}</h1><div>run <code>{html.escape(record.run_id)}</code> by "
        f"{html.escape(record.user)}, {html.escape(str(record.started_at))} &rarr; "
        f"{html.escape(str(record.ended_at))}"
        + (f" ({record.duration_s:.1f} s)" if record.duration_s is not None else "")
        + (
            f"<br>resumed from <code>{html.escape(record.resumed_from)}</code>"
            if record.resumed_from
            else ""
        )
        + f' &middot; <a href="../index.html">all runs</a></div></div>{extra}'
        f"<p>{html.escape(runbook.description if runbook else '')}</p>"
        f"<h2>Steps</h2>{_steps_table(record)}"
        + (
            f"<h2>Approvals</h2><table><tr><th>gate</th><th>by</th><th>at</th><th>how</th></tr>"
            f"{approvals}</table>"
            if approvals
            else ""
        )
        + f"<h2>Parameters</h2>{kv_table(record.parameters)}"
        f"<h2>Environment</h2>{kv_table({'python': env.python, 'platform': env.platform, 'suite commit': env.suite_commit, **env.packages})}"
        f'<p class="muted">runbook sha256 {html.escape(str(runbook.sha256 if runbook else None))}; every '
        f"artifact's sha256 is in run.json and the ledger chains the records "
        f"(<code>opsbook verify</code>).</p>"
    )
    (folder / "index.html").write_text(
        page(f"{record.title} {record.run_id}", body), encoding="utf-8"
    )


# ------------------------------------------------------------------------ audit index


def _runs_chart(runs: list[AnyRecord]) -> str:
    """Duration of recent runs coloured by status, as an embedded PNG."""
    if not runs:
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    recent = runs[-30:]
    fig = Figure(figsize=(9, 2.6), dpi=100)
    ax = fig.subplots()
    xs = range(len(recent))
    ax.bar(
        xs,
        [r.duration_s or 0 for r in recent],
        color=[STATUS_COLOURS.get(r.status.value, "#57606a") for r in recent],
    )
    ax.set_xticks(list(xs), [r.title[:14] for r in recent], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("duration (s)")
    ax.set_title("Recent runs (green succeeded, red failed, amber awaiting approval)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<img id="runs-chart" alt="durations of recent runs" src="data:image/png;base64,{data}">'
    )


def _index_links(root: Path, record: AnyRecord) -> list[str]:
    run_id = html.escape(record.run_id)
    if record.remote:  # sealed on another machine: its folder is there
        return [f"record on {html.escape(str(record.remote))}"]
    if isinstance(record, ActionRecord):
        return [f'<a href="{run_id}/index.html">action</a>']
    if isinstance(record, AttachmentRecord):
        return [f'<a href="{run_id}/report.html">notebook</a>'] + [
            f'<a href="{html.escape(a)}/index.html">{html.escape(a[:24])}…</a>'
            for a in record.actions
        ]
    links = [f'<a href="{run_id}/index.html">run page</a>']
    if (root / record.run_id / "summary.html").exists():
        links.insert(0, f'<a href="{run_id}/summary.html">summary</a>')
    steps = record.steps if isinstance(record, RunRecord) else []
    for step in steps:
        if step.report and step.status != StepStatus.CARRIED:
            links.append(f'<a href="{run_id}/{step.report}">{html.escape(step.id)}</a>')
    return links


def _key_results(record: AnyRecord) -> dict[str, Any]:
    if isinstance(record, ActionRecord):
        return _scalars(record.summary, 6)
    return record.key_results()  # a remote record: from its entry


def _seal_cells(root: Path) -> dict[str, str]:
    """Per record: ``signed`` (the key's fingerprint on hover) or ``unsigned``.

    What the ledger entry claims; only ``opsbook verify`` checks the signature."""
    cells = {}
    for entry in audit.read_ledger(root):
        if "_unreadable" in entry or "run_id" not in entry:
            continue
        key = entry.get("key")
        if entry.get("signature") and key not in (None, audit.UNSIGNED):
            cells[entry["run_id"]] = f'<span title="{html.escape(str(key))}">signed</span>'
        else:
            cells[entry["run_id"]] = "unsigned"
    return cells


def audit_index(root: Path) -> Path:
    """Write ``<root>/index.html``: every run with status, duration, key results, links."""
    runs = audit.team_records(root)
    sealed = _seal_cells(root)
    rows = []
    for record in reversed(runs):
        run_id = record.run_id
        links = _index_links(root, record)
        duration = record.duration_s
        kind = html.escape(record.kind.value)
        rows.append(
            f'<tr class="{kind}"><td><code>{html.escape(run_id)}'
            f"</code></td><td>{kind}</td>"
            f"<td>{html.escape(record.title)}</td><td>{pill(record.status.value)}"
            f"</td><td>{html.escape(str(record.started_at or '')[:19])}</td>"
            f"<td>{'' if duration is None else f'{duration:.1f} s'}</td>"
            f"<td>{kv_table(_key_results(record), '')}</td>"
            f"<td>{sealed.get(run_id, 'not sealed')}</td><td>{' · '.join(links)}</td></tr>"
        )
    table = (
        (
            '<table id="runs"><tr><th>record</th><th>kind</th><th>runbook or action</th>'
            "<th>status</th><th>started "
            "(UTC)</th><th>duration</th><th>key results</th><th>sealed</th><th>reports</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        if rows
        else "<p>No runs yet.</p>"
    )
    body = (
        f'<h1>opsbook audit trail</h1><p class="muted">{len(runs)} run(s) under '
        f"{html.escape(str(root))}. Each record is write-once, hash-chained and, with a "
        f"signing key, signed; check it with <code>opsbook verify --require-signed</code>.</p>{_runs_chart(runs)}{table}"
    )
    out = root / "index.html"
    tmp = root / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(page("opsbook audit trail", body), encoding="utf-8")
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- action records


def _origin_text(origin: Origin) -> str:
    kind = origin.kind or "?"
    if kind == "runner":
        return f"runner: run {origin.run_id}, step {origin.step}"
    if kind == "kernel":
        return f"interactive kernel {origin.kernel_id}, notebook {origin.notebook}"
    return f"{kind}: {' '.join(origin.argv or [])}"


def action_page(folder: Path, record: ActionRecord) -> None:
    """Write ``index.html`` for one action record: who changed what, where from, approval."""
    status = record.status.value
    colour = STATUS_COLOURS.get(status, "#57606a")
    origin = record.origin
    run_link = ""
    if origin.kind == "runner":
        run_link = f' &middot; <a href="../{html.escape(str(origin.run_id))}/index.html">run</a>'
    error = record.error
    body = (
        f'<div class="banner" style="background:{colour}"><h1>{html.escape(record.action)}: '
        f"{html.escape(status)}</h1><div>action <code>{html.escape(record.run_id)}</code> by "
        f"{html.escape(record.user)} at {html.escape(str(record.started_at))} on "
        f"{html.escape(record.target or '?')}{run_link} &middot; "
        f'<a href="../index.html">audit trail</a></div>'
        + (
            f"<p><b>Error:</b> {html.escape(str(error.ename))}: "
            f"{html.escape(str(error.evalue)[:500])}</p>"
            if error
            else ""
        )
        + "</div>"
        f"<h2>What changed</h2>{kv_table(record.summary, 'nothing')}"
        f"<h2>Where from</h2><p>{html.escape(_origin_text(origin))}</p>"
        f"<h2>Approval</h2>{kv_table(record.approval or {}, 'none' + (' (not production)' if not record.production else ''))}"
        f"<h2>Parameters</h2>{kv_table(record.parameters)}"
        f'<p class="muted">Sealed like every record: <code>opsbook verify</code>.</p>'
    )
    (folder / "index.html").write_text(
        page(f"{record.action} {record.run_id}", body), encoding="utf-8"
    )


def attachment_pages(folder: Path, record: AttachmentRecord) -> None:
    """``report.html`` (no code) and ``full.html`` for a notebook attached to actions."""
    links = " &middot; ".join(
        f'<a href="../{html.escape(a)}/index.html"><code>{html.escape(a)}</code></a>'
        for a in record.actions
    )
    nb_path = folder / "notebook.ipynb"
    for name, with_code in (("report.html", False), ("full.html", True)):
        other = "full.html" if not with_code else "report.html"
        banner = (
            f'<div class="banner" style="background:#0969da"><h1>Notebook '
            f"{html.escape(record.notebook.name)}</h1><div>attached by "
            f"{html.escape(record.user)} at {html.escape(str(record.started_at))} to {links}"
            f' &middot; <a href="{other}">report {"with" if other == "full.html" else "without"} '
            f'code</a> &middot; <a href="../index.html">audit trail</a></div></div>'
        )
        (folder / name).write_text(
            page(
                f"{record.notebook.name} (attached)",
                banner + notebook_html(nb_path, with_code=with_code),
                _pygments_css() if with_code else "",
            ),
            encoding="utf-8",
        )
