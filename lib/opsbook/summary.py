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
import io
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsbook.report import macro, render
from opsbook.runbook import Summary, SummarySection, evaluate_condition
from opsbook.runrecord import RunRecord, StepRecord, template_context

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


def _table_columns(rows: Any, columns: list[str] | None = None) -> list[str] | None:
    """The columns of a recorded table (a list of dicts), or None when it is not one."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    return columns or list(dict.fromkeys(k for r in rows for k in r))


def _table(rows: Any, columns: list[str] | None = None) -> str:
    """A recorded list of dicts as an HTML table (the ``table:`` of a summary item)."""
    return str(macro("data_table")(rows, _table_columns(rows, columns)))


@dataclass(frozen=True)
class _Row:
    """One line of a section: a value (with a link and a check) or a table."""

    label: str
    value: str | None = None
    href: str | None = None
    ok: bool | None = None
    is_table: bool = False
    table: Any = None
    columns: list[str] | None = None


@dataclass(frozen=True)
class _Link:
    href: str
    text: str


@dataclass(frozen=True)
class _SectionView:
    """What ``summary.html.j2`` shows of one section."""

    section: SummarySection
    status: str
    verdict: bool | None
    text: str
    link: _Link | None
    rows: list[_Row]


def _step(record: RunRecord, step_id: str) -> StepRecord | None:
    return next((s for s in record.steps if s.id == step_id), None)


def _section(section: SummarySection, record: RunRecord, ctx: dict[str, Any]) -> _SectionView:
    step = _step(record, section.step)
    status = (step.status.value if step.status else "?") if step else "not run"
    ran = step is not None and step.ran
    link = None
    if step and step.report:
        link = _Link(step.report, "step report")
    elif step and step.from_run:
        href = f"../{step.from_run}/{step.report or 'index.html'}"
        link = _Link(href, "step report (earlier run)")
    rows = []
    for item in section.items:
        if item.table:
            table = _native(item.table, ctx)
            columns = _table_columns(table, item.columns)
            rows.append(_Row(item.label, is_table=True, table=table, columns=columns))
            continue
        value = _text(item.value, ctx) if (item.value and ran) else None
        href = None
        if item.link and value not in (None, ""):
            href = urllib.parse.quote(f"steps/{section.step}/{item.link}")
        ok = _verdict(item.ok, ctx) if ran else None
        rows.append(_Row(item.label, value=value, href=href, ok=ok))
    return _SectionView(
        section=section,
        status=status,
        verdict=_verdict(section.ok, ctx) if ran else None,
        text=(_text(section.text, ctx) or "") if section.text and ran else "",
        link=link,
        rows=rows,
    )


def _overview_chart(sections: list[_SectionView]) -> str:
    """Pass/fail per section as a small bar image (a visual one-glance verdict), as a
    base64 PNG ("" without sections)."""
    if not sections:
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    labels = [view.section.heading for view in sections]
    colours = [{True: "#1a7f37", False: "#cf222e", None: "#8c959f"}[v.verdict] for v in sections]
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
    return base64.b64encode(buf.getvalue()).decode()


def write_summary(folder: Path, summary: Summary, record: RunRecord) -> Path:
    """Write ``summary.html`` for a run."""
    ctx = context(record, folder)
    sections = [_section(s, record, ctx) for s in summary.sections]
    page = render(
        "summary.html.j2",
        summary=summary,
        run=record,
        sections=sections,
        chart=_overview_chart(sections),
    )
    out = folder / "summary.html"
    out.write_text(page, encoding="utf-8")
    return out
