"""Notebooks explain themselves: every section says what it does and what to look at, and
the notebook run before an approval gate shows a checklist computed from its dry run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from opsbook import runbook as rb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOOK = "**Look at:**"


def sections(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]


def gated_notebooks() -> set[str]:
    """Notebooks of the steps an approval gate follows, over every runbook."""
    found = set()
    for path in sorted((ROOT / "runbooks").glob("*.yaml")):
        steps = rb.load(path).runbook.steps
        for before, step in zip(steps, steps[1:], strict=False):
            if step.is_gate and before.notebook:
                found.add(Path(before.notebook).stem)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_says_what_it_does_and_what_to_look_at(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    found = sections(nb)
    assert found, f"{path.name} has no sections"
    bare = [s for s in found if "\n" not in s.strip()]
    assert bare == [], f"bare headings in {path.name}"
    unlooked = [s.splitlines()[0] for s in found if LOOK not in s]
    assert unlooked == [], f"sections of {path.name} without {LOOK}"


def test_the_notebook_before_each_gate_shows_a_checklist() -> None:
    gated = gated_notebooks()
    assert gated == {"archive_audit", "chroma_to_qdrant", "loki_query_analysis"}
    for name in sorted(gated):
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        index = next(
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown" and c.source.startswith("## Before approving")
        )
        follows = nb.cells[index + 1]
        assert follows.cell_type == "code" and "checklist(" in follows.source, name


@pytest.mark.parametrize(
    ("source", "bare"),
    [("## Charts", True), ("## Charts\nThe charts. **Look at:** the bars.", False)],
)
def test_sections_helper_tells_a_bare_heading(source: str, bare: bool) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(source)]
    assert ("\n" not in sections(nb)[0]) is bare
