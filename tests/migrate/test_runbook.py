"""The runbook validates, and runs dry run → gate → migrate → cutover on a small demo store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import runbook
from opsbook.execute import RunOptions, run
from opsbook.migrate.target import open_target

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "runbooks" / "migrate-chroma-to-qdrant.yaml"


def test_runbook_validates_against_the_notebook() -> None:
    loaded = runbook.load(RUNBOOK)
    assert runbook.validate(loaded) == []
    assert loaded.runbook.rollback_step_ids == {"rollback"}


@pytest.mark.notebooks
@pytest.mark.slow
def test_runbook_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOOK_AUDIT_DIR", str(tmp_path / "audit"))
    opts = RunOptions(
        approve={"approve"},
        root=tmp_path / "audit",
        work_root=tmp_path / "work",
        progress_bar=False,
        echo=lambda _msg: None,
    )
    result = run(RUNBOOK, {"demo_docs": 400}, opts)
    assert result.status == "succeeded", result.data
    steps = {s["id"]: s for s in result.data["steps"]}
    assert (
        steps["rollback"]["status"] in ("skipped", "not_run", "pending") or "rollback" not in steps
    )
    work = Path(result.data["work_dir"])
    with open_target("local", work / "qdrant") as target:
        aliases = target.aliases()
    assert set(aliases) == {"support-articles", "product-docs", "release-notes"}
    assert all(v.startswith(k + "__") for k, v in aliases.items())
