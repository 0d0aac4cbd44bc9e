"""What must be true before the archive is approved, computed from the dry run."""

from __future__ import annotations

from opsbook.archive.apply import ArchivePlan
from opsbook.archive.classify import Classification
from opsbook.checklist import Check, Checklist


def checklist(classification: Classification, plan: ArchivePlan) -> Checklist:
    """The checks a reviewer answers before approving ``plan`` (the apps it would move).

    >>> checklist(classification, plan).ok  # doctest: +SKIP
    True
    """
    moving = [classification.verdicts[move.app] for move in plan.moves]
    names = [verdict.app for verdict in moving]
    size_mb = sum(move.total_bytes for move in plan.moves) / 1e6
    unexplained = [v.app for v in moving if not (v.rule and v.evidence_for)]
    in_production = [v.app for v in moving if any(e.kind == "prod-deploy" for e in v.evidence)]
    depended_on = [v.app for v in moving if v.blocked_by]
    low = [v.app for v in moving if v.confidence == "low"]
    kept = "; ".join(f"{app} (used by {', '.join(by)})" for app, by in plan.blocked.items())
    checks = [
        Check(
            "there is something to archive",
            bool(moving),
            f"{len(moving)} app(s) -> {plan.archive_dir}: {', '.join(names) or 'none'}; "
            f"{size_mb:.1f} MB, ${plan.monthly_saving_usd:g}/month",
        ),
        Check(
            "every app to archive was decided by a rule with evidence for it",
            not unexplained,
            f"no rule or evidence: {', '.join(unexplained)}" if unexplained else "yes",
        ),
        Check(
            "no app to archive is deployed to production",
            not in_production,
            f"production deploys name: {', '.join(in_production)}" if in_production else "none",
        ),
        Check(
            "nothing that stays depends on an app to archive",
            not depended_on,
            f"depended on: {', '.join(depended_on)}"
            if depended_on
            else f"blocked candidates are kept: {kept}"
            if kept
            else "no dependants",
        ),
        Check(  # low confidence is for a person to weigh, not a refusal
            "no decision to archive has low confidence",
            None if low else True,
            f"read the evidence against {', '.join(low)} first" if low else "high or medium",
        ),
    ]
    return Checklist(f"archive {len(moving)} app(s) into {plan.archive_dir}", checks)
