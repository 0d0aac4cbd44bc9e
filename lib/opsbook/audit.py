"""The audit trail: one write-once folder per run and a hash-chained ledger.

Layout under the audit root (``./audit`` or ``$OPSBOOK_AUDIT_DIR``)::

    ledger.jsonl                  one line per finished run, each holding the previous hash
    index.html                    static list of runs (see opsbook.report)
    <run_id>/run.json             what ran, with what, by whom, and the sha256 of every artifact
    <run_id>/runbook.yaml         the exact runbook text that ran
    <run_id>/steps/<step>/...     executed notebook, reports, log, files the notebook wrote

A record folder is created exclusively (a re-run never overwrites) and its files are
made read-only once the run is sealed. :func:`verify` recomputes every hash and the
chain and names every tampered, missing, unledgered or reordered record.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import platform
import secrets as _secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsbook.errors import AuditError, ConfigError

LEDGER = "ledger.jsonl"
RUN_JSON = "run.json"
GENESIS = "0" * 64
KEY_PACKAGES = (
    "opsbook",
    "papermill",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "chromadb",
    "qdrant-client",
    "qdrant-edge-py",
    "redis",
    "hiredis",
    "hdrhistogram",
    "pandas",
    "numpy",
    "matplotlib",
    "pydantic",
)
_TEXT_SUFFIXES = {
    ".ipynb",
    ".html",
    ".log",
    ".json",
    ".jsonl",
    ".txt",
    ".yaml",
    ".yml",
    ".csv",
    ".md",
    ".svg",
    ".py",
    ".toml",
    ".xml",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def whoami() -> str:
    """``user@host`` of the person (or CI job) running opsbook."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------- new records


def new_record(root: Path, runbook_name: str) -> tuple[str, Path]:
    """Create a fresh, uniquely named record folder and return ``(run_id, path)``."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in runbook_name)[:60]
    for _ in range(20):
        run_id = f"{stamp}-{safe}-{_secrets.token_hex(3)}"
        path = root / run_id
        try:
            path.mkdir()  # exclusive: never reuse a folder
        except FileExistsError:
            continue
        return run_id, path
    raise AuditError(f"could not create a unique record folder under {root}")


def environment_info(project_root: Path | None) -> dict[str, Any]:
    """Python, platform, key package versions and the suite's git commit."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": packages,
        "suite_commit": None,
    }
    if project_root is not None:
        info["suite_commit"] = _git_commit(project_root)
    return info


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "lib", "notebooks", "runbooks"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("+dirty" if dirty else "")


# ------------------------------------------------------------------------ redaction


def secret_values(env_names: list[str]) -> set[str]:
    """Values to redact: every declared secret that is set, and the password inside URLs."""
    values: set[str] = set()
    for name in env_names:
        value = os.environ.get(name)
        if not value:
            continue
        values.add(value)
        try:
            parts = urlsplit(value)
            if parts.password:
                values.add(parts.password)
        except ValueError:
            pass
    from opsbook.settings import _SEEN_SECRETS

    values |= _SEEN_SECRETS
    return {v for v in values if len(v) >= 4}


def redact_value(data: Any, values: set[str]) -> Any:
    """Redact secret values anywhere inside a JSON-like structure."""
    if not values:
        return data
    if isinstance(data, str):
        for value in sorted(values, key=len, reverse=True):
            data = data.replace(value, "***")
        return data
    if isinstance(data, dict):
        return {k: redact_value(v, values) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_value(v, values) for v in data]
    return data


def redact_tree(folder: Path, values: set[str]) -> list[str]:
    """Scrub secret values from every file under ``folder``; return the files changed."""
    if not values:
        return []
    changed = []
    needles = sorted((v.encode() for v in values), key=len, reverse=True)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        if not any(n in blob for n in needles):
            continue
        text_like = path.suffix.lower() in _TEXT_SUFFIXES
        for needle in needles:
            blob = blob.replace(needle, b"***" if text_like else b"*" * len(needle))
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
        path.write_bytes(blob)
        changed.append(str(path.relative_to(folder)))
    return changed


# -------------------------------------------------------------------------- sealing


def manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file in a record except run.json itself."""
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p != folder / RUN_JSON
    }


def write_run_json(folder: Path, data: dict[str, Any]) -> None:
    """(Re)write run.json while the run is in progress (not sealed yet)."""
    path = folder / RUN_JSON
    tmp = folder / (RUN_JSON + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


def seal(root: Path, folder: Path, data: dict[str, Any], secret_env: list[str]) -> str:
    """Redact, hash every artifact, write run.json, make files read-only, append to ledger.

    Returns the ledger entry's hash.
    """
    values = secret_values(secret_env)
    redact_tree(folder, values)
    data = redact_value(data, values)
    data["artifacts"] = manifest(folder)
    write_run_json(folder, data)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
    return append_ledger(root, data["run_id"], data["status"], sha256_file(folder / RUN_JSON))


@contextmanager
def _ledger_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".ledger.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return sha256_text(canonical(body))


def read_ledger(root: Path) -> list[dict[str, Any]]:
    path = root / LEDGER
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            entries.append({"_unreadable": line, "_line": number})
    return entries


def append_ledger(root: Path, run_id: str, status: str, run_json_sha: str) -> str:
    with _ledger_lock(root):
        entries = read_ledger(root)
        prev = entries[-1].get("hash", GENESIS) if entries else GENESIS
        entry = {
            "seq": len(entries) + 1,
            "run_id": run_id,
            "status": status,
            "run_json_sha256": run_json_sha,
            "sealed_at": now_iso(),
            "prev": prev,
        }
        entry["hash"] = entry_hash(entry)
        with (root / LEDGER).open("a", encoding="utf-8") as fh:
            fh.write(canonical(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return entry["hash"]


# ------------------------------------------------------------------------ verifying


def verify(root: Path) -> list[str]:
    """Every problem in the audit trail under ``root``; an empty list means intact."""
    problems: list[str] = []
    entries = read_ledger(root)
    ledgered: set[str] = set()
    prev = GENESIS
    for index, entry in enumerate(entries, start=1):
        if "_unreadable" in entry:
            problems.append(f"ledger line {entry['_line']}: unreadable (edited?)")
            prev = "?"
            continue
        run_id = entry.get("run_id", "?")
        label = f"ledger entry {index} (run {run_id})"
        if entry.get("seq") != index:
            problems.append(
                f"{label}: sequence number {entry.get('seq')} where {index} was "
                "expected: ledger lines dropped or reordered"
            )
        if entry.get("prev") != prev:
            problems.append(
                f"{label}: does not chain to the entry before it: a ledger line was "
                "dropped, inserted or reordered"
            )
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"{label}: entry hash does not match its content (edited)")
        prev = entry.get("hash", "?")
        if run_id in ledgered:
            problems.append(f"{label}: run listed twice in the ledger")
        ledgered.add(run_id)
        problems += verify_record(root / run_id, entry)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        if folder.name.startswith(".") or folder.name in ledgered:
            continue
        if (folder / RUN_JSON).exists():
            data = _load_json(folder / RUN_JSON)
            if data is not None and data.get("status") == "running":
                continue  # a run in progress is not sealed yet
            problems.append(f"record {folder.name}: not in the ledger (ledger line dropped?)")
    return problems


def verify_record(folder: Path, entry: dict[str, Any]) -> list[str]:
    """Problems with one sealed record against its ledger entry."""
    name = folder.name
    if not folder.is_dir():
        return [f"record {name}: folder missing (deleted?)"]
    run_json = folder / RUN_JSON
    if not run_json.exists():
        return [f"record {name}: run.json missing"]
    problems = []
    if sha256_file(run_json) != entry.get("run_json_sha256"):
        problems.append(f"record {name}: run.json was modified after sealing")
    data = _load_json(run_json)
    if data is None:
        return problems + [f"record {name}: run.json is not valid JSON"]
    listed: dict[str, str] = data.get("artifacts", {})
    for rel, digest in listed.items():
        path = folder / rel
        if not path.exists():
            problems.append(f"record {name}: {rel} missing")
        elif sha256_file(path) != digest:
            problems.append(f"record {name}: {rel} modified (sha256 differs)")
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_file() and path != run_json and rel not in listed:
            problems.append(f"record {name}: unexpected file {rel} added after sealing")
    return problems


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------- reading


def list_runs(root: Path) -> list[dict[str, Any]]:
    """run.json of every record under ``root``, oldest first."""
    if not root.exists():
        return []
    runs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        data = _load_json(folder / RUN_JSON)
        if data is not None:
            runs.append(data)
    return runs


def load_run(root: Path, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The folder and run.json of a run; a unique prefix of the id is enough."""
    if root.exists():
        matches = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(run_id)]
    else:
        matches = []
    exact = [p for p in matches if p.name == run_id]
    matches = exact or matches
    if len(matches) != 1:
        known = ", ".join(r["run_id"] for r in list_runs(root)[-5:]) or "none"
        what = "matches several runs" if matches else "is not a run"
        raise ConfigError(
            f"{run_id!r} {what} under {root}", hint=f"see `opsbook history`; recent runs: {known}"
        )
    data = _load_json(matches[0] / RUN_JSON)
    if data is None:
        raise AuditError(f"record {matches[0].name} has no readable run.json")
    return matches[0], data


def key_results(data: dict[str, Any], limit: int = 6) -> dict[str, Any]:
    """A few scalar outputs per run for tables: bools, numbers and short strings."""
    found: dict[str, Any] = {}
    for step in data.get("steps", []):
        for name, value in (step.get("outputs") or {}).items():
            if isinstance(value, bool | int | float) or (
                isinstance(value, str) and len(value) < 40
            ):
                found[name] = value
            if len(found) >= limit:
                return found
    return found
