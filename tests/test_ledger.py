"""The ledger backend interface, the file backend, checkpoints and unledgered folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit import rewrite_ledger, seal_one
from opsbook import audit, checkpoint, runlock, signing
from opsbook.cli import cli
from opsbook.errors import AuditError, CheckpointError, ConfigError
from opsbook.ledger import FileLedger, open_ledger


def test_file_ledger_builds_on_the_head(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    heads: list[object] = []

    def build(head: dict | None) -> dict:
        heads.append(head)
        return {"seq": (head["seq"] + 1) if head else 1}

    ledger.append(build)
    ledger.append(build)
    assert heads == [None, {"seq": 1}]
    assert ledger.entries() == [{"seq": 1}, {"seq": 2}]
    assert ledger.describe() == f"ledger file {tmp_path / 'ledger.jsonl'}"


def test_a_failing_build_writes_nothing(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    ledger.append(lambda head: {"seq": 1})

    def boom(head: dict | None) -> dict:
        raise AuditError("no")

    with pytest.raises(AuditError):
        ledger.append(boom)
    assert ledger.entries() == [{"seq": 1}]


def test_unreadable_line_is_marked_and_not_extended(tmp_path: Path) -> None:
    (tmp_path / "ledger.jsonl").write_text('{"seq": 1, "hash": "x"}\n{torn\n')
    assert FileLedger(tmp_path).entries()[1] == {"_unreadable": "{torn", "_line": 2}
    with pytest.raises(AuditError, match="unreadable"):
        audit.append_ledger(tmp_path, "r", "succeeded", "0" * 64)


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ledger backend for 'nosuch'"):
        open_ledger(tmp_path, "nosuch://user:pw@host/db")


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_detects_truncation_and_fork(audit_dir: Path, key_a) -> None:
    ids = [seal_one(audit_dir) for _ in range(3)]
    held = checkpoint.current(audit_dir, key_a)
    assert held.seq == 3 and checkpoint.parse(held.line) == held
    assert audit.verify(audit_dir, checkpoints=[held]) == []
    entries = audit.read_ledger(audit_dir)
    # truncation: drop the last line and its folder
    rewrite_ledger(audit_dir, entries[:2])
    for path in (audit_dir / ids[2]).rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    import shutil

    shutil.rmtree(audit_dir / ids[2])
    assert audit.verify(audit_dir) == []  # without the checkpoint nothing shows
    problems = audit.verify(audit_dir, checkpoints=[held])
    assert len(problems) == 1 and "truncated or rolled back" in problems[0]
    # fork: a different third entry appended after the truncation
    seal_one(audit_dir)
    problems = audit.verify(audit_dir, checkpoints=[held])
    assert len(problems) == 1 and "rewritten or forked" in problems[0]


def test_witness_file_gets_a_line_per_seal(
    audit_dir: Path,
    key_a,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    witness = tmp_path / "witness.log"
    monkeypatch.setenv(checkpoint.WITNESS_ENV, str(witness))
    seal_one(audit_dir)
    seal_one(audit_dir)
    held = checkpoint.load(str(witness))
    assert [c.seq for c in held] == [1, 2] and all(c.key == key_a.fingerprint for c in held)
    assert audit.verify(audit_dir, checkpoints=held) == []
    result = audit.verify_trail(audit_dir, checkpoints=held)
    assert (result.checkpoints, result.problems) == (2, [])  # the count the CLI reports
    # the CLI reads $OPSBOOK_WITNESS by itself: a rolled-back ledger fails
    rewrite_ledger(audit_dir, audit.read_ledger(audit_dir)[:1])
    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 5 and "truncated or rolled back" in result.output


def test_forged_checkpoint_signature_fails(audit_dir: Path, key_a) -> None:
    seal_one(audit_dir)
    held = checkpoint.current(audit_dir, key_a)
    held.at = "2000-01-01T00:00:00.000Z"  # edited after signing
    problems = audit.verify(audit_dir, checkpoints=[held])
    assert len(problems) == 1 and "does not verify" in problems[0]


@pytest.mark.parametrize(
    "value",
    [
        "opsbook-checkpoint/1 seq=x head=abc",
        "opsbook-checkpoint/1 seq=1 head=" + "g" * 64 + " at=t key=unsigned sig=-",
        "no/such/file.log",
    ],
)
def test_malformed_checkpoint_is_bad_input(audit_dir: Path, value: str) -> None:
    with pytest.raises(CheckpointError):
        checkpoint.load(value)
    result = CliRunner().invoke(cli, ["verify", "--checkpoint", value])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not audit_dir.exists()  # verify wrote nothing


def test_checkpoint_command_prints_and_appends(
    audit_dir: Path,
    key_a,
    tmp_path: Path,
) -> None:
    seal_one(audit_dir)
    result = CliRunner().invoke(cli, ["checkpoint", "--witness", str(tmp_path / "w.log")])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert (tmp_path / "w.log").read_text() == line + "\n"
    cp = checkpoint.parse(line)
    assert cp.seq == 1 and cp.head == audit.read_ledger(audit_dir)[0]["hash"]


# ------------------------------------------------------------- unledgered folders


def test_planted_and_running_and_interrupted_folders(audit_dir: Path) -> None:
    sealed = seal_one(audit_dir)
    planted = audit_dir / "20990101T000000Z-planted-000000"
    planted.mkdir()
    (planted / "run.json").write_text(json.dumps({"run_id": planted.name, "status": "running"}))
    running_id, _ = audit.new_record(audit_dir, "running")  # holds its lock: this process
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone_id, _ = audit.new_record(audit_dir, "gone")
    runlock.acquire(audit_dir, gone_id, pid=os.getpid())
    lock = runlock.lock_path(audit_dir, gone_id)
    body = json.loads(lock.read_text())
    body["pid"] = int(dead.stdout)
    lock.write_text(json.dumps(body))

    result = audit.verify_trail(audit_dir)
    assert result.unledgered == {
        planted.name: "unknown",
        running_id: "running",
        gone_id: "interrupted",
    }
    assert len(result.problems) == 2
    assert any(planted.name in p and "unknown" in p for p in result.problems)
    assert any(gone_id in p and "opsbook recover" in p for p in result.problems)
    assert sealed not in " ".join(result.problems)
    strict = audit.verify(audit_dir, strict=True)
    assert len(strict) == 3 and any(running_id in p and "--strict" in p for p in strict)


def test_trusted_keys_inside_the_audit_root_refused(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_dir.mkdir()
    monkeypatch.setenv(signing.TRUSTED_ENV, str(audit_dir / "trusted.json"))
    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 2 and "inside the audit root" in result.output


@pytest.mark.parametrize("lines", [0, 1, 2, 300])
def test_head_reads_the_last_line(tmp_path: Path, lines: int) -> None:
    ledger = FileLedger(tmp_path)
    for n in range(1, lines + 1):
        ledger.append(lambda head, n=n: {"seq": n, "pad": "x" * 50})
    assert ledger.head() == ({"seq": lines, "pad": "x" * 50} if lines else None)
    assert len(ledger.entries()) == lines


def _interrupted(root: Path, secret_env: str) -> str:
    """A record whose runner died mid-step (its lock names a finished process)."""
    run_id, folder = audit.new_record(root, "killed")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    runlock.acquire(root, run_id)
    lock = runlock.lock_path(root, run_id)
    lock.write_text(json.dumps(json.loads(lock.read_text()) | {"pid": int(dead.stdout)}))
    step = folder / "steps" / "one"
    step.mkdir(parents=True)
    (step / "step.log").write_text(f"token {os.environ[secret_env]}\n")
    data = {
        "run_id": run_id,
        "status": "running",
        "parameters": {"url": "http://u:pw-in-url@h/"},
        "secrets": [{"env": secret_env, "set": True}],
        "steps": [{"id": "one", "kind": "notebook"}],
        "approvals": [],
    }
    audit.write_run_json(folder, data)
    return run_id


def test_recover_seals_interrupted_redacted(
    audit_dir: Path, key_a, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsbook import execute

    monkeypatch.setenv("KILLED_TOKEN", "tok-3141592653")
    run_id = _interrupted(audit_dir, "KILLED_TOKEN")
    assert audit.verify_trail(audit_dir).unledgered == {run_id: "interrupted"}
    folder, record = execute.recover(run_id, audit_dir)
    data = record.to_json()  # the record as sealed
    assert data["status"] == "failed" and data["steps"][0]["status"] == "failed"
    assert data["steps"][0]["error"]["ename"] == "Interrupted"
    assert data["parameters"]["url"] == "http://u:***@h/"
    for path in (p for p in folder.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        assert b"tok-3141592653" not in blob and b"pw-in-url" not in blob
    assert audit.verify(audit_dir, require_signed=True) == []
    assert not runlock.lock_path(audit_dir, run_id).exists()
    with pytest.raises(ConfigError, match="already sealed"):
        execute.recover(run_id, audit_dir)


def test_recover_refuses_a_running_record(audit_dir: Path) -> None:
    from opsbook import execute

    run_id, folder = audit.new_record(audit_dir, "alive")
    audit.write_run_json(folder, {"run_id": run_id, "status": "running"})
    runlock.acquire(audit_dir, run_id)  # this very process: alive
    with pytest.raises(ConfigError, match="still running"):
        execute.recover(run_id, audit_dir)
    assert audit.read_ledger(audit_dir) == []
