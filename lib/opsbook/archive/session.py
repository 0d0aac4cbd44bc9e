"""Notebook plumbing: pick the repository (or make the demo), the clock, the artifact
folder, and gather the numbers the notebook records."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from opsbook.archive.apply import ApplyResult, ArchivePlan, VerifyReport
from opsbook.archive.classify import Classification
from opsbook.archive.fixture import DEMO_NOW, make_demo_monorepo
from opsbook.archive.gitutil import repo_root
from opsbook.errors import ConfigError


def parse_now(now: str) -> datetime | None:
    """``""`` -> None (today); an ISO date or datetime -> an aware UTC datetime."""
    if not now:
        return None
    try:
        value = datetime.fromisoformat(now)
    except ValueError as exc:
        raise ConfigError(f"now={now!r} is not an ISO date", hint='use e.g. "2026-11-20"') from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def resolve_repo(repo_path: str, now: str = "") -> tuple[Path, datetime | None, str]:
    """(repo, clock, note): the repository to audit, or a fresh demo when ``repo_path`` is ''."""
    clock = parse_now(now)
    if repo_path:
        return repo_root(repo_path), clock, f"auditing {repo_root(repo_path)}"
    folder = Path(tempfile.mkdtemp(prefix="opsbook-archive-demo-")) / "monorepo"
    repo = make_demo_monorepo(folder)
    return (
        repo,
        clock or DEMO_NOW,
        (
            f"repo_path is empty: generated the demo monorepo in {repo} "
            f"(clock fixed at {(clock or DEMO_NOW).date()})"
        ),
    )


def artifact_dir(output_dir: str) -> Path:
    """The step's artifact folder, or a temp dir when ``output_dir`` is ''."""
    out = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="opsbook-archive-"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def outcome(
    classification: Classification,
    plan: ArchivePlan,
    result: ApplyResult | None = None,
    report: VerifyReport | None = None,
) -> dict[str, Any]:
    """The numbers to record: projected when nothing was applied, measured when it was."""
    s = classification.summary()
    inv = classification.inventory
    apps_bytes = sum(a.total_bytes for a in inv.apps)
    out: dict[str, Any] = {
        **s,
        "archive_path": plan.archive_dir,
        "apps_bytes_before": apps_bytes,
        "apps_bytes_after": apps_bytes - s["bytes_reclaimable"],
        "archived": [],
        "bytes_freed": 0,
        "verify_ok": None,
        "commit_sha": None,
        "measured": False,
    }
    if result is not None:
        out.update(
            archived=result.archived,
            bytes_freed=result.bytes_freed,
            commit_sha=result.commit_sha,
            archive_path=result.archive_path,
            apps_after=result.apps_after,
        )
    if report is not None:
        out.update(
            verify_ok=report.ok,
            apps_after=report.apps_after,
            measured=True,
            apps_bytes_after=report.apps_bytes_after,
            archive_path=report.archive_path,
        )
        if result is None:  # verify-only run over an already archived tree
            out.update(
                archived=report.archived,
                apps_before=report.apps_after + len(report.archived),
                apps_bytes_before=apps_bytes,
            )
    return out


def decision_rows(classification: Classification) -> list[dict[str, Any]]:
    """The dry-run table as records: app, decision, confidence, rule, evidence for/against."""
    table = classification.frame()
    keep = ["app", "decision", "confidence", "rule", "evidence_for", "evidence_against"]
    return [{k: row[k] for k in keep} for row in table.to_dict(orient="records")]


def evidence_frame(classification: Classification) -> pd.DataFrame:
    """Every evidence item of every app: family, kind, stance, words and source line."""
    rows = [
        {
            "app": v.app,
            "family": e.family,
            "kind": e.kind,
            "stance": e.stance,
            "text": e.text,
            "source": e.source,
        }
        for v in classification.verdicts.values()
        for e in v.evidence
    ]
    return pd.DataFrame(rows, columns=["app", "family", "kind", "stance", "text", "source"])


def save_artifacts(
    out: Path, classification: Classification, plan: ArchivePlan, figures: dict[str, Figure]
) -> list[str]:
    """Write inventory/classification CSVs, the planned README and the charts to ``out``."""
    written = []
    classification.inventory.frame().to_csv(out / "inventory.csv", index=False)
    classification.frame().to_csv(out / "classification.csv", index=False)
    evidence_frame(classification).to_csv(out / "evidence.csv", index=False)
    classification.matrix().to_csv(out / "evidence-matrix.csv", index=False)
    (out / "archive-README.md").write_text(plan.readme, encoding="utf-8")
    written += [
        "inventory.csv",
        "classification.csv",
        "evidence.csv",
        "evidence-matrix.csv",
        "archive-README.md",
    ]
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=90)
        written.append(f"{name}.png")
    return written
