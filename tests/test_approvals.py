"""Gates with min_approvals from distinct users and an optional approvers list."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook import audit, execute

TWO_OF = """
name: two-person
steps:
  - id: gate
    gate: approval
    message: "ship it?"
    min_approvals: 2
{approvers}
"""


def opts(audit_dir: Path, **kw) -> execute.RunOptions:
    return execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None, **kw)


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("LOGNAME", name)  # what getpass.getuser() reads first


def test_min_approvals_counts_distinct_users(
    write_runbook, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_runbook(TWO_OF.format(approvers=""))
    as_user(monkeypatch, "alice")
    first = execute.run(path, {}, opts(audit_dir, approve={"gate"}))
    assert first.status == "awaiting_approval"
    assert first.data["steps"][0]["approved_by"] == [audit.whoami()]
    # the same user approving again does not count
    again = execute.resume(first.run_id, opts(audit_dir, approve={"gate"}))
    assert again.status == "awaiting_approval"
    assert len(again.data["approvals"]) == 1
    as_user(monkeypatch, "bob")
    done = execute.resume(again.run_id, opts(audit_dir, approve={"gate"}))
    assert done.status == "succeeded"
    users = [a["by"].split("@")[0] for a in done.data["approvals"]]
    assert users == ["alice", "bob"]
    # the approvals are inside the (signed) ledger entry, not only in run.json
    entry = audit.read_ledger(audit_dir)[-1]
    assert [a["by"].split("@")[0] for a in entry["approvals"]] == ["alice", "bob"]
    assert {a["via"] for a in entry["approvals"]} == {"--approve"}
    assert audit.verify(audit_dir) == []


def test_approvers_list_limits_who_counts(
    write_runbook, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_runbook(TWO_OF.format(approvers="    approvers: [alice, carol]"))
    as_user(monkeypatch, "alice")
    first = execute.run(path, {}, opts(audit_dir, approve={"gate"}))
    as_user(monkeypatch, "mallory")
    second = execute.resume(first.run_id, opts(audit_dir, approve={"gate"}))
    assert second.status == "awaiting_approval"
    gate = second.data["steps"][0]
    assert [a["by"].split("@")[0] for a in gate["refused_approvals"]] == ["mallory"]
    assert len(second.data["approvals"]) == 1
    as_user(monkeypatch, "carol")
    third = execute.resume(second.run_id, opts(audit_dir, approve={"gate"}))
    assert third.status == "succeeded"


def test_more_approvals_than_approvers_is_invalid(write_runbook) -> None:
    from opsbook.runbook import load, validate

    path = write_runbook(TWO_OF.format(approvers="    approvers: [alice]"))
    problems = validate(load(path))
    assert len(problems) == 1
    assert problems[0].endswith(
        "step 'gate': min_approvals=2 but only 1 distinct approvers are allowed"
    )
