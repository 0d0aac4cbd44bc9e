"""The next step's child and kernel start while the current step runs (opsbook.process)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from conftest import make_notebook
from opsbook import execute

pytestmark = pytest.mark.notebooks


def cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def parent_pid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def notebook_processes() -> list[psutil.Process]:
    """Children of this test process that run a notebook child or a kernel."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        line = " ".join(cmdline(proc))
        if "ipykernel" in line or "opsbook._child" in line:
            found.append(proc)
    return found


#: whoami, plus whether the kernel of the step before (``previous``, a pid) still runs and
#: whether this kernel already held a variable that this notebook sets.
AFTER = (
    'tag = ""  # a label\nprevious = 0  # pid of the step before\'s kernel\n',
    [
        "import os\nimport psutil\nimport opsbook",
        'opsbook.record("seen_before", "marker" in globals())\nmarker = True',
        'opsbook.record("pid", os.getpid())\nopsbook.record("cwd", os.getcwd())\n'
        'opsbook.record("step_dir", os.environ["OPSBOOK_STEP_DIR"])\n'
        'opsbook.record("previous_alive", psutil.pid_exists(previous))',
    ],
)


def test_steps_started_ahead_still_get_their_own_fresh_kernel(
    write_runbook, audit_dir: Path, project: Path
) -> None:
    make_notebook(project / "notebooks" / "after.ipynb", *AFTER)
    path = write_runbook("""
    name: ahead
    steps:
      - id: a
        notebook: notebooks/whoami.ipynb
      - id: gate
        gate: approval
      - id: b
        notebook: notebooks/after.ipynb
        parameters: {previous: "{{ steps.a.outputs.pid }}"}
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
    # b's kernel, started while a ran, ran b's cells alone and fresh
    assert (steps["b"]["outputs"]["previous_alive"], steps["b"]["outputs"]["seen_before"]) == (
        False,
        False,
    )
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


@pytest.mark.parametrize("stop", ["failure", "interrupt"])
def test_a_run_that_stops_kills_the_kernel_started_ahead(
    write_runbook, audit_dir: Path, stop: str
) -> None:
    path = write_runbook(f"""
    name: stops-on-{stop}
    steps:
      - id: a
        notebook: notebooks/{"fail" if stop == "failure" else "whoami"}.ipynb
      - id: b
        notebook: notebooks/whoami.ipynb
    """)
    started: list[psutil.Process] = []
    kernel_lines: list[list[str]] = []

    def echo(line: str) -> None:
        if not line.startswith("  a: "):  # a has ended; b's child was started while it ran
            return
        deadline = time.monotonic() + 120
        while not kernel_lines:
            assert time.monotonic() < deadline, "b's kernel never started"
            time.sleep(0.1)
            started[:] = notebook_processes()
            ahead = [p for p in started if "--warm" in cmdline(p)]
            kernel_lines[:] = [
                line
                for p in started
                if "ipykernel" in " ".join(line := cmdline(p))
                and parent_pid(p) in {a.pid for a in ahead}
            ]
        if stop == "interrupt":
            raise KeyboardInterrupt

    options = execute.RunOptions(root=audit_dir, progress_bar=False, echo=echo)
    if stop == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            execute.run(path, {}, options)
    else:
        assert execute.run(path, {}, options).status == "failed"
    (kernel_line,) = kernel_lines
    connection_file = Path(kernel_line[kernel_line.index("-f") + 1])
    assert not any(p.is_running() for p in started)  # a's and b's children and kernels
    assert notebook_processes() == []
    assert not connection_file.parent.parent.exists()  # the run's kernel directories


def test_starting_ahead_is_on_unless_turned_off(monkeypatch) -> None:
    monkeypatch.delenv("OPSBOOK_START_AHEAD", raising=False)
    assert execute.RunOptions().start_ahead is True
    monkeypatch.setenv("OPSBOOK_START_AHEAD", "0")
    assert execute.RunOptions().start_ahead is False
