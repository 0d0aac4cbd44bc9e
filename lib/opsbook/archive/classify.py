"""Classify inventoried apps (active / stale / experimental), pick archive candidates and
block any candidate that something kept still depends on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

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


@dataclass
class Verdict:
    """The audit's decision on one app, with the reasons a reviewer needs."""

    app: str
    path: str
    status: str  # active | stale | experimental
    candidate: bool
    blocked_by: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    monthly_cost: float = 0.0
    total_bytes: int = 0

    @property
    def blocked(self) -> bool:
        return self.candidate and bool(self.blocked_by)

    @property
    def decision(self) -> str:
        if not self.candidate:
            return "keep"
        return "blocked" if self.blocked else "archive"


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

    def summary(self) -> dict[str, Any]:
        """Headline numbers: apps before/after, candidates, blocked, bytes and dollars."""
        after = [v for v in self.verdicts.values() if v.decision != "archive"]
        return {
            "apps_before": len(self.verdicts),
            "apps_after": len(after),
            "active_after": sum(v.status == "active" for v in after),
            "candidates": self.candidates,
            "blocked": self.blocked,
            "bytes_reclaimable": self.bytes_reclaimable,
            "monthly_saving_usd": self.monthly_saving_usd,
        }

    def frame(self) -> pd.DataFrame:
        """One row per app: status, decision and the reasons behind it."""
        return pd.DataFrame(
            [
                {
                    "app": v.app,
                    "status": v.status,
                    "decision": v.decision,
                    "monthly_usd": v.monthly_cost,
                    "size_mb": round(v.total_bytes / 1e6, 3),
                    "reasons": "; ".join(v.reasons),
                }
                for v in self.verdicts.values()
            ]
        )


def _status(app: App, inv: Inventory) -> tuple[str, list[str]]:
    reasons: list[str] = []
    if app.last_commit is None:
        stale = True
        reasons.append("no commits touch it in history")
    else:
        age = (inv.now - app.last_commit).days
        stale = app.commits_recent == 0
        reasons.append(
            f"last commit {app.last_commit.date()} by {app.last_author} ({age} days ago)"
        )
        if not stale:
            reasons.append(
                f"{app.commits_recent} commits by {len(app.authors_recent)} author(s) in the "
                f"last {inv.staleness_days} days"
            )
        else:
            reasons.append(f"no commits in the last {inv.staleness_days} days")
    for marker, where in app.markers.items():
        reasons.append(f"marker '{marker}' in {where}")
    if app.markers:
        return "experimental", reasons
    return ("stale" if stale else "active"), reasons


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
    """Decide keep / archive / blocked for every app of ``inv``, with reasons.

    Without ``candidates`` every stale or experimental app is a candidate; with an explicit
    list only those are (unknown names raise :class:`UnknownCandidate`). A candidate that a
    kept app or shared package depends on is blocked, naming its dependants.
    """
    explicit = _resolve_candidates(inv, candidates)
    verdicts: dict[str, Verdict] = {}
    for app in inv.apps:
        status, reasons = _status(app, inv)
        cand = (app.name in explicit) if explicit is not None else status != "active"
        if explicit is not None and cand:
            reasons.append("named in candidates")
        cost = monthly_cost(app, cost_per_app_month)
        if app.deploy_configs:
            reasons.append(f"deploy configs: {', '.join(app.deploy_configs)} (~${cost:g}/month)")
        verdicts[app.name] = Verdict(
            app.name, app.path, status, cand, {}, reasons, cost, app.total_bytes
        )
    _block(inv, verdicts)
    return Classification(inv, verdicts, explicit is not None)


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
