"""Headless Chromium opens the audit index and a step report from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserkit import check_page, find_chromium
from opsbook import execute

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]
OUT = Path(__file__).resolve().parents[1] / "test-output"


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium on PATH: `apt-get install chromium` (.ci/run installs it)")
    return binary


def test_index_and_step_report_render(chromium: str, write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: browsed
    steps:
      - id: chart
        notebook: notebooks/chart.ipynb
      - id: figure
        notebook: notebooks/figure.ipynb
      - id: boom
        notebook: notebooks/fail.ipynb
    """)
    result = execute.run(
        path, {}, execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None)
    )
    assert result.status == "failed"
    index = check_page(
        audit_dir / "index.html",
        OUT / "audit-index.png",
        probe="document.querySelectorAll('table#runs > tbody > tr').length",
    )
    assert index.console_errors == []
    assert index.probe == 2  # header + one run
    assert index.images and index.broken_images == []
    assert index.screenshot is not None and index.screenshot.stat().st_size > 10_000

    report = check_page(
        result.folder / "steps/chart/report.html",
        OUT / "step-report.png",
        probe="document.body.innerText",
    )
    assert report.console_errors == [] and report.broken_images == []
    assert len(report.images) == 1  # the chart
    assert "chart: succeeded" in report.probe and "import matplotlib" not in report.probe

    # a bare matplotlib Figure (what the library charts return) renders as an image too
    figure = check_page(result.folder / "steps/figure/report.html")
    assert len(figure.images) == 1 and figure.broken_images == []

    failed = check_page(result.folder / "steps/boom/report.html", probe="document.body.innerText")
    assert "boom: failed" in failed.probe and "ValueError" in failed.probe
