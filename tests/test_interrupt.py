"""A killed runner: no plain secret on disk, no orphan, reported as interrupted, recoverable.
And resume refuses a record that does not verify."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from conftest import make_notebook
from opsbook import audit, execute
from opsbook.cli import cli
from opsbook.errors import AuditError

pytestmark = pytest.mark.notebooks

TOKEN = "kill-me-s3cret-0xC0FFEE"
SLEEPY = (
    'token_env = "OPSBOOK_TEST_TOKEN"  # declared secret\n',
    [
        "import os, time\nimport opsbook",
        "v = os.environ[token_env]\nprint('token is', v, flush=True)\nopsbook.record('v', v)",
        "print('sleeping', flush=True)\ntime.sleep(300)",
    ],
)
RUNNER = "from opsbook.cli import main; main()"


def _wait_for(predicate, what: str, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def _kernels(runner: psutil.Process) -> list[list[str]]:
    """The command lines of the runner's kernels."""
    found = []
    for proc in runner.children(recursive=True):
        try:
            line = proc.cmdline()
        except psutil.Error:
            continue
        if "ipykernel" in " ".join(line):
            found.append(line)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_runner_leaves_no_secret_and_no_orphan(
    write_runbook, project: Path, audit_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    make_notebook(project / "notebooks" / "sleepy.ipynb", *SLEEPY)
    path = write_runbook("""
    name: sleepy
    secrets:
      - {env: OPSBOOK_TEST_TOKEN, help: a token}
    steps:
      - id: nap
        notebook: notebooks/sleepy.ipynb
      - id: after
        notebook: notebooks/add.ipynb
    """)
    env = dict(os.environ, OPSBOOK_TEST_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "run", str(path)],
        env=env,
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runner = psutil.Process(proc.pid)
    try:
        _wait_for(lambda: any(audit_dir.glob("*/steps/nap/step.log")), "the step log")
        log = next(audit_dir.glob("*/steps/nap/step.log"))
        _wait_for(lambda: "sleeping" in log.read_text(), "the sleeping cell")
        # nap's kernel, and after's, started ahead while nap runs
        _wait_for(lambda: len(_kernels(runner)) == 2, "the kernel started ahead")
        kernel_dirs = [Path(line[line.index("-f") + 1]).parent for line in _kernels(runner)]
        descendants = runner.children(recursive=True)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        gone, alive = psutil.wait_procs(descendants, timeout=60)
        assert alive == []  # the papermill children and their kernels died with the runner
        assert [d for d in kernel_dirs if d.exists()] == []  # and their sockets went
    finally:
        if proc.poll() is None:
            proc.kill()
    folder = log.parents[2]
    for file in (p for p in folder.rglob("*") if p.is_file()):
        assert TOKEN.encode() not in file.read_bytes(), file
    assert "token is ***" in log.read_text()
    result = audit.verify_trail(audit_dir)
    if sig == signal.SIGKILL:
        assert result.unledgered == {folder.name: "interrupted"}
        assert len(result.problems) == 1 and "opsbook recover" in result.problems[0]
        recovered = CliRunner().invoke(cli, ["recover", folder.name])
        assert recovered.exit_code == 0, recovered.output
    data = json.loads((folder / "run.json").read_text())
    assert data["status"] == "failed"
    expected = "interrupted: the runner died" if sig == signal.SIGKILL else "terminated (SIGTERM)"
    assert data["error"].startswith(expected)
    assert audit.verify_trail(audit_dir).problems == []
    assert [e["run_id"] for e in audit.read_ledger(audit_dir)] == [folder.name]


FLOW = """
name: tamperable
parameters:
  a: {type: int, default: 3}
steps:
  - id: first
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}"}
  - id: gate
    gate: approval
  - id: after
    notebook: notebooks/add.ipynb
    parameters: {x: "{{ params.a }}"}
"""


def test_resume_refuses_a_tampered_record(write_runbook, audit_dir: Path) -> None:
    path = write_runbook(FLOW)
    options = execute.RunOptions(root=audit_dir, progress_bar=False, echo=lambda _: None)
    stopped = execute.run(path, {"a": 1}, options)
    assert stopped.status == "awaiting_approval"
    runbook = stopped.folder / "runbook.yaml"
    runbook.chmod(0o644)
    runbook.write_text(runbook.read_text().replace("notebooks/add.ipynb", "notebooks/fail.ipynb"))
    run_json = stopped.folder / "run.json"
    run_json.chmod(0o644)
    data = json.loads(run_json.read_text())
    data["parameters"]["a"] = 99
    run_json.write_text(json.dumps(data))
    before = sorted(p.name for p in audit_dir.iterdir())
    options.approve = {"gate"}
    with pytest.raises(AuditError) as refused:
        execute.resume(stopped.run_id, options)
    assert refused.value.exit_code == 5
    assert "run.json was modified after sealing" in refused.value.message
    assert "runbook.yaml modified" in refused.value.message
    result = CliRunner().invoke(cli, ["resume", stopped.run_id, "--approve", "gate"])
    assert result.exit_code == 5 and "refusing to resume" in result.output
    assert sorted(p.name for p in audit_dir.iterdir()) == before  # nothing ran, nothing written
