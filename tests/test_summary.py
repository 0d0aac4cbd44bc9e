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
