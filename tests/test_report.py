"""HTML pages from the templates in opsbook/templates: escaping, strictness, packaging."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from jinja2 import UndefinedError
from markupsafe import escape

from opsbook import report, runrecord
from opsbook.record import MIME_TYPE

ROOT = Path(__file__).resolve().parents[1]
#: Markup, both quotes, a Jinja expression and an entity: must come out as text.
HOSTILE = "<script>alert(1)</script>\"q'{{ 7*7 }}&amp;"
#: The same without "/", so it can name a record folder.
HOSTILE_ID = "r<script>alert(1)<x>\"q'{{ 7*7 }}&amp;"
ESC = str(escape(HOSTILE))
ESC_ID = str(escape(HOSTILE_ID))


def assert_inert(page: str) -> None:
    """No hostile markup got through, and the template expression was not evaluated."""
    assert "<script" not in page and "<x>" not in page
    assert "{{ 7*7 }}" in page


def hostile_step(**fields: Any) -> dict[str, Any]:
    return {
        "id": HOSTILE,
        "title": HOSTILE,
        "kind": "notebook",
        "status": "failed",
        "duration_s": 2.5,
        "parameters": {HOSTILE: HOSTILE},
        "outputs": {HOSTILE: HOSTILE, "rows": 3},
        "error": {"ename": HOSTILE, "evalue": HOSTILE, "cell_index": 2},
        "notebook": f"steps/{HOSTILE}/notebook.ipynb",
        "report": f"steps/{HOSTILE}/report.html",
        "actions": [HOSTILE_ID],
        **fields,
    }


def hostile_run(**fields: Any) -> dict[str, Any]:
    return {
        "run_id": HOSTILE_ID,
        "runbook": {"name": HOSTILE, "description": HOSTILE, "sha256": HOSTILE},
        "status": "failed",
        "user": HOSTILE,
        "started_at": "2026-11-30T07:00:00.000Z",
        "ended_at": "2026-11-30T07:00:05.000Z",
        "duration_s": 5.0,
        "resumed_from": HOSTILE_ID,
        "parameters": {HOSTILE: HOSTILE},
        "approvals": [{"step": HOSTILE, "by": HOSTILE, "at": HOSTILE, "via": HOSTILE}],
        "environment": {"python": HOSTILE, "packages": {HOSTILE: HOSTILE}},
        "steps": [hostile_step()],
        **fields,
    }


def hostile_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"print({HOSTILE!r})")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=HOSTILE + "\n"),
        nbformat.v4.new_output(
            "display_data",
            data={MIME_TYPE: {"name": "label", "value": HOSTILE}, "text/plain": "label = 1"},
        ),
    ]
    nb.cells = [cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_run_page_escapes_every_field(tmp_path: Path) -> None:
    report.run_page(tmp_path, runrecord.parse_run(hostile_run()))
    page = (tmp_path / "index.html").read_text()
    assert_inert(page)
    assert f"<title>{ESC} {ESC_ID}</title>" in page
    assert f"<h1>{ESC}: failed</h1>" in page
    assert f"run <code>{ESC_ID}</code> by {ESC}," in page
    assert f"resumed from <code>{ESC_ID}</code>" in page
    assert f"<td><b>{ESC}</b></td>" in page  # step id
    assert f"<td>{ESC}: {ESC}</td>" in page  # the error note
    assert f'<a href="../{ESC_ID}/index.html">action</a>' in page
    assert f'<a href="steps/{ESC}/report.html">report</a>' in page
    assert f"<tr><th>{ESC}</th><td>{ESC}</td></tr>" in page  # parameters, environment
    assert f"<td>{ESC}</td><td>{ESC}</td><td>{ESC}</td><td>{ESC}</td>" in page  # approval
    assert f"runbook sha256 {ESC};" in page


def test_step_reports_escape_banner_and_notebook(tmp_path: Path) -> None:
    nb_path = hostile_notebook(tmp_path / "steps" / "x" / "notebook.ipynb")
    run = runrecord.parse_run(hostile_run())
    report.step_reports(nb_path, run.steps[0], run)
    plain = (nb_path.parent / "report.html").read_text()
    full = (nb_path.parent / "full.html").read_text()
    for page in (plain, full):
        assert_inert(page)
        assert f"<h1>{ESC}: failed</h1>" in page
        assert f"<b>Error:</b> {ESC}: {ESC} (cell 2)</p>" in page
        assert f"Runbook <b>{ESC}</b>, run <code>{ESC_ID}</code>, by {ESC}, 2.5 s" in page
        assert f"<tr><th>{ESC}</th><td>{ESC}</td></tr>" in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.split("<h2>Notebook</h2>")[1]
        # a recorded value shows its text line, marked; its JSON payload is not shown
        assert re.search(
            r'<div class="recorded">\s*<div class="output_text[^>]*>\s*<pre>label = 1<', page
        )
        assert page.count("label = 1") == 1
    assert f"<title>{ESC} · {ESC}</title>" in plain and "print(" not in plain
    assert f"<title>{ESC} · {ESC} (full)</title>" in full and "print" in full
    assert '<a href="full.html">report with code</a>' in plain
    assert '<a href="report.html">report without code</a>' in full


def plant(root: Path, data: dict[str, Any]) -> None:
    """A run.json in a folder of its own (not sealed: the index says so)."""
    folder = root / data["run_id"]
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(data), encoding="utf-8")


def test_index_escapes_record_fields(tmp_path: Path) -> None:
    plant(tmp_path, hostile_run(steps=[hostile_step(outputs={"note": "<b>x</b>"})]))
    action_id = HOSTILE_ID + "-action"
    plant(
        tmp_path,
        {
            "run_id": action_id,
            "kind": "action",
            "action": HOSTILE,
            "status": "succeeded",
            "started_at": "2026-11-30T08:00:00.000Z",
            "summary": {HOSTILE[:20]: 1},
        },
    )
    page = report.audit_index(tmp_path).read_text()
    assert_inert(page)
    assert "<b>x</b>" not in page
    assert f"2 run(s) under {escape(str(tmp_path))}." in page
    assert f"<td><code>{ESC_ID}</code></td><td>run</td>" in page
    assert f'<td>{ESC}</td><td><span class="pill" style="background:#cf222e">failed</span>' in page
    assert f'<a href="{ESC_ID}/index.html">run page</a>' in page
    assert f'<a href="{ESC_ID}/steps/{ESC}/report.html">{ESC}</a>' in page
    assert "<tr><th>note</th><td>&lt;b&gt;x&lt;/b&gt;</td></tr>" in page
    assert f'<a href="{escape(action_id)}/index.html">action</a>' in page
    assert f"<tr><th>{escape(HOSTILE[:20])}</th><td>1</td></tr>" in page
    assert page.count("<td>not sealed</td>") == 2


def test_action_page_escapes(tmp_path: Path) -> None:
    action = {
        "run_id": HOSTILE_ID,
        "kind": "action",
        "action": HOSTILE,
        "status": "failed",
        "user": HOSTILE,
        "started_at": HOSTILE,
        "target": HOSTILE,
        "origin": {"kind": "runner", "run_id": HOSTILE_ID, "step": HOSTILE},
        "parameters": {HOSTILE: HOSTILE},
        "summary": {HOSTILE: [HOSTILE]},
        "error": {"ename": HOSTILE, "evalue": HOSTILE},
        "production": False,
    }
    report.action_page(tmp_path, runrecord.parse(action))
    page = (tmp_path / "index.html").read_text()
    assert_inert(page)
    assert f"<h1>{ESC}: failed</h1>" in page
    assert f"by {ESC} at {ESC} on {ESC} &middot;" in page.replace("\n", " ")
    assert f'<a href="../{ESC_ID}/index.html">run</a>' in page
    assert f"<p><b>Error:</b> {ESC}: {ESC}</p>" in page
    assert f"<p>runner: run {ESC_ID}, step {ESC}</p>" in page
    assert '<p class="muted">none (not production)</p>' in page
    assert f"<th>{ESC}</th><td>{escape(json.dumps([HOSTILE]))}</td>" in page


def test_attachment_pages_escape(tmp_path: Path) -> None:
    hostile_notebook(tmp_path / "notebook.ipynb")
    data = {
        "run_id": "a1",
        "kind": "attachment",
        "status": "succeeded",
        "user": HOSTILE,
        "started_at": HOSTILE,
        "actions": [HOSTILE_ID, "b2"],
        "notebook": {"name": HOSTILE, "path": HOSTILE, "sha256_as_saved": "0"},
    }
    report.attachment_pages(tmp_path, runrecord.parse(data))
    for name in ("report.html", "full.html"):
        page = (tmp_path / name).read_text()
        assert_inert(page)
        assert f"<title>{ESC} (attached)</title>" in page
        assert f"<h1>Notebook {ESC}</h1>" in page
        assert f'<a href="../{ESC_ID}/index.html"><code>{ESC_ID}</code></a> &middot; ' in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.split("</div></div>")[1]


def test_a_missing_variable_is_an_error() -> None:
    with pytest.raises(UndefinedError, match="'run' is undefined"):
        report.render("run.html.j2", has_summary=False)
    run = SimpleNamespace(title="rb", status="failed")  # no run_id
    with pytest.raises(UndefinedError, match="has no attribute 'run_id'"):
        report.render("run.html.j2", run=run, has_summary=False)


def test_a_record_with_only_required_fields_renders(tmp_path: Path) -> None:
    """A record written by an older opsbook lacks fields: the page leaves them out."""
    run = {"run_id": "r1", "status": "succeeded", "runbook": {"name": "old"}}
    report.run_page(tmp_path, runrecord.parse_run(run))
    page = (tmp_path / "index.html").read_text()
    assert "<h1>old: succeeded</h1>" in page
    assert "resumed from" not in page and "<h2>Approvals</h2>" not in page
    assert "<tr><th>python</th><td>null</td></tr>" in page
    assert "runbook sha256 None;" in page


def test_templates_are_package_data() -> None:
    package = ROOT / "lib" / "opsbook"
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["opsbook"]
    shipped = {p for pattern in globs for p in package.glob(pattern) if p.is_file()}
    templates = {p for p in (package / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= shipped
    assert (package / "py.typed") in shipped
    names = set(report.TEMPLATES.list_templates())
    for page in ("run.html.j2", "index.html.j2", "summary.html.j2", "step_report.html.j2"):
        assert page in names
    assert "nbconvert/opsbook/index.html.j2" in names
