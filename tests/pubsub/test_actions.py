"""Every CONFIG SET the pub/sub harness makes on Redis writes one action record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsbook import audit
from opsbook.pubsub.harness import Bench
from opsbook.pubsub.scenarios import pubsub_output_limit

pytestmark = pytest.mark.services


def action_records(root: Path) -> list[dict]:
    order = {e["run_id"]: e["seq"] for e in audit.read_ledger(root)}
    found = [r for r in audit.list_runs(root) if r.get("kind") == "action"]
    return sorted(found, key=lambda r: order.get(r["run_id"], 0))


def test_output_limit_set_and_restore_write_one_record_each(endpoint) -> None:
    root = Path(os.environ["OPSBOOK_AUDIT_DIR"])
    bench = Bench(endpoint)
    try:
        with pubsub_output_limit(bench, None):  # keeps the server's setting: no CONFIG SET
            pass
        assert action_records(root) == []
        with pubsub_output_limit(bench, "1mb 256kb 1") as limit:
            assert limit == "1mb 256kb 1"
            [set_record] = action_records(root)
        original = set_record["summary"]["before"]
        now = bench.admin.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    finally:
        bench.close()
    assert now == original
    records = action_records(root)
    assert [r["action"] for r in records] == ["pubsub.config_set", "pubsub.config_set"]
    assert records[0]["summary"]["after"] == "pubsub 1mb 256kb 1"
    assert records[1]["summary"] == {
        "setting": "client-output-buffer-limit",
        "before": "pubsub 1mb 256kb 1",
        "after": original,
    }
    assert records[0]["target"] == endpoint.label
    assert audit.verify(root) == []
