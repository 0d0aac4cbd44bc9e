"""HTML for people: per-step reports, a page per run, and the audit index.

Everything is static, self-contained HTML (images embedded as data URIs, no script or
stylesheet from the network) so a report opened from disk, mailed, or archived still
renders. The stakeholder report hides code (nbconvert ``exclude_input``); the full
report keeps it.

The pages come from autoescaping Jinja2 templates in ``opsbook/templates`` (package
data): this module gathers what a page shows and renders its template with the typed
records (:mod:`opsbook.runrecord`) as they are; it builds no HTML itself. The notebook
body is nbconvert's, through the ``nbconvert/opsbook`` template there. A template that
names a variable or field it was not given fails (``StrictUndefined``) instead of
printing nothing.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from opsbook import audit
from opsbook.runrecord import ActionRecord, AnyRecord, AttachmentRecord, RunRecord, StepRecord

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "approved": "#1a7f37",
    "carried": "#57606a",
    "skipped": "#57606a",
    "failed": "#cf222e",
    "awaiting_approval": "#9a6700",
    "running": "#0969da",
}
#: The nbconvert template of the notebook body (``templates/nbconvert/opsbook``).
NBCONVERT_TEMPLATE = "opsbook"


def fmt_value(value: Any, limit: int = 160) -> str:
    """Short text of a recorded value for tables (templates escape it)."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def status_colour(status: Any) -> str:
    return STATUS_COLOURS.get(str(status), "#57606a")


def _scalars(outputs: Mapping[str, Any], limit: int = 8) -> dict[str, Any]:
    """Bools, numbers and short strings among ``outputs``, for tables."""
    picked = {
        k: v
        for k, v in outputs.items()
        if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) < 60)
    }
    return dict(list(picked.items())[:limit])


TEMPLATES = Environment(
    loader=PackageLoader("opsbook", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    extensions=["jinja2.ext.do"],
)
TEMPLATES.filters.update(
    colour=status_colour,
    value=fmt_value,
    seconds=lambda value: f"{value:.1f} s",
)


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a file in ``opsbook/templates``) rendered with ``context``."""
    return TEMPLATES.get_template(template).render(**context)


def macro(name: str) -> Any:
    """A macro of ``macros.html.j2`` as a Python callable returning markup."""
    return getattr(TEMPLATES.get_template("macros.html.j2").module, name)


# ----------------------------------------------------------------------- step reports


@functools.cache
def _exporter(with_code: bool) -> HTMLExporter:
    """nbconvert's HTML exporter for one kind of report, made once per process: its
    first export compiles the templates (~0.5 s), later ones reuse them (~0.1 s), which
    the runner would otherwise pay twice per step."""
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name=NBCONVERT_TEMPLATE,
        extra_template_basedirs=[str(resources.files("opsbook") / "templates" / "nbconvert")],
        exclude_input=not with_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )


def notebook_html(nb_path: Path, *, with_code: bool) -> Markup:
    """The notebook body as HTML (nbconvert, template ``nbconvert/opsbook``, images
    embedded). nbconvert escapes the cells' text itself; the result is markup."""
    body, _ = _exporter(with_code).from_notebook_node(nbformat.read(nb_path, as_version=4))
    return Markup(body)


def _pygments_css() -> Markup:
    """Styles of the highlighted code in a full report (pygments' own CSS)."""
    from pygments.formatters import HtmlFormatter

    return Markup(HtmlFormatter().get_style_defs(".highlight"))


def step_reports(nb_path: Path, entry: StepRecord, run: RunRecord) -> None:
    """Write ``report.html`` (no code) and ``full.html`` (with code) beside the notebook."""
    for name, with_code in (("report.html", False), ("full.html", True)):
        page = render(
            "step_report.html.j2",
            step=entry,
            run=run,
            with_code=with_code,
            notebook=notebook_html(nb_path, with_code=with_code),
            code_css=_pygments_css() if with_code else "",
        )
        (nb_path.parent / name).write_text(page, encoding="utf-8")


# --------------------------------------------------------------------------- run page


def run_page(folder: Path, record: RunRecord) -> None:
    """Write ``index.html`` for one run: banner, steps with links, approvals, parameters."""
    page = render("run.html.j2", run=record, has_summary=(folder / "summary.html").exists())
    (folder / "index.html").write_text(page, encoding="utf-8")


# ------------------------------------------------------------------------ audit index


def _runs_chart(runs: list[AnyRecord]) -> str:
    """Duration of recent runs coloured by status, as a base64 PNG ("" without runs)."""
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
        color=[status_colour(r.status) for r in recent],
    )
    ax.set_xticks(list(xs), [r.title[:14] for r in recent], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("duration (s)")
    ax.set_title("Recent runs (green succeeded, red failed, amber awaiting approval)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _key_results(record: AnyRecord) -> dict[str, Any]:
    if isinstance(record, ActionRecord):
        return _scalars(record.summary, 6)
    return record.key_results()  # a remote record: from its entry


@dataclass(frozen=True)
class _IndexRow:
    """One line of the audit index. ``seal``: the signing key's fingerprint, "" when
    unsigned, None when the ledger has no entry for the record."""

    record: AnyRecord
    has_summary: bool
    key_results: dict[str, Any]
    seal: str | None


def _seals(root: Path) -> dict[str, str]:
    """Per record in the ledger: the signing key's fingerprint, or "" when unsigned.

    What the ledger entry claims; only ``opsbook verify`` checks the signature."""
    seals = {}
    for entry in audit.read_ledger(root):
        if "_unreadable" in entry or "run_id" not in entry:
            continue
        key = entry.get("key")
        signed = entry.get("signature") and key not in (None, audit.UNSIGNED)
        seals[entry["run_id"]] = str(key) if signed else ""
    return seals


def audit_index(root: Path) -> Path:
    """Write ``<root>/index.html``: every run with status, duration, key results, links."""
    runs = audit.team_records(root)
    seals = _seals(root)
    rows = [
        _IndexRow(
            record=record,
            has_summary=(root / record.run_id / "summary.html").exists(),
            key_results=_key_results(record),
            seal=seals.get(record.run_id),
        )
        for record in reversed(runs)
    ]
    page = render("index.html.j2", root=root, runs=runs, rows=rows, chart=_runs_chart(runs))
    out = root / "index.html"
    tmp = root / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- action records


def action_page(folder: Path, record: ActionRecord) -> None:
    """Write ``index.html`` for one action record: who changed what, where from, approval."""
    (folder / "index.html").write_text(render("action.html.j2", action=record), encoding="utf-8")


def attachment_pages(folder: Path, record: AttachmentRecord) -> None:
    """``report.html`` (no code) and ``full.html`` for a notebook attached to actions."""
    nb_path = folder / "notebook.ipynb"
    for name, with_code in (("report.html", False), ("full.html", True)):
        page = render(
            "attachment.html.j2",
            attachment=record,
            with_code=with_code,
            notebook=notebook_html(nb_path, with_code=with_code),
            code_css=_pygments_css() if with_code else "",
        )
        (folder / name).write_text(page, encoding="utf-8")
