"""Writing (tuned) Loki rules writes one action record naming the rules changed."""

from __future__ import annotations

import os
from pathlib import Path

from opsbook import audit
from opsbook.loki.rules import parse_rules, with_thresholds, write_rules

RULES = {
    "groups": [
        {
            "name": "api",
            "rules": [
                {"alert": "HighErrors", "expr": 'sum(rate({app="api"} |= "error" [5m])) > 10'},
                {"alert": "Quiet", "expr": 'sum(rate({app="api"}[5m])) < 1'},
            ],
        }
    ]
}


def action_records(root: Path) -> list[dict]:
    order = {e["run_id"]: e["seq"] for e in audit.read_ledger(root)}
    found = [r for r in audit.list_runs(root) if r.get("kind") == "action"]
    return sorted(found, key=lambda r: order.get(r["run_id"], 0))


def test_write_then_tune_records_added_then_changed(tmp_path: Path) -> None:
    root = Path(os.environ["OPSBOOK_AUDIT_DIR"])
    groups = parse_rules(RULES)
    path = write_rules(groups, tmp_path / "rules.yaml")
    [first] = action_records(root)
    assert first["action"] == "loki.write_rules"
    assert first["summary"]["added"] == ["api/HighErrors", "api/Quiet"]
    assert first["summary"]["changed"] == [] and first["summary"]["removed"] == []
    write_rules(with_thresholds(groups, {"HighErrors": 25.0}), path, header="tuned")
    second = action_records(root)[1]
    assert second["summary"]["added"] == []
    assert [c["rule"] for c in second["summary"]["changed"]] == ["api/HighErrors"]
    assert second["summary"]["changed"][0]["after"].endswith("> 25")
    assert audit.verify(root) == []
