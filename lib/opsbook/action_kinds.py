"""Which library calls write action records, and what each record says.

One :class:`~opsbook.actions.ActionSpec` per changing call. The domain function carries
only ``@recorded("<name>")``; what to record (parameters, target, what changed) lives
here, read from the call's arguments and its result, so domain modules stay unaware of
the audit trail.

==================  =============================================  ==========================
action              call                                           what the summary holds
==================  =============================================  ==========================
archive.apply       ``archive.apply_archive(plan)``                apps moved, commit, sizes
archive.restore     ``archive.restore(repo, app)``                 app, from → to, commit
migrate.migrate     ``migrate.migrate(dry_run=False)``             records per collection,
                                                                   integrity, aliases before
                                                                   → after (the cutover)
migrate.rollback    ``migrate.rollback(...)``                      aliases before → after
migrate.cleanup     ``migrate.cleanup(...)``                       collections deleted
loki.write_rules    ``loki.rules.write_rules(groups, path)``       rules added, changed,
                                                                   removed
pubsub.config_set   ``CONFIG SET`` in ``pubsub_output_limit``      setting, before → after
==================  =============================================  ==========================
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from opsbook.actions import ActionSpec, record_action

# ------------------------------------------------------------------------- archive


def _repo_has_remote(repo: Any) -> bool:
    """An archive commit in a repository with a remote is meant to be pushed: production."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "remote"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.stdout.strip())


def _apply_params(a: dict[str, Any]) -> dict[str, Any]:
    plan = a["plan"]
    return {
        "repo": str(plan.repo),
        "archive_dir": plan.archive_dir,
        "apps": [m.app for m in plan.moves],
        "commit": a["commit"],
        "prune": a["prune"],
    }


def _apply_summary(result: Any, a: dict[str, Any]) -> dict[str, Any]:
    return {
        "apps_moved": [{"app": m.app, "from": m.src, "to": m.dst} for m in a["plan"].moves],
        "commit": result.commit_sha,
        "apps_before": result.apps_before,
        "apps_after": result.apps_after,
        "bytes_freed": result.bytes_freed,
        "edited_files": result.edited_files,
        "workflows_archived": result.workflows_archived,
    }


def _restore_summary(result: Any, a: dict[str, Any]) -> dict[str, Any]:
    return {
        "app": result.app,
        "from": result.from_path,
        "to": result.path,
        "commit": result.commit_sha,
        "entries_restored": result.entries_restored,
        "workflows_restored": result.workflows_restored,
    }


# ------------------------------------------------------------------------- migrate


def _migrate_target(a: dict[str, Any]) -> str:
    cfg = a["cfg"]
    return cfg.qdrant_url or f"{cfg.target}:{cfg.qdrant_path}"


def _migrate_params(a: dict[str, Any]) -> dict[str, Any]:
    cfg = a["cfg"]
    return asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))


def _migrate_summary(result: Any, a: dict[str, Any]) -> dict[str, Any]:
    switches = (result.cutover_entry or {}).get("switches", []) if result.cutover_done else []
    return {
        "collections": {
            r.info.name: {
                "records_written": sum(b.records for b in r.batches),
                "records_total": r.info.count,
                "resumed_from": r.resumed_from,
                "staging": r.staging,
                "verified": None if r.report is None else r.report.ok,
            }
            for r in result.collections
        },
        "integrity_ok": result.integrity_ok,
        "backup": result.backup_path,
        "cutover_done": result.cutover_done,
        "aliases": switches,
    }


def _switched(result: Any) -> bool:
    return bool(result)


# ---------------------------------------------------------------------------- loki


def _rules_by_name(path: Path) -> dict[str, str]:
    from opsbook.loki.rules import load_rules

    if not path.is_file():
        return {}
    try:
        groups = load_rules(path, check_exprs=False)
    except Exception:  # an unreadable old file: everything counts as added
        return {}
    return {f"{g.name}/{r.name}": r.expr for g in groups for r in g.rules}


def _rules_summary(result: Any, a: dict[str, Any]) -> dict[str, Any]:
    before: dict[str, str] = a["_before"]
    after = {f"{g.name}/{r.name}": r.expr for g in a["groups"] for r in g.rules}
    return {
        "path": str(Path(result).resolve()),
        "groups": len(a["groups"]),
        "rules": len(after),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": [
            {"rule": n, "before": before[n], "after": after[n]}
            for n in sorted(set(before) & set(after))
            if before[n] != after[n]
        ],
    }


# -------------------------------------------------------------------------- pubsub


def record_config_set(bench: Any, setting: str, before: str, after: str) -> str:
    """One action record for a ``CONFIG SET`` the pub/sub harness made on ``bench``'s Redis."""
    endpoint = bench.endpoint
    url = endpoint.label
    return record_action(
        "pubsub.config_set",
        parameters={"redis": url, "setting": setting, "value": after},
        summary={"setting": setting, "before": before, "after": after},
        target=url,
        production=not endpoint.params.single_host,
    )


SPECS: dict[str, ActionSpec] = {
    "archive.apply": ActionSpec(
        name="archive.apply",
        params=_apply_params,
        summary=_apply_summary,
        target=lambda a: str(a["plan"].repo),
        production=lambda a: _repo_has_remote(a["plan"].repo),
        changed=lambda r: bool(r.archived),
    ),
    "archive.restore": ActionSpec(
        name="archive.restore",
        params=lambda a: {k: str(v) for k, v in a.items() if not k.startswith("_")},
        summary=_restore_summary,
        target=lambda a: str(a["repo_path"]),
        production=lambda a: _repo_has_remote(a["repo_path"]),
    ),
    "migrate.migrate": ActionSpec(
        name="migrate.migrate",
        params=_migrate_params,
        summary=_migrate_summary,
        target=_migrate_target,
        secret_env=lambda a: [a["cfg"].qdrant_api_key_env],
    ),
    "migrate.rollback": ActionSpec(
        name="migrate.rollback",
        params=_migrate_params,
        summary=lambda r, a: {"aliases": r},
        target=_migrate_target,
        changed=_switched,
        secret_env=lambda a: [a["cfg"].qdrant_api_key_env],
    ),
    "migrate.cleanup": ActionSpec(
        name="migrate.cleanup",
        params=_migrate_params,
        summary=lambda r, a: {"deleted_collections": r},
        target=_migrate_target,
        changed=_switched,
        secret_env=lambda a: [a["cfg"].qdrant_api_key_env],
    ),
    "loki.write_rules": ActionSpec(
        name="loki.write_rules",
        params=lambda a: {"path": str(a["path"]), "header": a["header"]},
        summary=_rules_summary,
        target=lambda a: str(Path(a["path"]).resolve()),
        before=lambda a: _rules_by_name(Path(a["path"])),
    ),
}
