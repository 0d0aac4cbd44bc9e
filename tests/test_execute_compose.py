"""Running composed runbooks (uses:) and checking declared outputs, over tiny notebooks.

Kept to three kernel starts: a nested run stopped at the used runbook's gate and resumed,
and one step whose recorded outputs do not match its declaration.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import make_notebook
from opsbook import audit, execute
from opsbook.errors import ConfigError, ExitCode

pytestmark = pytest.mark.notebooks

INNER = """
name: inner-run
parameters:
  a: {type: int, default: 1, max: 100}
  needed: {type: str, required: true}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}", label: "{{ params.needed }}"}
  - id: gate
    gate: approval
    message: "total {{ steps.first.outputs.total }}"
  - id: second
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ steps.first.outputs.total }}", y: 0}
"""

OUTER = """
name: outer-run
parameters:
  n: {type: int, default: 2}
steps:
  - id: inner
    uses: runbooks/inner_run.yaml
    with: {a: "{{ params.n }}", needed: w}
  - id: after
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ steps.inner.second.outputs.total }}", label: "{{ steps.inner.status }}"}
summary:
  title: outer
  sections:
    - heading: Inner
      step: inner.second
      items:
        - {label: Total, value: "{{ steps.inner.second.outputs.total }} units"}
"""


def opts(audit_dir: Path, **kw) -> execute.RunOptions:
    return execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None, **kw)


@pytest.fixture
def inner(project: Path) -> Path:
    path = project / "runbooks" / "inner_run.yaml"
    path.write_text(INNER.lstrip(), encoding="utf-8")
    return path


def test_a_used_runbook_runs_nested_stops_at_its_gate_and_resumes(
    write_runbook, inner: Path, audit_dir: Path
) -> None:
    path = write_runbook(OUTER)
    stopped = execute.run(path, {}, opts(audit_dir))
    assert stopped.status == "awaiting_approval"
    assert stopped.exit_code == ExitCode.AWAITING_APPROVAL
    steps = stopped.data["steps"]
    assert [(s["id"], s["status"], s.get("parent")) for s in steps] == [
        ("inner", "awaiting_approval", None),
        ("inner.first", "succeeded", "inner"),
        ("inner.gate", "awaiting_approval", "inner"),
    ]
    used = steps[0]
    assert used["kind"] == "runbook"
    assert used["parameters"] == {"a": 2, "needed": "w"}
    assert used["uses"]["path"] == "runbooks/inner_run.yaml"
    assert used["uses"]["sha256"] == hashlib.sha256(inner.read_bytes()).hexdigest()
    assert (stopped.folder / used["uses"]["saved_as"]).read_text() == inner.read_text()
    assert steps[1]["outputs"] == {"total": 4, "label": "w", "n_items": 0}
    assert (stopped.folder / "steps" / "inner.first" / "notebook.ipynb").is_file()

    with pytest.raises(ConfigError, match="no gate 'gate'"):  # the plain id is ambiguous
        execute.resume(stopped.run_id, opts(audit_dir, approve={"gate"}))
    resumed = execute.resume(stopped.run_id, opts(audit_dir, approve={"inner.gate"}))
    assert resumed.status == "succeeded", resumed.data["steps"]
    assert [(s["id"], s["status"]) for s in resumed.data["steps"]] == [
        ("inner", "succeeded"),
        ("inner.first", "carried"),
        ("inner.gate", "approved"),
        ("inner.second", "succeeded"),
        ("after", "succeeded"),
    ]
    by_id = {s["id"]: s for s in resumed.data["steps"]}
    assert by_id["inner.second"]["outputs"]["total"] == 4  # from the carried inner.first
    assert by_id["after"]["outputs"]["total"] == 6
    assert by_id["after"]["outputs"]["label"] == "succeeded"  # steps.inner.status
    assert [a["step"] for a in resumed.data["approvals"]] == ["inner.gate"]
    assert "4 units" in (resumed.folder / "summary.html").read_text()
    page = (resumed.folder / "index.html").read_text()  # the run page shows the nesting
    assert f"runs runbooks/inner_run.yaml (sha256 {used['uses']['sha256'][:12]})" in page
    assert '<a href="uses/inner.yaml">runbook</a>' in page
    assert "\u00a0\u00a0\u21b3\u00a0<b>inner.second</b>" in page
    assert audit.verify(audit_dir) == []


def test_a_used_runbook_that_changed_is_not_resumed(
    write_runbook, inner: Path, audit_dir: Path
) -> None:
    path = write_runbook(OUTER.replace("{{ params.n }}", "{{ params.n * 100 }}"))
    failed = execute.run(path, {}, opts(audit_dir))  # 200 > max 100: refused, no kernel
    assert failed.status == "failed" and failed.exit_code == ExitCode.FAILED
    assert [(s["id"], s["status"]) for s in failed.data["steps"]] == [("inner", "failed")]
    assert (
        "parameter 'a' must be at most 100, got 200" in failed.data["steps"][0]["error"]["evalue"]
    )
    inner.write_text(INNER.replace("max: 100", "max: 1000"), encoding="utf-8")
    with pytest.raises(ConfigError, match="used runbooks/inner_run.yaml .* which has changed"):
        execute.resume(failed.run_id, opts(audit_dir, approve={"inner.gate"}))


def test_outputs_that_miss_the_declaration_fail_the_step_and_its_runbook(
    write_runbook, project: Path, audit_dir: Path
) -> None:
    make_notebook(
        project / "notebooks" / "mistyped.ipynb",
        "x = 1  # a number\n",
        ['import opsbook\nopsbook.record("total", x + 3)'],
        {"total": "str", "missing": "int"},
    )
    (project / "runbooks" / "inner_mistyped.yaml").write_text(
        "name: m\nsteps:\n  - id: bad\n    notebook: notebooks/mistyped.ipynb\n",
        encoding="utf-8",
    )
    path = write_runbook("""
    name: outer-mistyped
    steps:
      - id: inner
        uses: runbooks/inner_mistyped.yaml
      - id: never
        notebook: notebooks/add.ipynb
    """)
    result = execute.run(path, {}, opts(audit_dir))
    assert result.status == "failed" and result.exit_code == ExitCode.FAILED
    assert [(s["id"], s["status"]) for s in result.data["steps"]] == [
        ("inner", "failed"),
        ("inner.bad", "failed"),
    ]
    error = result.data["steps"][1]["error"]
    assert error["ename"] == "OutputError"
    assert error["evalue"] == (
        "step 'inner.bad' (notebooks/mistyped.ipynb): output 'missing' (int) was never "
        "recorded; output 'total' should be str but int was recorded (4)"
    )
    assert result.data["steps"][1]["outputs"] == {"total": 4}  # kept for the reader


@pytest.mark.parametrize(
    ("uses_step", "expected_steps", "expected_status"),
    [
        (  # when: false skips the used runbook whole: none of its steps is recorded
            '    when: "{{ params.n > 5 }}"\n',
            [("inner", "skipped"), ("next", "awaiting_approval")],
            "awaiting_approval",
        ),
        (  # a with: value the used runbook refuses fails the step; continue goes on
            "    on_failure: continue\n",
            [("inner", "failed"), ("next", "awaiting_approval")],
            "awaiting_approval",
        ),
        (  # ... and abort (the default) stops the run there
            "",
            [("inner", "failed")],
            "failed",
        ),
    ],
)
def test_when_and_on_failure_of_a_uses_step(
    write_runbook,
    inner: Path,
    audit_dir: Path,
    uses_step: str,
    expected_steps: list,
    expected_status: str,
) -> None:
    with_value = "{{ params.n }}" if "when" in uses_step else "{{ params.n * 100 }}"
    path = write_runbook(
        "name: outer-no-kernel\n"
        "parameters:\n  n: {type: int, default: 2}\n"
        "steps:\n"
        "  - id: inner\n"
        "    uses: runbooks/inner_run.yaml\n"
        f'    with: {{a: "{with_value}", needed: w}}\n' + uses_step + "  - id: next\n"
        "    gate: approval\n"
    )
    result = execute.run(path, {}, opts(audit_dir))  # no notebook runs: no kernel starts
    assert [(s["id"], s["status"]) for s in result.data["steps"]] == expected_steps
    assert result.status == expected_status
