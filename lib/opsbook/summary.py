"""Executive summaries: one page per run, no code, for people who read one page.

A runbook may declare a ``summary:`` with sections; each section belongs to a step
(its report is linked) and lists labelled values rendered from the steps' recorded
outputs. A value whose step did not run reads "not run" instead of failing the page.

.. code-block:: yaml

    summary:
      title: P0 platform hardening
      sections:
        - heading: Vector store migration
          step: migrate
          ok: "{{ steps.migrate.outputs.integrity_ok }}"
          items:
            - {label: Records moved, value: "{{ steps.migrate.outputs.total_records }}"}
"""

from __future__ import annotations

import base64
import html
import io
import urllib.parse
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsbook.report import STATUS_COLOURS, fmt_value, page, pill
from opsbook.runbook import Summary, SummarySection, evaluate_condition
from opsbook.runrecord import RunRecord, template_context

_TEXT_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_TEXT_ENV.filters["bytes"] = lambda n: _human_bytes(n)
_TEXT_ENV.filters["pct"] = lambda x: f"{100 * float(x):.1f}%"
_TEXT_ENV.filters["usd"] = lambda x: f"${float(x):,.2f}"
_TEXT_ENV.filters["total"] = lambda x: _total(x)
_TEXT_ENV.filters["kv"] = lambda x: _kv(x)


def _total(value: Any) -> float | int:
    """Sum every number inside nested dicts and lists (bools excluded)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return sum(_total(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_total(v) for v in value)
    return 0


def _kv(value: Any) -> str:
    """``{"a": 1, "b": 2}`` as ``a: 1, b: 2`` (numbers shortened)."""
    if not isinstance(value, dict):
        return str(value)
    parts = []
    for key, item in value.items():
        shown = f"{item:.4g}" if isinstance(item, float) else str(item)
        parts.append(f"{key}: {shown}")
    return ", ".join(parts) or "none"


EXTRA_CSS = """
.section{border:1px solid #d0d7de;border-radius:8px;padding:12px 18px;margin:14px 0}
.section h2{margin:.1em 0 .5em;display:flex;gap:10px;align-items:center}
.verdict{font-size:.8em;border-radius:10px;padding:2px 10px;color:#fff}
.big{font-size:1.05em} td.v{font-weight:600}
"""


def _human_bytes(n: Any) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def context(record: RunRecord, folder: Path | None = None) -> dict[str, Any]:
    """The templates' context: the runner's (:func:`opsbook.runrecord.template_context`)."""
    return template_context(record, folder=folder)


def _text(template: str, ctx: dict[str, Any]) -> str | None:
    try:
        return _TEXT_ENV.from_string(template).render(**ctx)
    except (TemplateError, TypeError, ValueError, ZeroDivisionError):
        return None


def _native(template: str, ctx: dict[str, Any]) -> Any:
    from opsbook.runbook import render

    try:
        return render(template, ctx)
    except Exception:
        return None


def _verdict(expr: str | None, ctx: dict[str, Any]) -> bool | None:
    if not expr:
        return None
    try:
        return evaluate_condition(expr, ctx)
    except Exception:
        return None


def _badge(ok: bool | None) -> str:
    if ok is None:
        return ""
    colour = STATUS_COLOURS["succeeded" if ok else "failed"]
    return f'<span class="verdict" style="background:{colour}">{"PASS" if ok else "FAIL"}</span>'


def _table(rows: Any, columns: list[str] | None = None) -> str:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return '<p class="muted">not available</p>'
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return _badge(value)
    return fmt_value(value, 120)


def _section(section: SummarySection, record: RunRecord, ctx: dict[str, Any]) -> str:
    step = next((s for s in record.steps if s.id == section.step), None)
    status = (step.status.value if step.status else "?") if step else "not run"
    ran = bool(step) and step.ran
    link = ""
    if step and step.report:
        link = f'<a href="{step.report}">step report &rarr;</a>'
    elif step and step.from_run:
        link = f'<a href="../{step.from_run}/{step.report or "index.html"}">step report (earlier run) &rarr;</a>'
    rows = []
    for item in section.items:
        if item.table:
            rows.append(
                f'<tr><th colspan="2">{html.escape(item.label)}</th></tr>'
                f'<tr><td colspan="2">{_table(_native(item.table, ctx), item.columns)}</td></tr>'
            )
            continue
        value = _text(item.value, ctx) if (item.value and ran) else None
        shown = (
            html.escape(value) if value not in (None, "") else '<span class="muted">not run</span>'
        )
        if item.link and value not in (None, ""):
            target = urllib.parse.quote(f"steps/{section.step}/{item.link}")
            shown = f'<a href="{html.escape(target)}">{shown}</a>'
        rows.append(
            f'<tr><td>{html.escape(item.label)}</td><td class="v">{shown} '
            f"{_badge(_verdict(item.ok, ctx) if ran else None)}</td></tr>"
        )
    text = _text(section.text, ctx) if section.text and ran else ""
    verdict = _verdict(section.ok, ctx) if ran else None
    return (
        f'<div class="section" id="{html.escape(section.step)}"><h2>'
        f"{html.escape(section.heading)} {_badge(verdict)} {pill(status)}</h2>"
        + (f'<p class="big">{html.escape(text or "")}</p>' if text else "")
        + f"<table>{''.join(rows)}</table><p>{link}</p></div>"
    )


def _overview_chart(summary: Summary, record: RunRecord, ctx: dict[str, Any]) -> str:
    """Pass/fail per section as a small bar image (a visual one-glance verdict)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    labels, colours = [], []
    for section in summary.sections:
        step = next((s for s in record.steps if s.id == section.step), None)
        ran = bool(step) and step.ran
        verdict = _verdict(section.ok, ctx) if ran else None
        labels.append(section.heading)
        colours.append({True: "#1a7f37", False: "#cf222e", None: "#8c959f"}[verdict])
    if not labels:
        return ""
    fig = Figure(figsize=(8, 0.45 * len(labels) + 0.6), dpi=100)
    ax = fig.subplots()
    ax.barh(range(len(labels)), [1] * len(labels), color=colours)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("green = passed, red = needs attention, grey = not run", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    encoded = base64.b64encode(buf.getvalue()).decode()
    return f'<img id="overview" alt="verdict per area" src="data:image/png;base64,{encoded}">'


def write_summary(folder: Path, summary: Summary, record: RunRecord) -> Path:
    """Write ``summary.html`` for a run."""
    ctx = context(record, folder)
    status = record.status.value
    colour = STATUS_COLOURS.get(status, "#57606a")
    approvals = ", ".join(f"{a.step} by {a.by} at {a.at[:16]}" for a in record.approvals)
    body = (
        f'<div class="banner" style="background:{colour}"><h1>{html.escape(summary.title)}</h1>'
        f"<div>Run {html.escape(record.run_id)}: <b>{html.escape(status)}</b>, started "
        f"{html.escape(str(record.started_at or '')[:16])} UTC by {html.escape(record.user)}"
        + (f"<br>Approved: {html.escape(approvals)}" if approvals else "")
        + ' &middot; <a href="index.html">technical run page</a></div></div>'
        + (f'<p class="big">{html.escape(summary.intro)}</p>' if summary.intro else "")
        + _overview_chart(summary, record, ctx)
        + "".join(_section(s, record, ctx) for s in summary.sections)
    )
    out = folder / "summary.html"
    out.write_text(page(summary.title, body, EXTRA_CSS), encoding="utf-8")
    return out
