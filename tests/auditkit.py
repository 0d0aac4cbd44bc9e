"""Helpers shared by the audit tests: keys, tiny sealed records, ledger rewriting."""

from __future__ import annotations

import json
from pathlib import Path

from opsbook import audit


def seal_one(root: Path, status: str = "succeeded", **fields: object) -> str:
    run_id, folder = audit.new_record(root, "unit")
    (folder / "out.txt").write_text(f"result of {run_id}\n")
    data = {"run_id": run_id, "status": status, "user": "alice@host", **fields}
    audit.seal_record(root, folder, data)
    return run_id


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def rewrite_ledger(root: Path, entries: list[dict]) -> None:
    writable(root / audit.LEDGER).write_text(
        "".join(audit.canonical(e) + "\n" for e in entries), encoding="utf-8"
    )


def forge(root: Path, run_id: str, signatures: str) -> None:
    """What a forger with write access and opsbook's own functions (no key) can do."""
    run_json = writable(root / run_id / "run.json")
    data = json.loads(run_json.read_text())
    data["user"], data["status"] = "mallory@host", "failed"
    run_json.write_text(json.dumps(data))
    entries = audit.read_ledger(root)
    prev = audit.GENESIS
    for entry in entries:
        if entry["run_id"] == run_id:
            entry["status"] = "failed"
            entry["run_json_sha256"] = audit.sha256_file(run_json)
        if signatures == "strip" or (signatures == "strip-forged" and entry["run_id"] == run_id):
            entry.pop("signature", None)
            entry["key"] = audit.UNSIGNED
        entry["prev"] = prev
        entry["hash"] = audit.entry_hash(entry)
        prev = entry["hash"]
    rewrite_ledger(root, entries)
