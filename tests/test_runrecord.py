"""The typed run record: round trip, enum refusal, old records, JSON Schema, one context."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsbook import audit, runrecord
from opsbook.cli import cli
from opsbook.errors import ExitCode, RecordError
from opsbook.runrecord import (
    ActionRecord,
    Approval,
    RunbookRef,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)

ROOT = Path(__file__).resolve().parents[1]
#: An audit root written by opsbook before the typed record (main ae21bb3): a run stopped
#: at a gate, its resumed run (carried, approved, skipped and failed steps) and an action.
OLD_AUDIT = ROOT / "tests" / "fixtures" / "old-audit"
OLD_STOPPED = "20261130T070413Z-old-format-c4f18e"
OLD_RESUMED = "20261130T070427Z-old-format-ac33b0"
OLD_ACTION = "20261130T070440Z-action-demo-change-86c147"


def _record(**fields: object) -> RunRecord:
    base: dict[str, object] = {
        "schema": 1,
        "run_id": "r1",
        "runbook": {"name": "rb", "description": "", "path": "rb.yaml", "sha256": "0" * 64},
        "status": "running",
        "parameters": {"a": 3},
        "user": "alice@host",
        "steps": [],
        "approvals": [],
    }
    return runrecord.parse_run(base | fields)


@pytest.fixture
def old_audit(tmp_path: Path, keydir: Path) -> Path:
    root = tmp_path / "old-audit"
    shutil.copytree(OLD_AUDIT, root)
    return root


# ------------------------------------------------------------------------ round trip


def test_round_trip_keeps_every_field_set_and_nothing_else() -> None:
    record = _record(
        steps=[
            {"id": "first", "kind": "notebook", "status": "succeeded", "outputs": {"n": 2}},
            {"id": "gate", "kind": "gate", "status": "awaiting_approval", "approved_by": []},
        ],
        ended_at=None,
    )
    data = record.to_json()
    assert data["status"] == "running" and data["ended_at"] is None
    assert "error" not in data and "exit_code" not in data  # never set: never written
    assert data["steps"][1] == {
        "id": "gate",
        "kind": "gate",
        "approved_by": [],
        "status": "awaiting_approval",
    }
    again = runrecord.parse(json.loads(record.to_text()))
    assert again == record and again.to_text() == record.to_text()
    assert isinstance(again, RunRecord) and again.steps[0].status is StepStatus.SUCCEEDED


def test_step_keys_are_written_in_the_order_the_runner_sets_them() -> None:
    record = _record(
        steps=[
            {
                "status": "succeeded",
                "parameters": {},
                "started_at": "t0",
                "uses": {"path": "m.yaml", "name": "m", "sha256": "0" * 64},
                "kind": "runbook",
                "id": "m",
            },
            {"reason": "when: false", "status": "skipped", "parent": "m", "id": "m.a"},
            {"status": "failed", "attempts": [], "kind": "notebook", "id": "b", "outputs": {}},
        ]
    )
    keys = [list(step) for step in record.to_json()["steps"]]
    assert keys == [
        ["id", "kind", "uses", "parameters", "started_at", "status"],
        ["id", "parent", "status", "reason"],
        ["id", "kind", "attempts", "status", "outputs"],
    ]


def test_assignments_are_validated_and_written() -> None:
    record = _record()
    record.status = RunStatus.FAILED
    record.exit_code = ExitCode.FAILED
    step = StepRecord(id="s", kind=StepKind.GATE)
    record.steps.append(step)
    step.status = StepStatus.APPROVED
    step.approval = Approval(step="s", by="bob@h", at="2026-11-30T00:00:00Z", via="--yes")
    data = record.to_json()
    assert data["status"] == "failed" and data["exit_code"] == 1
    assert data["steps"][0]["approval"]["by"] == "bob@h"
    assert "message" not in data["steps"][0]["approval"]
    with pytest.raises(ValueError, match="status"):
        step.status = "done"  # type: ignore[assignment]


def test_unknown_fields_are_kept() -> None:
    record = _record(reviewer={"name": "carol"}, steps=[{"id": "a", "flaky": True}])
    assert record.extra("reviewer") == {"name": "carol"}
    data = record.to_json()
    assert data["reviewer"] == {"name": "carol"} and data["steps"][0]["flaky"] is True


# ------------------------------------------------------------------------- refusal


def test_an_unknown_run_status_is_refused_with_a_clear_error() -> None:
    with pytest.raises(RecordError) as info:
        _record(status="finished")
    message = str(info.value)
    assert "run.json is not a valid RunRecord" in message
    assert "status: Input should be 'running', 'succeeded', 'failed' or " in message
    assert "(given 'finished')" in message
    assert info.value.exit_code == ExitCode.TAMPERED


def test_an_unknown_step_outcome_is_refused_naming_the_step() -> None:
    with pytest.raises(RecordError, match=r"steps\.1\.status: .*\(given 'passed'\)"):
        _record(steps=[{"id": "a", "status": "succeeded"}, {"id": "b", "status": "passed"}])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1], "a record is a JSON object, not list"),
        ({"run_id": "x", "status": "succeeded", "kind": "photo"}, "unknown record kind 'photo'"),
        ({"status": "succeeded"}, "run_id: Field required"),
    ],
)
def test_what_is_not_a_record_is_refused(data: object, expected: str) -> None:
    with pytest.raises(RecordError, match=expected):
        runrecord.parse(data)


def test_parse_run_refuses_an_action_record() -> None:
    action = {"kind": "action", "run_id": "a1", "status": "succeeded", "action": "x.y"}
    assert isinstance(runrecord.parse(action), ActionRecord)
    with pytest.raises(RecordError, match="a1.json is a action record, not a runbook run"):
        runrecord.parse_run(action, "a1.json")


# ----------------------------------------------------------------------- old records


def test_records_written_before_the_model_load_verify_and_write_back_byte_for_byte(
    old_audit: Path,
) -> None:
    assert audit.verify(old_audit) == []
    kinds = {}
    for folder in sorted(p for p in old_audit.iterdir() if p.is_dir()):
        stored = (folder / "run.json").read_text(encoding="utf-8")
        record = runrecord.read(folder)
        kinds[folder.name] = type(record).__name__
        assert record.to_text() == stored  # nothing dropped, nothing reordered
    assert kinds == {OLD_STOPPED: "RunRecord", OLD_RESUMED: "RunRecord", OLD_ACTION: "ActionRecord"}


def test_an_old_resumed_record_reads_as_typed_steps(old_audit: Path) -> None:
    _, record = audit.load_run_record(old_audit, OLD_RESUMED)
    assert record.status is RunStatus.FAILED and record.resumed_from == OLD_STOPPED
    statuses = [(s.id, s.status, s.original_status) for s in record.steps]
    assert statuses == [
        ("first", StepStatus.CARRIED, StepStatus.SUCCEEDED),
        ("gate", StepStatus.APPROVED, None),
        ("never", StepStatus.SKIPPED, None),
        ("broken", StepStatus.FAILED, None),
    ]
    broken = record.step("broken")
    assert broken is not None and broken.error is not None
    assert broken.error.ename == "ValueError" and broken.error.cell_index == 3
    assert [a.via for a in record.approvals] == ["--approve"]
    assert record.key_results() == {
        "total": 7,
        "label": f"run {OLD_STOPPED}",
        "n_items": 0,
        "started": True,
    }


def test_a_record_of_unknown_status_still_verifies_by_its_bytes(old_audit: Path) -> None:
    """Verification reads only the artifact list: a newer opsbook's status verifies."""
    folder = old_audit / OLD_ACTION
    data = json.loads((folder / "run.json").read_text())
    assert runrecord.artifacts_of(data) == data["artifacts"]
    assert runrecord.artifacts_of({"artifacts": {"a": 1.5}}) is None
    assert runrecord.artifacts_of(data | {"status": "paused"}) == data["artifacts"]


# --------------------------------------------------------------------------- schema


def test_the_committed_json_schema_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "run-record.schema.json").read_text(encoding="utf-8")
    assert committed == runrecord.json_schema_text(), (
        "regenerate it: opsbook schema run-record > docs/run-record.schema.json"
    )


def test_opsbook_schema_run_record_prints_it() -> None:
    result = CliRunner().invoke(cli, ["schema", "run-record"])
    assert result.exit_code == 0 and result.output == runrecord.json_schema_text()


def test_the_schema_names_the_statuses_and_accepts_the_old_records() -> None:
    import jsonschema

    schema = runrecord.json_schema()
    defs = schema["$defs"]
    assert defs["RunStatus"]["enum"] == ["running", "succeeded", "failed", "awaiting_approval"]
    assert "carried" in defs["StepStatus"]["enum"]
    validator = jsonschema.Draft202012Validator(schema)
    for folder in (p for p in OLD_AUDIT.iterdir() if p.is_dir()):
        data = json.loads((folder / "run.json").read_text())
        assert list(validator.iter_errors(data)) == []
        bad = data | {"status": "finished"}
        assert list(validator.iter_errors(bad)) != []


# -------------------------------------------------------------------------- context


def test_one_context_for_the_runner_and_the_summary(tmp_path: Path) -> None:
    from opsbook import execute, summary
    from opsbook.runbook import Step

    record = _record(
        work_dir="/w",
        steps=[
            {"id": "a", "status": "carried", "original_status": "succeeded", "outputs": {"n": 1}},
            {"id": "g", "kind": "gate", "status": "approved"},
            {"id": "s", "status": "skipped", "reason": "when: false"},
            {"id": "now"},  # the step running: not in the context yet
        ],
    )
    run = object.__new__(execute._Run)
    run.record, run.folder = record, tmp_path
    step = Step.model_validate({"id": "now", "notebook": "n.ipynb"})
    scope = execute._Scope(loaded=None, params=record.parameters)  # type: ignore[arg-type]
    runner = run._context(execute._Unit("step", step, scope, "now"))
    assert runner.pop("step") == {"id": "now", "dir": str(tmp_path / "steps" / "now")}
    assert runner == summary.context(record, tmp_path)
    assert runner == {
        "params": {"a": 3},
        "steps": {
            "a": {"outputs": {"n": 1}, "status": "succeeded"},
            "g": {"outputs": {"approved": True}, "status": "approved"},
            "s": {"outputs": {}, "status": "skipped"},
        },
        "run": {"id": "r1", "dir": str(tmp_path), "work_dir": "/w", "runbook": "rb"},
    }


def test_runbook_ref_is_required_only_to_resume() -> None:
    bare = runrecord.parse({"run_id": "x", "status": "running"})
    assert isinstance(bare, RunRecord) and bare.runbook is None and bare.title == "?"
    assert _record().runbook == RunbookRef(
        name="rb", description="", path="rb.yaml", sha256="0" * 64
    )


# --------------------------------------------------------------- listings, remote


def test_history_lists_the_old_records(old_audit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOOK_AUDIT_DIR", str(old_audit))
    result = CliRunner().invoke(cli, ["history", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["run_id"]: row for row in json.loads(result.output)}
    assert rows[OLD_RESUMED] == {
        "run_id": OLD_RESUMED,
        "kind": "run",
        "name": "old-format",
        "runbook": "old-format",
        "action": None,
        "status": "failed",
        "user": "root@vm",
        "duration_s": 11.529,
        "key_results": {
            "total": 7,
            "label": f"run {OLD_STOPPED}",
            "n_items": 0,
            "started": True,
        },
    }
    assert rows[OLD_ACTION]["name"] == "demo-change" and rows[OLD_ACTION]["kind"] == "action"
    assert rows[OLD_ACTION]["key_results"] == {"moved": 3, "origin": "python"}
    assert rows[OLD_STOPPED]["status"] == "awaiting_approval"


def test_a_record_of_another_machine_is_read_from_its_ledger_entry() -> None:
    from opsbook.cli import _history_row
    from opsbook.runrecord import RemoteRecord

    entry = {
        "seq": 3,
        "run_id": "r9",
        "status": "succeeded",
        "host": "ci-7",
        "runbook": "team",
        "user": "ci@ci-7",
        "started_at": "2026-11-30T07:00:00.000Z",
        "duration_s": 1.5,
        "key_results": {"total": 3},
    }
    record = RemoteRecord.from_entry(entry)
    assert (record.remote, record.title, record.runbook_name) == ("ci-7", "team", "team")
    assert _history_row(record)["key_results"] == {"total": 3}
    assert record.to_listing()["runbook"] == {"name": "team"}
    action = RemoteRecord.from_entry(entry | {"kind": "action", "runbook": "migrate.rollback"})
    assert action.runbook_name is None and action.ledger_name == "migrate.rollback"
    with pytest.raises(RecordError, match="ledger entry 4 describes no record"):
        RemoteRecord.from_entry({"seq": 4, "status": "succeeded"})
    with pytest.raises(RecordError, match="ledger entry 5 describes no record"):
        RemoteRecord.from_entry(entry | {"seq": 5, "status": "done"})
