"""Classify inventoried apps (active / stale / experimental), pick archive candidates and
block any candidate that something kept still depends on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from opsbook.archive import evidence as ev
from opsbook.archive.inventory import App, Inventory
from opsbook.errors import ConfigError

#: Rough monthly cost (USD) of one deployed app per platform; "docker" counts only when no
#: hosted platform config is present (a Dockerfile is usually what fly/railway build).
DEFAULT_COSTS: dict[str, float] = {
    "fly": 15.0,
    "railway": 20.0,
    "vercel": 20.0,
    "netlify": 19.0,
    "render": 19.0,
    "heroku": 25.0,
    "gcp": 25.0,
    "aws-lambda": 5.0,
    "cloudflare": 5.0,
    "docker": 10.0,
}


def monthly_cost(app: App, costs: dict[str, float] | float | int | None = None) -> float:
    """Estimated monthly cost of ``app``'s deployments under the cost model ``costs``.

    ``costs`` maps platform -> USD per app per month (a ``"default"`` key prices unknown
    platforms); a plain number is a flat price per deployed app.
    """
    if not app.platforms:
        return 0.0
    if costs is None:
        costs = DEFAULT_COSTS
    if isinstance(costs, int | float):
        return float(costs)
    hosted = [p for p in app.platforms if p != "docker"] or ["docker"]
    return float(sum(costs.get(p, costs.get("default", 0.0)) for p in hosted))


#: Evidence kinds that speak against archiving without vetoing it: each lowers confidence.
WEAK_AGAINST = frozenset({"active", "ci", "owner", "deploy", "deploy-config", "dependant"})
_LEVELS = ("low", "medium", "high")

#: The decision rules, in the order they are tried (the first that applies decides).
RULES: dict[str, str] = {
    "R1": "public package: outside users may depend on it, so it is archived only after an "
    "explicit deprecation (package.json deprecated, catalog lifecycle, or a workspace "
    "exclusion whose comment says so)",
    "R2": "production evidence and nothing declares it deprecated: production vetoes archiving",
    "R3": "named in candidates by the reviewer",
    "R4": "declared deprecated",
    "R5": "declared experimental",
    "R6": "active: commits in the window before the repository's newest commit",
    "R7": "excluded from the workspace",
    "R8": "the repository is quiet: age alone proposes nothing",
    "R9": "a workflow still deploys it and nothing declares it experimental or deprecated: "
    "ask its owner",
    "R10": "stale relative to the repository's own activity",
    "R11": "no evidence for archiving",
}


@dataclass
class Verdict:
    """The audit's decision on one app, with the evidence and the rule behind it."""

    app: str
    path: str
    status: str  # active | stale | experimental | deprecated
    candidate: bool
    blocked_by: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    monthly_cost: float = 0.0
    total_bytes: int = 0
    rule: str = ""
    base_confidence: str = "medium"
    evidence: list[ev.Evidence] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.candidate and bool(self.blocked_by)

    @property
    def decision(self) -> str:
        if not self.candidate:
            return "keep"
        return "blocked" if self.blocked else "archive"

    @property
    def confidence(self) -> str:
        """high / medium / low: how safely a lead can sign this decision.

        A vetoed keep or a blocked candidate is high; an archive decision loses one level
        when anything speaks against it and another when three kinds of signal do.
        """
        if self.decision != "archive":
            return "high" if self.decision == "blocked" else self.base_confidence
        against = {e.kind for e in self.against} & WEAK_AGAINST
        level = _LEVELS.index(self.base_confidence) - bool(against) - (len(against) >= 3)
        return _LEVELS[max(0, level)]

    @property
    def evidence_for(self) -> list[ev.Evidence]:
        return [e for e in self.evidence if e.stance == ev.FOR]

    @property
    def against(self) -> list[ev.Evidence]:
        return [e for e in self.evidence if e.stance == ev.AGAINST]

    def rule_text(self) -> str:
        return f"{self.rule}: {RULES[self.rule]}" if self.rule else ""


@dataclass
class Classification:
    """Verdicts for every app of an :class:`Inventory`."""

    inventory: Inventory
    verdicts: dict[str, Verdict]
    explicit: bool = False

    def names(self, decision: str) -> list[str]:
        return [v.app for v in self.verdicts.values() if v.decision == decision]

    @property
    def candidates(self) -> list[str]:
        """Apps to archive: candidates nothing kept depends on."""
        return self.names("archive")

    @property
    def blocked(self) -> dict[str, list[str]]:
        """Blocked candidate -> the kept apps/packages that depend on it."""
        return {v.app: sorted(v.blocked_by) for v in self.verdicts.values() if v.blocked}

    @property
    def bytes_reclaimable(self) -> int:
        """Bytes (source + dependencies/build output) leaving the apps tree."""
        return sum(self.verdicts[n].total_bytes for n in self.candidates)

    @property
    def monthly_saving_usd(self) -> float:
        return round(sum(self.verdicts[n].monthly_cost for n in self.candidates), 2)

    @property
    def statement(self) -> str:
        """The repository-level sentence for the top of the report."""
        return self.inventory.statement()

    def summary(self) -> dict[str, Any]:
        """Headline numbers: apps before/after, candidates, blocked, bytes and dollars."""
        after = [v for v in self.verdicts.values() if v.decision != "archive"]
        act = self.inventory.activity
        return {
            "apps_before": len(self.verdicts),
            "apps_after": len(after),
            "active_after": sum(v.status == "active" for v in after),
            "candidates": self.candidates,
            "blocked": self.blocked,
            "bytes_reclaimable": self.bytes_reclaimable,
            "monthly_saving_usd": self.monthly_saving_usd,
            "repo_quiet": self.inventory.quiet,
            "statement": self.statement,
            "newest_commit": act.newest.date().isoformat() if act and act.newest else None,
            "confidence": {n: self.verdicts[n].confidence for n in self.candidates},
        }

    def frame(self) -> pd.DataFrame:
        """The dry-run table: one row per app with its decision, confidence, rule and the
        evidence for and against in words (each item with its source line)."""
        return pd.DataFrame(
            [
                {
                    "app": v.app,
                    "status": v.status,
                    "decision": v.decision,
                    "confidence": v.confidence,
                    "rule": v.rule_text(),
                    "evidence_for": "; ".join(e.words() for e in v.evidence_for),
                    "evidence_against": "; ".join(
                        [e.words() for e in v.against]
                        + [f"blocked: {d} depends on it ({w})" for d, w in v.blocked_by.items()]
                    ),
                    "monthly_usd": v.monthly_cost,
                    "size_mb": round(v.total_bytes / 1e6, 3),
                    "reasons": "; ".join(v.reasons),
                }
                for v in self.verdicts.values()
            ],
            columns=[
                "app",
                "status",
                "decision",
                "confidence",
                "rule",
                "evidence_for",
                "evidence_against",
                "monthly_usd",
                "size_mb",
                "reasons",
            ],
        )

    def matrix(self) -> pd.DataFrame:
        """Apps x evidence families: each cell is for / against / mixed / info / ''."""
        rows = []
        for v in self.verdicts.values():
            row: dict[str, Any] = {"app": v.app}
            for fam in ev.FAMILIES:
                stances = {e.stance for e in v.evidence if e.family == fam}
                if fam == "dependants" and v.blocked_by:
                    stances.add(ev.AGAINST)
                row[fam] = _cell(stances)
            row["decision"] = v.decision
            row["confidence"] = v.confidence
            rows.append(row)
        return pd.DataFrame(rows, columns=["app", *ev.FAMILIES, "decision", "confidence"])


def _cell(stances: set[str]) -> str:
    if ev.FOR in stances and ev.AGAINST in stances:
        return "mixed"
    for stance in (ev.FOR, ev.AGAINST, ev.INFO):
        if stance in stances:
            return stance
    return ""


def _status(app: App) -> str:
    kinds = {e.kind for e in app.evidence if e.stance != ev.INFO}
    if "deprecated" in kinds:
        return "deprecated"
    if app.markers or kinds & {"experimental", "deprecated-marker"}:
        return "experimental"
    return "active" if app.commits_recent else "stale"


def decide(app: App, quiet: bool, named: bool) -> tuple[bool, str, str]:
    """(candidate, rule id, base confidence) for one app from its evidence.

    The rules (:data:`RULES`) are tried in order; vetoes (public package, production)
    come first and even a reviewer's explicit choice does not pass them.
    """
    kinds = {e.kind for e in app.evidence if e.stance != ev.INFO}
    explicit_deprecation = "deprecated" in kinds
    deprecated = explicit_deprecation or "deprecated-marker" in kinds
    if kinds & {"public", "release"} and not explicit_deprecation:
        return False, "R1", "high"
    if kinds & {"prod-deploy", "lifecycle-production"} and not deprecated:
        return False, "R2", "high"
    if named:
        return True, "R3", "high"
    if deprecated:
        return True, "R4", "high"
    if "experimental" in kinds:
        return True, "R5", "medium" if "active" in kinds else "high"
    if "active" in kinds:
        return False, "R6", "high"
    if "excluded" in kinds:
        return True, "R7", "medium"
    if quiet:
        return False, "R8", "medium"
    if "deploy" in kinds:
        return False, "R9", "medium"
    if kinds & {"stale", "never"}:
        return True, "R10", "medium"
    return False, "R11", "medium"


def _resolve_candidates(inv: Inventory, candidates: list[str] | None) -> set[str] | None:
    if candidates is None:
        return None
    if isinstance(candidates, str):
        raise ConfigError(
            f"candidates must be a list of app names, got the string {candidates!r}",
            hint='write candidates = ["orchestrator", "flan-router"] (or None for automatic)',
        )
    return {inv.app(ref).name for ref in candidates}


def classify(
    inv: Inventory,
    candidates: list[str] | None = None,
    cost_per_app_month: dict[str, float] | float | None = None,
) -> Classification:
    """Decide keep / archive / blocked for every app of ``inv``, with evidence and a rule.

    Without ``candidates`` the rules of :func:`decide` choose; with an explicit list only
    those apps are candidates (unknown names raise :class:`UnknownCandidate`), still
    subject to the public-package and production vetoes. A candidate that a kept app or
    shared package depends on is blocked, naming its dependants.
    """
    explicit = _resolve_candidates(inv, candidates)
    verdicts: dict[str, Verdict] = {}
    for app in inv.apps:
        named = explicit is not None and app.name in explicit
        cand, rule, base = decide(app, inv.quiet, named)
        if explicit is not None and not named:
            cand, rule, base = False, "R11", "medium"
        cost = monthly_cost(app, cost_per_app_month)
        verdicts[app.name] = Verdict(
            app.name,
            app.path,
            _status(app),
            cand,
            {},
            [],
            cost,
            app.total_bytes,
            rule,
            base,
            list(app.evidence),
        )
    _block(inv, verdicts)
    for v in verdicts.values():
        _settle(v, verdicts)
    return Classification(inv, verdicts, explicit is not None)


def _settle(v: Verdict, verdicts: dict[str, Verdict]) -> None:
    """Dependants archived in the same batch stop counting; write the reasons in words."""
    settled = []
    for e in v.evidence:
        dep = e.text.removesuffix(" uses it") if e.kind == "dependant" else None
        if dep in verdicts and verdicts[dep].decision == "archive":
            e = replace(e, stance=ev.INFO, text=f"{dep} uses it (archived with it)")
        settled.append(e)
    v.evidence = settled
    v.reasons = [
        v.rule_text(),
        *(e.words() for e in v.evidence_for),
        *(f"against: {e.words()}" for e in v.against),
        *v.reasons,
    ]


def _block(inv: Inventory, verdicts: dict[str, Verdict]) -> None:
    """Block candidates depended on by anything kept, until nothing changes."""
    nodes = {n.name: n for n in inv.nodes()}
    changed = True
    while changed:
        changed = False
        for v in verdicts.values():
            if not v.candidate:
                continue
            for dependant, why in nodes[v.app].dependants.items():
                kept = dependant not in verdicts or verdicts[dependant].decision != "archive"
                if kept and dependant not in v.blocked_by:
                    v.blocked_by[dependant] = why
                    v.reasons.append(f"blocked: {dependant} depends on it ({why})")
                    changed = True
