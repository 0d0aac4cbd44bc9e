"""Executive summary pages declared in a runbook's ``summary:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import execute
from opsbook import runbook as rb

SUMMARISED = """
name: summarised
parameters:
  a: {type: int, default: 3}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}", items: [1, 2, 3]}
  - id: never
    notebook: notebooks/add.ipynb
    when: "false"
summary:
  title: Quarterly clean-up
  intro: What happened, in one page.
  sections:
    - heading: Totals
      step: first
      ok: "{{ steps.first.outputs.total > 4 }}"
      items:
        - {label: Total, value: "{{ steps.first.outputs.total }} units"}
        - {label: Items, value: "{{ steps.first.outputs.n_items }}", ok: "{{ steps.first.outputs.n_items == 3 }}"}
        - {label: Files, value: "the notebook", link: notebook.ipynb}
    - heading: Skipped part
      step: never
      ok: "{{ steps.never.outputs.total > 0 }}"
      items:
        - {label: Total, value: "{{ steps.never.outputs.total }}"}
"""


def test_summary_templates_are_validated(write_runbook) -> None:
    bad = SUMMARISED.replace("outputs.n_items }}", "outputs.n_itemz }}", 1)
    problems = rb.validate(rb.load(write_runbook(bad)))
    assert any("summary section 'Totals'" in p and "never records 'n_itemz'" in p for p in problems)
    bad = SUMMARISED.replace("step: never", "step: nowhere")
    assert any(
        "step 'nowhere' does not exist" in p for p in rb.validate(rb.load(write_runbook(bad)))
    )


@pytest.mark.notebooks
def test_summary_page(write_runbook, audit_dir: Path) -> None:
    result = execute.run(
        write_runbook(SUMMARISED),
        {"a": 5},
        execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None),
    )
    assert result.status == "succeeded"
    page = (result.folder / "summary.html").read_text()
    assert "Quarterly clean-up" in page and "7 units" in page
    assert page.count("PASS") == 2 and "FAIL" not in page
    assert "not run" in page  # the skipped section does not break the page
    assert 'href="steps/first/report.html"' in page
    assert '<a href="steps/first/notebook.ipynb">the notebook</a>' in page
    assert 'src="data:image/png;base64,' in page
    assert 'href="summary.html"' in (result.folder / "index.html").read_text()


def test_filters_and_table_columns() -> None:
    from opsbook.summary import _kv, _table, _total

    assert _total({"a": {"x": 2, "y": 3}, "b": {}, "c": [1, True]}) == 6
    assert _kv({"a": 1, "b": 0.123456}) == "a: 1, b: 0.1235"
    html = _table([{"z": 1, "a": True}], ["a", "z"])
    assert html.index(">a<") < html.index(">z<") and "PASS" in html
    assert "not available" in _table(None)


@pytest.mark.parametrize("link", ["../../etc/passwd", "/etc/passwd", "a/../../b", "", "c:/x"])
def test_summary_links_stay_inside_the_step_folder(write_runbook, link: str) -> None:
    text = SUMMARISED.replace("link: notebook.ipynb", f"link: {link!r}")
    with pytest.raises(Exception, match="relative path inside the step's folder"):
        rb.load(write_runbook(text))


HOSTILE = "<script>alert(1)</script>\"q'{{ 7*7 }}&amp;"


def test_summary_escapes_recorded_and_declared_text(tmp_path: Path) -> None:
    from markupsafe import escape

    from opsbook.runrecord import parse_run
    from opsbook.summary import write_summary

    esc = str(escape(HOSTILE))
    summary = rb.Summary(
        title=HOSTILE,
        intro=HOSTILE,
        sections=[
            rb.SummarySection(
                heading=HOSTILE,
                step="s",
                text="{{ steps.s.outputs.label }}",
                ok="{{ steps.s.outputs.n == 2 }}",
                items=[
                    rb.SummaryItem(label=HOSTILE, value="{{ steps.s.outputs.label }}", link="a b"),
                    rb.SummaryItem(label="rows", table="{{ steps.s.outputs.rows }}"),
                ],
            )
        ],
    )
    data = {
        "run_id": HOSTILE,
        "runbook": {"name": HOSTILE},
        "status": "succeeded",
        "user": HOSTILE,
        "started_at": "2026-11-30T07:00:00.000Z",
        "parameters": {},
        "approvals": [{"step": HOSTILE, "by": HOSTILE, "at": HOSTILE, "via": "--yes"}],
        "steps": [
            {
                "id": "s",
                "status": "succeeded",
                "report": "steps/s/report.html",
                "outputs": {"label": HOSTILE, "n": 2, "rows": [{HOSTILE: HOSTILE, "ok": True}]},
            }
        ],
    }
    page = write_summary(tmp_path, summary, parse_run(data)).read_text()
    assert "<script" not in page and "{{ 7*7 }}" in page
    assert f"<title>{esc}</title>" in page and f'<p class="big">{esc}</p>' in page
    assert f"Run {esc}: <b>succeeded</b>" in page and f"by {esc}" in page
    assert f"Approved: {esc} by {esc} at {str(escape(HOSTILE[:16]))}" in page
    assert page.count(f"<h2>{esc} ") == 1 and page.count("PASS") == 2  # section, table cell
    assert f'<td>{esc}</td><td class="v"><a href="steps/s/a%20b">{esc}</a>' in page
    assert f"<th>{esc}</th><th>ok</th>" in page and f"<td>{esc}</td>" in page
    assert '<a href="steps/s/report.html">step report &rarr;</a>' in page
