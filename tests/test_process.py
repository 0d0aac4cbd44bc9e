"""The next step's child and kernel start while the current step runs (opsbook.process)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from opsbook import execute

pytestmark = pytest.mark.notebooks


def notebook_processes() -> list[psutil.Process]:
    """Children of this test process that run a notebook child or a kernel."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            line = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "ipykernel" in line or "opsbook._child" in line:
            found.append(proc)
    return found


def test_steps_started_ahead_still_get_their_own_fresh_kernel(
    write_runbook, audit_dir: Path, project: Path
) -> None:
    path = write_runbook("""
    name: ahead
    steps:
      - id: a
        notebook: notebooks/whoami.ipynb
      - id: gate
        gate: approval
      - id: b
        notebook: notebooks/whoami.ipynb
      - id: c
        notebook: notebooks/whoami.ipynb
        when: "false"
      - id: d
        notebook: notebooks/whoami.ipynb
    """)
    options = execute.RunOptions(
        root=audit_dir,
        progress_bar=False,
        echo=lambda _: None,
        approve={"gate"},
        start_ahead=True,
    )
    result = execute.run(path, {}, options)
    steps = {s["id"]: s for s in result.data["steps"]}
    assert [steps[i]["status"] for i in "abcd"] == [
        "succeeded",
        "succeeded",
        "skipped",
        "succeeded",
    ]
    # b was started while a ran (past the approved gate); c's child was discarded when
    # c was skipped, so d started its own
    assert [steps[i]["attempts"][0]["started_ahead"] for i in "abd"] == [False, True, False]
    outputs = [steps[i]["outputs"] for i in "abd"]
    assert len({o["pid"] for o in outputs}) == 3  # a fresh kernel per step
    assert [o["step_dir"] for o in outputs] == [str(result.folder / "steps" / i) for i in "abd"]
    assert {o["cwd"] for o in outputs} == {str(project)}
    assert notebook_processes() == []  # nothing started ahead outlives the run


def test_a_run_stopped_at_a_gate_leaves_no_child_behind(write_runbook, audit_dir: Path) -> None:
    path = write_runbook("""
    name: stops
    steps:
      - id: a
        notebook: notebooks/whoami.ipynb
      - id: gate
        gate: approval
      - id: b
        notebook: notebooks/whoami.ipynb
    """)
    options = execute.RunOptions(
        root=audit_dir, progress_bar=False, echo=lambda _: None, start_ahead=True
    )
    result = execute.run(path, {}, options)
    assert result.status == "awaiting_approval"
    assert result.data["steps"][0]["attempts"][0]["started_ahead"] is False
    assert notebook_processes() == []


def test_starting_ahead_is_opt_in(monkeypatch) -> None:
    monkeypatch.delenv("OPSBOOK_START_AHEAD", raising=False)
    assert execute.RunOptions().start_ahead is False
    monkeypatch.setenv("OPSBOOK_START_AHEAD", "1")
    assert execute.RunOptions().start_ahead is True
