"""Running runbooks end to end over tiny notebooks: gates, resume, retries, failures."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import nbformat
import pytest

from opsbook import audit, execute, runrecord
from opsbook.errors import ConfigError, ExitCode
from opsbook.record import results

pytestmark = pytest.mark.notebooks


def opts(audit_dir: Path, **kw) -> execute.RunOptions:
    lines: list[str] = []
    return execute.RunOptions(root=audit_dir, progress_bar=False, echo=lines.append, **kw)


FLOW = """
name: flow
description: a step, a gate, a conditional step
parameters:
  a: {type: int, default: 3}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}", y: 4, items: [1, 2]}
  - id: gate
    gate: approval
    message: "total is {{ steps.first.outputs.total }}"
  - id: big
    notebook: notebooks/add.ipynb
    when: "{{ steps.first.outputs.total > 5 }}"
    parameters: {x: "{{ steps.first.outputs.total }}", label: "{{ run.id }}"}
  - id: small
    notebook: notebooks/add.ipynb
    when: "{{ steps.first.outputs.total <= 5 }}"
"""


def test_gate_stops_then_resume_continues(write_runbook, audit_dir: Path) -> None:
    path = write_runbook(FLOW)
    stopped = execute.run(path, {"a": 10}, opts(audit_dir))
    assert stopped.status == "awaiting_approval"
    assert stopped.exit_code == ExitCode.AWAITING_APPROVAL
    assert [s["status"] for s in stopped.data["steps"]] == ["succeeded", "awaiting_approval"]
    assert stopped.data["steps"][0]["outputs"] == {"total": 14, "label": "sum", "n_items": 2}

    with pytest.raises(ConfigError, match="no gate 'gaet'") as info:  # refused, no record
        execute.resume(stopped.run_id, opts(audit_dir, approve={"gaet"}))
    assert info.value.exit_code == ExitCode.USAGE

    resumed = execute.resume(stopped.run_id, opts(audit_dir, approve={"gate"}))
    assert resumed.status == "succeeded" and resumed.exit_code == ExitCode.OK
    assert resumed.data["resumed_from"] == stopped.run_id
    assert resumed.data["parameters"] == {"a": 10}
    statuses = {s["id"]: s["status"] for s in resumed.data["steps"]}
    assert statuses == {
        "first": "carried",
        "gate": "approved",
        "big": "succeeded",
        "small": "skipped",
    }
    big = next(s for s in resumed.data["steps"] if s["id"] == "big")
    assert big["outputs"]["total"] == 16  # templated from the carried step's output
    assert big["outputs"]["label"] == resumed.run_id
    approval = resumed.data["approvals"][0]
    assert approval["step"] == "gate" and "@" in approval["by"] and approval["via"] == "--approve"
    # both records are sealed, chained and verify
    assert audit.verify(audit_dir) == []
    schema = jsonschema.Draft202012Validator(runrecord.json_schema())  # docs/run-record...
    for record in (stopped, resumed):
        run_json = json.loads((record.folder / "run.json").read_text())
        assert list(schema.iter_errors(run_json)) == []
        assert run_json == record.data
    assert [e["run_id"] for e in audit.read_ledger(audit_dir)] == [stopped.run_id, resumed.run_id]
    assert (audit_dir / "index.html").exists()


def test_failing_notebook_leaves_marked_record(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: failing
    steps:
      - id: boom
        notebook: notebooks/fail.ipynb
      - id: after
        notebook: notebooks/add.ipynb
    """)
    result = execute.run(path, {}, opts(audit_dir))
    assert result.status == "failed" and result.exit_code == ExitCode.FAILED
    step = result.data["steps"][0]
    assert step["error"]["ename"] == "ValueError"
    assert "boom" in step["error"]["evalue"]
    assert len(result.data["steps"]) == 1  # the run stopped
    nb = nbformat.read(result.folder / step["notebook"], as_version=4)
    failed = [c for c in nb.cells if c.get("metadata", {}).get("papermill", {}).get("exception")]
    assert failed and any(o.get("ename") == "ValueError" for o in failed[0].outputs)
    assert results(result.folder / step["notebook"]) == {"started": True}
    report = (result.folder / step["report"]).read_text()
    assert "ValueError" in report and "failed" in report


def test_continue_and_rollback(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: rollback
    steps:
      - id: tolerated
        notebook: notebooks/fail.ipynb
        on_failure: continue
      - id: boom
        notebook: notebooks/fail.ipynb
        on_failure: undo
      - id: never
        notebook: notebooks/add.ipynb
      - id: undo
        notebook: notebooks/add.ipynb
        parameters: {label: "rolled back"}
    """)
    result = execute.run(path, {}, opts(audit_dir))
    steps = [(s["id"], s["status"]) for s in result.data["steps"]]
    assert steps == [("tolerated", "failed"), ("boom", "failed"), ("undo", "succeeded")]
    assert result.data["steps"][2]["rollback_for"] == "boom"
    assert result.data["steps"][2]["outputs"]["label"] == "rolled back"
    assert result.exit_code == ExitCode.FAILED


def test_retry_then_success(write_runbook, audit_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = write_runbook(f"""
    name: flaky
    steps:
      - id: flaky
        notebook: notebooks/flaky.ipynb
        retries: 2
        parameters: {{marker: "{marker}"}}
    """)
    result = execute.run(path, {}, opts(audit_dir))
    step = result.data["steps"][0]
    assert result.status == "succeeded"
    assert [a["status"] for a in step["attempts"]] == ["failed", "succeeded"]
    assert (result.folder / "steps/flaky/notebook.attempt1.ipynb").exists()


def test_timeout_kills_and_marks_cell(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: slow
    steps:
      - id: slow
        notebook: notebooks/slow.ipynb
        timeout_s: 10
        parameters: {seconds: 300}
    """)
    # 10 s leaves room for a kernel start on a loaded machine (6 s did not: the timeout
    # fired before the sleep cell ran); the sleep is far longer, so only a kill ends it.
    result = execute.run(path, {}, opts(audit_dir))
    step = result.data["steps"][0]
    assert result.status == "failed"
    assert step["error"]["ename"] == "StepTimeout"
    assert step["duration_s"] < 120
    nb = nbformat.read(result.folder / step["notebook"], as_version=4)
    marked = [
        c for c in nb.cells if any(o.get("ename") == "StepTimeout" for o in c.get("outputs", []))
    ]
    assert marked and "time.sleep" in marked[0].source


def test_dead_kernel_fails_the_step(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: crash
    steps:
      - id: crash
        notebook: notebooks/crash.ipynb
    """)
    result = execute.run(path, {}, opts(audit_dir))
    assert result.status == "failed"
    assert result.data["steps"][0]["error"]["ename"] in (
        "DeadKernelError",
        "ExecutorDied",
        "PapermillExecutionError",
    )


def test_secret_never_reaches_the_record(
    write_runbook, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "s3cr3t-VALUE-9f8e7d"
    monkeypatch.setenv("OPSBOOK_TEST_TOKEN", token)
    path = write_runbook("""
    name: secretive
    secrets:
      - {env: OPSBOOK_TEST_TOKEN, help: a token the notebook prints}
    steps:
      - id: leak
        notebook: notebooks/secret.ipynb
        parameters: {token_env: OPSBOOK_TEST_TOKEN}
    """)
    result = execute.run(path, {}, opts(audit_dir))
    assert result.status == "succeeded"
    assert result.data["steps"][0]["outputs"]["token_len"] == len(token)
    files = [p for p in audit_dir.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for file in files:
        assert token.encode() not in file.read_bytes(), file
    assert audit.verify(audit_dir) == []
    data = json.loads((result.folder / "run.json").read_text())
    assert data["secrets"] == [{"env": "OPSBOOK_TEST_TOKEN", "set": True}]


def test_reruns_never_overwrite(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: twice
    steps:
      - id: one
        notebook: notebooks/add.ipynb
    """)
    first = execute.run(path, {}, opts(audit_dir))
    second = execute.run(path, {}, opts(audit_dir))
    assert first.run_id != second.run_id
    assert first.folder.exists() and second.folder.exists()
    assert audit.verify(audit_dir) == []
    run_json = json.loads((second.folder / "run.json").read_text())
    assert run_json["runbook"]["sha256"] == audit.sha256_text(path.read_text())
    for rel, digest in run_json["artifacts"].items():
        assert audit.sha256_file(second.folder / rel) == digest
    assert {"python", "packages", "suite_commit"} <= set(run_json["environment"])


@pytest.mark.parametrize("log_output", [True, False])
def test_log_output_streams_cell_output(
    write_runbook, audit_dir: Path, capsys, log_output: bool
) -> None:
    path = write_runbook("""
    name: chatty
    steps:
      - id: one
        notebook: notebooks/add.ipynb
        parameters: {x: 40}
    """)
    result = execute.run(path, {}, opts(audit_dir, log_output=log_output))
    assert result.status == "succeeded"
    shown = capsys.readouterr().err
    assert ("total is 42" in shown) is log_output
    log = (result.folder / "steps/one/step.log").read_text()
    assert "total is 42" in log  # the step log always has the cell output


def test_resume_a_failed_run_and_interactive_gate(
    write_runbook, audit_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = write_runbook(f"""
    name: failthenfix
    steps:
      - id: ok
        notebook: notebooks/add.ipynb
      - id: flaky
        notebook: notebooks/flaky.ipynb
        parameters: {{marker: "{marker}"}}
      - id: gate
        gate: approval
    """)
    failed = execute.run(path, {}, opts(audit_dir))
    assert failed.status == "failed"
    asked: list[str] = []

    def confirm(message: str) -> bool:
        asked.append(message)
        return True

    resumed = execute.resume(failed.run_id, opts(audit_dir, interactive=True, confirm=confirm))
    assert resumed.status == "succeeded"
    assert [s["status"] for s in resumed.data["steps"]] == ["carried", "succeeded", "approved"]
    assert asked and "gate" in asked[0]
    assert resumed.data["approvals"][0]["via"] == "prompt"
    with pytest.raises(Exception, match="nothing to resume"):
        execute.resume(resumed.run_id, opts(audit_dir))


def test_string_parameter_reaches_the_notebook_as_a_string(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: typed
    parameters:
      tenant: {type: str, default: ""}
    steps:
      - id: one
        notebook: notebooks/add.ipynb
        parameters: {label: "{{ params.tenant }}"}
    """)
    result = execute.run(path, {"tenant": "123456"}, opts(audit_dir))
    assert result.status == "succeeded"
    assert result.data["steps"][0]["parameters"] == {"label": "123456"}
    assert result.data["steps"][0]["outputs"]["label"] == "123456"
