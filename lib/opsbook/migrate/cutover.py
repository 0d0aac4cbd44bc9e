"""Atomic alias switches, their journal, rollback and explicit cleanup.

Cutover points every alias (named after its source collection) at its verified
staging collection in ONE ``update_collection_aliases`` call. The previous collections
stay untouched; the journal (a JSON file in the work dir, one per target) remembers
what each alias pointed at, so :func:`rollback` switches them all back in one call.
Nothing is deleted until :func:`cleanup` is asked for explicitly.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from opsbook.migrate.errors import TargetConflict
from opsbook.migrate.target import Target


def journal_path(work_dir: Path, target: Target) -> Path:
    key = hashlib.sha256(target.identity.encode()).hexdigest()[:12]
    return Path(work_dir) / f"cutover-journal-{key}.json"


def read_journal(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def _write_journal(path: Path, entries: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)


def check_alias_name(target: Target, alias: str, size: int, distance: str) -> None:
    """Refuse an alias name held by a plain collection or by a different-shaped collection."""
    current = target.params(alias)
    if current is not None and current != (size, distance):
        raise TargetConflict(
            f"target {alias!r} exists with size {current[0]} and distance {current[1]}; "
            f"the source has size {size} and distance {distance}",
            hint=f"drop or rename {alias!r} in Qdrant, or map it elsewhere with target_names",
        )
    if alias in target.collections():
        raise TargetConflict(
            f"{alias!r} is a collection in the target, so it cannot become an alias",
            hint=f"map it elsewhere with target_names={{'{alias}': '{alias}_live'}} or rename it",
        )


def cutover(target: Target, work_dir: Path, switches: dict[str, str], label: str = "") -> dict:
    """Point each alias at its new collection, all at once; journal the previous state.

    Aliases already pointing at their new collection are left out (a repeated cutover is a
    no-op, so a rollback never "undoes" it onto itself). ``label`` tags the journal entry,
    so a runbook's rollback step can undo only its own run's cutover.
    """
    before = target.aliases()
    changes = {a: c for a, c in sorted(switches.items()) if before.get(a) != c}
    entry = {
        "at": time.time(),
        "target": target.identity,
        "label": label,
        "rolled_back": False,
        "switches": [{"alias": a, "from": before.get(a), "to": c} for a, c in changes.items()],
    }
    if not changes:
        return entry
    path = journal_path(work_dir, target)
    entries = read_journal(path)
    target.switch_aliases(list(changes.items()))
    _write_journal(path, [*entries, entry])
    return entry


def rollback(target: Target, work_dir: Path, label: str = "") -> list[dict]:
    """Undo the last cutover not yet rolled back (one atomic call); [] when there is none.

    With ``label``, only a cutover journalled under that label is considered.
    """
    path = journal_path(work_dir, target)
    entries = read_journal(path)
    pending = [
        e for e in entries if not e["rolled_back"] and (not label or e.get("label") == label)
    ]
    if not pending:
        return []
    entry = pending[-1]
    gone = [s["from"] for s in entry["switches"] if s["from"] and not target.exists(s["from"])]
    if gone:
        raise TargetConflict(
            f"cannot roll back: collection(s) {gone} no longer exist (removed by a cleanup?)",
            hint="the aliases were left as they are; migrate again from the source backup",
        )
    target.switch_aliases([(s["alias"], s["from"]) for s in entry["switches"]])
    entry["rolled_back"] = True
    entry["rolled_back_at"] = time.time()
    _write_journal(path, entries)
    return [{"alias": s["alias"], "from": s["to"], "to": s["from"]} for s in entry["switches"]]


def cleanup(target: Target, work_dir: Path) -> list[str]:
    """Delete what the journal shows is no longer live: collections a cutover replaced,
    and collections whose cutover was rolled back. Anything behind an alias is kept."""
    entries = read_journal(journal_path(work_dir, target))
    live = set(target.aliases().values())
    replaced = {s["from"] for e in entries if not e["rolled_back"] for s in e["switches"]}
    abandoned = {s["to"] for e in entries if e["rolled_back"] for s in e["switches"]}
    deleted = []
    for name in sorted((replaced | abandoned) - live - {None}):
        if target.exists(name):
            target.delete_collection(name)
            deleted.append(name)
    return deleted
