"""Archive apply and restore each write exactly one action record; planning writes none."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from opsbook import audit
from opsbook.archive import DEMO_NOW, apply_archive, classify, inventory, plan_archive, restore

from .helpers import git_out


def action_records(root: Path) -> list[dict]:
    order = {e["run_id"]: e["seq"] for e in audit.read_ledger(root)}
    found = [r for r in audit.list_runs(root) if r.get("kind") == "action"]
    return sorted(found, key=lambda r: order.get(r["run_id"], 0))


def test_apply_then_restore_write_one_record_each(demo: Path) -> None:
    root = Path(os.environ["OPSBOOK_AUDIT_DIR"])
    plan = plan_archive(classify(inventory(demo, now=DEMO_NOW)), day=date(2026, 11, 28))
    assert action_records(root) == []  # inventory, classify and plan change nothing
    result = apply_archive(plan)
    [applied] = action_records(root)
    assert applied["action"] == "archive.apply"
    assert applied["target"] == str(demo)
    assert applied["summary"]["commit"] == result.commit_sha
    assert [m["app"] for m in applied["summary"]["apps_moved"]] == result.archived
    assert applied["summary"]["apps_moved"][0]["to"].startswith("archive/2026-11-28")
    assert applied["production"] is False  # the demo repo has no remote
    restored = restore(demo, result.archived[0])
    records = action_records(root)
    assert [r["action"] for r in records] == ["archive.apply", "archive.restore"]
    assert records[1]["summary"]["commit"] == restored.commit_sha
    assert records[1]["summary"]["app"] == result.archived[0]
    assert audit.verify(root) == []


def test_apply_with_nothing_to_move_writes_no_record(demo: Path) -> None:
    root = Path(os.environ["OPSBOOK_AUDIT_DIR"])
    plan = plan_archive(classify(inventory(demo, now=DEMO_NOW)), day=date(2026, 11, 28))
    plan.moves = []
    head = git_out(demo, "rev-parse", "HEAD")
    apply_archive(plan)
    assert git_out(demo, "rev-parse", "HEAD") == head
    assert action_records(root) == []
