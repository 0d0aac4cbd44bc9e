"""The migration gate's checklist, computed from a real dry run of the demo store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import opsbook.migrate as migrate

NAMES = "product-docs, release-notes, support-articles"


@pytest.fixture(scope="module")
def dry_run(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> migrate.Plan:
    return migrate.plan(chroma_path=str(demo_store), work_dir=str(tmp_path_factory.mktemp("w")))


def test_clean_dry_run_passes_and_leaves_the_aliases_to_look_at(dry_run):
    result = migrate.checklist(dry_run)
    assert [c.ok for c in result.checks] == [True, True, True, True, True, None]
    assert result.ok is True
    assert result.checks[0].detail.startswith(f"600 records in 3 collection(s): {NAMES}; ")
    assert result.checks[-1].detail == (
        "product-docs (new), release-notes (new), support-articles (new)"
    )
    assert result.gate == f"migrate 600 records to {dry_run.target}"


def test_blocking_findings_fail_the_checklist(dry_run):
    broken = replace(dry_run, collections=list(dry_run.collections))
    first = dry_run.collections[0]
    findings = replace(first.findings, counts=first.findings.counts.copy())
    findings.counts["duplicate_id"] += 2
    broken.collections[0] = replace(first, findings=findings)
    failing = {c.what: c.detail for c in migrate.checklist(broken).failing}
    assert failing == {
        "every record was read and validated without a blocking finding": (
            "errors: product-docs (2)"
        )
    }


@pytest.mark.parametrize(
    ("changes", "what", "ok", "detail"),
    [
        (
            {"backup": False},
            "the source is backed up before anything is written",
            False,
            "backup=False",
        ),
        (
            {"sample_queries": 0},
            "search is verified against exact search before the cutover",
            False,
            "sample_queries=0 without allow_unverified_search: cutover refuses",
        ),
        (
            {"sample_queries": 0, "allow_unverified_search": True},
            "search is verified against exact search before the cutover",
            None,
            "sample_queries=0 and unverified search allowed: judge it yourself",
        ),
        (
            {"cutover": False},
            "the aliases to switch are the ones you expect",
            True,
            "cutover=False: no alias changes",
        ),
    ],
)
def test_configuration_checks(dry_run, changes, what, ok, detail):
    plan = replace(dry_run, config=replace(dry_run.config, **changes))
    (check,) = [c for c in migrate.checklist(plan).checks if c.what == what]
    assert (check.ok, check.detail) == (ok, detail)
