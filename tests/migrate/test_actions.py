"""A live migration, a rollback and a cleanup each write exactly one action record; a dry
run and a rollback with nothing to undo write none."""

from __future__ import annotations

import os
from pathlib import Path

from opsbook import audit
from opsbook.migrate import cleanup, migrate, rollback


def action_records(root: Path) -> list[dict]:
    order = {e["run_id"]: e["seq"] for e in audit.read_ledger(root)}
    found = [r for r in audit.list_runs(root) if r.get("kind") == "action"]
    return sorted(found, key=lambda r: order.get(r["run_id"], 0))


def test_migrate_rollback_cleanup_each_write_one_record(demo_store: Path, tmp_path: Path) -> None:
    root = Path(os.environ["OPSBOOK_AUDIT_DIR"])
    work = tmp_path / "work"
    common = {"chroma_path": str(demo_store), "work_dir": str(work)}
    migrate(**common)  # dry run
    assert action_records(root) == []

    result = migrate(**common, dry_run=False, backup=False)
    [migrated] = action_records(root)
    assert migrated["action"] == "migrate.migrate"
    assert migrated["parameters"]["dry_run"] is False
    assert migrated["parameters"]["work_dir"] == str(work)
    written = {n: c["records_written"] for n, c in migrated["summary"]["collections"].items()}
    assert written == {r.info.name: r.info.count for r in result.collections}
    assert migrated["summary"]["integrity_ok"] is True
    aliases = {s["alias"]: (s["from"], s["to"]) for s in migrated["summary"]["aliases"]}
    assert aliases == {r.alias: (None, r.staging) for r in result.collections}

    # a second migration moves every alias from the first staging copy to a new one
    second = migrate(**common, dry_run=False, backup=False)
    switched = rollback(work_dir=str(work))
    assert {s["alias"]: s["to"] for s in switched} == {
        r.alias: r.staging for r in result.collections
    }
    assert rollback(work_dir=str(work), run_label="no-such-label") == []  # nothing: no record
    deleted = cleanup(work_dir=str(work))
    assert sorted(deleted) == sorted(r.staging for r in second.collections)
    records = action_records(root)
    assert [r["action"] for r in records] == [
        "migrate.migrate",
        "migrate.migrate",
        "migrate.rollback",
        "migrate.cleanup",
    ]
    assert records[2]["summary"]["aliases"] == switched
    assert records[3]["summary"]["deleted_collections"] == deleted
    assert audit.verify(root) == []
