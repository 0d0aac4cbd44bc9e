"""audit.verify_record on hand-made record folders: each verdict with its exact wording."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from opsbook.audit import verify_record


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(folder: Path, data: object) -> dict:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(data), encoding="utf-8")
    return {"run_json_sha256": _sha(folder / "run.json")}


def test_artifacts_in_no_known_form(tmp_path: Path) -> None:
    entry = _record(tmp_path / "r1", {"artifacts": ["report.html"]})
    assert verify_record(tmp_path / "r1", entry) == [
        "record r1: run.json lists its artifacts in no known form"
    ]
    entry["run_json_sha256"] = "0" * 64
    assert verify_record(tmp_path / "r1", entry) == [
        "record r1: run.json was modified after sealing",
        "record r1: run.json lists its artifacts in no known form",
    ]


def test_artifacts_checked_one_by_one(tmp_path: Path) -> None:
    folder = tmp_path / "r2"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    listed = {"a.txt": _sha(folder / "a.txt"), "b.txt": _sha(folder / "b.txt"), "c.txt": "0"}
    (folder / "run.json").write_text(json.dumps({"artifacts": listed}), encoding="utf-8")
    (folder / "b.txt").write_text("changed")
    (folder / "d.txt").write_text("added")
    entry = {"run_json_sha256": _sha(folder / "run.json"), "artifacts": listed}
    assert verify_record(folder, entry) == [
        "record r2: b.txt modified (sha256 differs)",
        "record r2: c.txt missing",
        "record r2: unexpected file d.txt added after sealing",
    ]
    entry["artifacts"] = {"a.txt": listed["a.txt"]}
    assert verify_record(folder, entry)[0] == (
        "record r2: run.json lists other artifacts than its ledger entry"
    )
