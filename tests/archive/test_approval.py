"""The archive gate's checklist, computed from the demo monorepo's dry run."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.archive import DEMO_NOW, checklist, classify, inventory, plan_archive
from opsbook.archive.evidence import AGAINST, Evidence

MOVING = ["flan-router", "ibu-nuzantara", "marketing-v1", "orchestrator", "status-page"]
MOVING += ["unified-backend"]


@pytest.fixture
def dry_run(demo_template: Path):
    inv = inventory(demo_template, apps_dirs=["apps"], staleness_days=90, now=DEMO_NOW)
    classification = classify(inv)
    return classification, plan_archive(classification)


def test_demo_dry_run_passes_with_low_confidence_apps_to_read(dry_run):
    result = checklist(*dry_run)
    assert [c.ok for c in result.checks] == [True, True, True, True, None]
    assert result.ok is True
    assert result.checks[0].detail.startswith(f"6 app(s) -> {dry_run[1].archive_dir}: ")
    assert result.checks[0].detail.split(": ", 1)[1].startswith(", ".join(MOVING) + "; ")
    assert result.checks[3].detail == "blocked candidates are kept: legacy-auth (used by web)"
    assert result.checks[4].detail == (
        "read the evidence against marketing-v1, status-page, unified-backend first"
    )


def test_an_app_in_production_fails_the_checklist(dry_run):
    classification, plan = dry_run
    classification.verdicts["orchestrator"].evidence.append(
        Evidence("production", "prod-deploy", AGAINST, "deploy.yml names it", "deploy.yml:3")
    )
    result = checklist(classification, plan)
    assert result.ok is False
    assert [c.what for c in result.failing] == ["no app to archive is deployed to production"]
    assert result.failing[0].detail == "production deploys name: orchestrator"


def test_an_app_something_depends_on_or_without_evidence_fails(dry_run):
    classification, plan = dry_run
    classification.verdicts["flan-router"].blocked_by["web"] = "imports it"
    classification.verdicts["status-page"].rule = ""
    failing = {c.what: c.detail for c in checklist(classification, plan).failing}
    assert failing == {
        "nothing that stays depends on an app to archive": "depended on: flan-router",
        "every app to archive was decided by a rule with evidence for it": (
            "no rule or evidence: status-page"
        ),
    }


def test_nothing_to_archive_fails(dry_run):
    classification, plan = dry_run
    plan.moves = []
    result = checklist(classification, plan)
    assert [c.what for c in result.failing] == ["there is something to archive"]
    assert result.gate == f"archive 0 app(s) into {plan.archive_dir}"
