"""What must be true before a migration is approved, computed from the dry run."""

from __future__ import annotations

from opsbook.checklist import Check, Checklist
from opsbook.migrate.run import Plan


def checklist(plan: Plan) -> Checklist:
    """The checks a reviewer answers before approving the live run of ``plan``.

    >>> checklist(opsbook.migrate.plan(chroma_path="store")).ok  # doctest: +SKIP
    True
    """
    cfg = plan.config
    names = [c.info.name for c in plan.collections]
    broken = [f"{c.info.name} ({c.findings.errors})" for c in plan.collections if c.findings.errors]
    no_shape = [c.info.name for c in plan.collections if not c.info.dim or not c.info.distance]
    switching = [
        f"{c.alias} (now -> {c.current})" if c.current else f"{c.alias} (new)"
        for c in plan.collections
    ]
    if cfg.sample_queries > 0 or not cfg.cutover:
        queries = f"{cfg.sample_queries} sample queries" if cfg.sample_queries else "no cutover"
        search: tuple[bool | None, str] = (True, queries)
    elif cfg.allow_unverified_search:
        search = (None, "sample_queries=0 and unverified search allowed: judge it yourself")
    else:
        search = (False, "sample_queries=0 without allow_unverified_search: cutover refuses")
    checks = [
        Check(
            "there are records to migrate",
            plan.total_records > 0,
            f"{plan.total_records} records in {len(names)} collection(s): {', '.join(names)}; "
            f"estimated ~{plan.estimated_s:.0f} s",
        ),
        Check(
            "every record was read and validated without a blocking finding",
            plan.ok,
            f"errors: {', '.join(broken)}" if broken else "no errors",
        ),
        Check(
            "every collection has a vector size and a distance Qdrant supports",
            not no_shape,
            f"unknown for: {', '.join(no_shape)}" if no_shape else "yes",
        ),
        Check(
            "the source is backed up before anything is written",
            cfg.backup,
            cfg.backup_dir if cfg.backup else "backup=False",
        ),
        Check("search is verified against exact search before the cutover", *search),
        Check(
            "the aliases to switch are the ones you expect",
            None if cfg.cutover else True,
            ", ".join(switching) if cfg.cutover else "cutover=False: no alias changes",
        ),
    ]
    return Checklist(f"migrate {plan.total_records} records to {plan.target}", checks)
