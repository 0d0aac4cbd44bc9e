"""The audit trail: sealing, tamper detection, redaction helpers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from opsbook import audit, execute


@pytest.fixture(scope="module")
def sealed_three(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[execute.RunResult]]:
    """Three sealed runs of one runbook, made once per module (each test tampers a copy)."""
    base = tmp_path_factory.mktemp("three-runs")
    path = project / "runbooks" / "sealed-three.yaml"
    path.write_text("name: sealed\nsteps:\n  - id: one\n    notebook: notebooks/add.ipynb\n")
    options = execute.RunOptions(
        root=base / "audit", work_root=base / "work", progress_bar=False, echo=lambda _: None
    )
    runs = [execute.run(path, {}, options) for _ in range(3)]
    return base / "audit", runs


@pytest.fixture
def three_runs(sealed_three, audit_dir: Path) -> list[execute.RunResult]:
    """A private copy of the three sealed runs in ``audit_dir``."""
    template, runs = sealed_three
    shutil.copytree(template, audit_dir, symlinks=True)
    copies = [
        dataclasses.replace(run, folder=audit_dir / run.folder.relative_to(template))
        for run in runs
    ]
    assert audit.verify(audit_dir) == []
    return copies


def _writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


@pytest.mark.notebooks
def test_tampering_is_named(three_runs, audit_dir: Path) -> None:
    first, second, third = three_runs
    # 1. edit one byte of an artifact
    nb = _writable(first.folder / "steps/one/notebook.ipynb")
    blob = bytearray(nb.read_bytes())
    blob[-5] = ord("X") if blob[-5] != ord("X") else ord("Y")
    nb.write_bytes(bytes(blob))
    # 2. delete a file
    (second.folder / "steps/one/report.html").unlink()
    # 3. add a file after sealing
    (third.folder / "extra.txt").write_text("later")
    problems = audit.verify(audit_dir)
    assert any(first.run_id in p and "notebook.ipynb modified" in p for p in problems)
    assert any(second.run_id in p and "report.html missing" in p for p in problems)
    assert any(third.run_id in p and "unexpected file extra.txt" in p for p in problems)
    assert len(problems) == 3


@pytest.mark.notebooks
def test_dropped_and_reordered_ledger_lines(three_runs, audit_dir: Path) -> None:
    ledger = _writable(audit_dir / audit.LEDGER)
    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join([lines[0], lines[2]]) + "\n")  # drop the middle line
    problems = audit.verify(audit_dir)
    assert any(three_runs[2].run_id in p and "does not chain" in p for p in problems)
    assert any(three_runs[1].run_id in p and "not in the ledger" in p for p in problems)

    ledger.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")  # reorder
    problems = audit.verify(audit_dir)
    assert any("dropped or reordered" in p for p in problems)
    assert any(three_runs[0].run_id in p for p in problems)


@pytest.mark.notebooks
def test_edited_run_json_and_ledger_entry(three_runs, audit_dir: Path) -> None:
    run_json = _writable(three_runs[0].folder / "run.json")
    data = json.loads(run_json.read_text())
    data["status"] = "failed"
    run_json.write_text(json.dumps(data))
    ledger = _writable(audit_dir / audit.LEDGER)
    lines = ledger.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["status"] = "failed"
    lines[2] = json.dumps(entry)
    ledger.write_text("\n".join(lines) + "\n")
    problems = audit.verify(audit_dir)
    assert any(three_runs[0].run_id in p and "run.json was modified" in p for p in problems)
    assert any(three_runs[2].run_id in p and "entry hash does not match" in p for p in problems)


def test_record_folder_is_exclusive(tmp_path: Path) -> None:
    ids = {audit.new_record(tmp_path, "same")[0] for _ in range(5)}
    assert len(ids) == 5


def test_secret_values_include_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_URL", "redis://user:hunter2pass@host:6379/0")
    values = audit.secret_values(["X_URL", "UNSET_VAR_123"])
    assert "hunter2pass" in values and "redis://user:hunter2pass@host:6379/0" in values
    assert audit.redact_value({"a": ["pw hunter2pass"]}, values) == {"a": ["pw ***"]}


def test_redact_tree_keeps_binary_length(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG..hunter2pass..")
    (tmp_path / "b.log").write_text("token hunter2pass end")
    changed = audit.redact_tree(tmp_path, {"hunter2pass"})
    assert sorted(changed) == ["a.png", "b.log"]
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG..***********.."
    assert (tmp_path / "b.log").read_text() == "token *** end"
