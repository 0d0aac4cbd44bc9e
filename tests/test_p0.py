"""The P0 runbook end to end on small embedded fixtures, and its executive summary in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserkit import check_page, find_chromium
from opsbook import audit, execute

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"

pytestmark = [pytest.mark.notebooks, pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def p0_run(tmp_path_factory: pytest.TempPathFactory) -> execute.RunResult:
    from opsbook.archive.fixture import make_demo_monorepo

    base = tmp_path_factory.mktemp("p0")
    repo = make_demo_monorepo(base / "monorepo")
    options = execute.RunOptions(
        root=base / "audit",
        work_root=base / "work",
        progress_bar=False,
        approve={"archive.approve", "migration.approve"},
        echo=lambda _: None,
    )
    # chroma_path and log_paths empty: the notebooks generate small demo sources themselves
    return execute.run(
        ROOT / "runbooks" / "p0-platform-hardening.yaml",
        {"repo_path": str(repo), "now": "2026-11-28"},
        options,
    )


def test_p0_runs_every_step_and_feeds_results_forward(p0_run: execute.RunResult) -> None:
    steps = {s["id"]: s for s in p0_run.data["steps"]}
    assert p0_run.status == "succeeded", {
        k: (s["status"], s.get("error")) for k, s in steps.items()
    }
    assert steps["migration.rollback"]["status"] == "skipped"
    assert [a["step"] for a in p0_run.data["approvals"]] == ["archive.approve", "migration.approve"]
    audit_out = steps["archive.audit"]["outputs"]
    assert steps["archive.apply"]["parameters"]["candidates"] == audit_out["candidates"]
    assert sorted(steps["archive.apply"]["outputs"]["archived"]) == sorted(audit_out["candidates"])
    assert steps["archive.verify"]["outputs"]["verify_ok"] is True
    assert steps["migration.migrate"]["outputs"]["integrity_ok"] is True
    assert steps["migration.cutover"]["outputs"]["cutover_done"] is True
    assert steps["loki.review"]["outputs"]["incidents_missed"] == []
    assert steps["loki.approve"]["status"] == "skipped"  # review only: the rules file stays
    assert len(steps["pubsub.benchmark"]["outputs"]["verdicts"]) >= 4
    # the nesting: each domain runbook is one step, with its path and hash, its steps under it
    used = {k: s for k, s in steps.items() if s["kind"] == "runbook"}
    assert sorted(used) == ["archive", "loki", "migration", "pubsub"]
    assert all(s["status"] == "succeeded" for s in used.values())
    assert used["migration"]["uses"]["path"] == "runbooks/migrate-chroma-to-qdrant.yaml"
    assert (p0_run.folder / used["migration"]["uses"]["saved_as"]).read_text() == (
        ROOT / "runbooks" / "migrate-chroma-to-qdrant.yaml"
    ).read_text()
    assert steps["migration.migrate"]["parent"] == "migration"
    assert audit.verify(p0_run.folder.parent) == []


def test_executive_summary_in_chromium(p0_run: execute.RunResult) -> None:
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH: `apt-get install chromium` (.ci/run installs it)")
    summary = p0_run.folder / "summary.html"
    check = check_page(summary, OUT / "p0-summary.png", probe="document.body.innerText")
    assert check.console_errors == []
    assert check.images and check.broken_images == []
    text = check.probe
    for heading in (
        "Monorepo clean-up",
        "Vector store migration",
        "Cutover",
        "Alerts",
        "Real-time layer",
    ):
        assert heading in text
    records = p0_run.data["steps"]
    moved = next(s for s in records if s["id"] == "migration.migrate")["outputs"]["total_records"]
    assert str(moved) in text and "not run" not in text
    links = check_page(
        summary, probe="Array.from(document.links).map(a => a.getAttribute('href'))"
    ).probe
    for step in (
        "archive.apply",
        "migration.migrate",
        "migration.cutover",
        "loki.review",
        "pubsub.benchmark",
    ):
        assert f"steps/{step}/report.html" in links
    for href in links:
        if href.startswith("steps/"):
            target = check_page(p0_run.folder / href)
            assert target.console_errors == [] and target.broken_images == [], href
    index = check_page(p0_run.folder.parent / "index.html", OUT / "p0-index.png")
    assert index.console_errors == [] and index.broken_images == []
