"""The audit trail: one write-once folder per run and a signed, hash-chained ledger.

Layout under the audit root (``./audit`` or ``$OPSBOOK_AUDIT_DIR``)::

    ledger.jsonl                  one entry per sealed record (see opsbook.ledger for backends)
    index.html                    static list of runs (see opsbook.report)
    .running/<run_id>.json        lock of a run in progress (see opsbook.runlock)
    <run_id>/run.json             what ran, with what, by whom, and the sha256 of every artifact
                                  (its format: :mod:`opsbook.runrecord`)
    <run_id>/runbook.yaml         the exact runbook text that ran
    <run_id>/uses/<step>.yaml     the exact text of each runbook a ``uses:`` step ran
    <run_id>/steps/<step>/...     executed notebook, reports, log, files the notebook wrote
                                  (a used runbook's step: ``steps/<uses step>.<step>/``)

A record folder is created exclusively (a re-run never overwrites) and its files are
made read-only once sealed. :func:`seal_record` redacts, hashes, writes run.json and
appends a ledger entry holding the sha256 of run.json, the previous entry's hash, the
approvals and, with a signing key (:mod:`opsbook.signing`), an Ed25519 signature over
the entry hash. :func:`verify_trail` recomputes every hash, the chain and every
signature, checks held checkpoints (:mod:`opsbook.checkpoint`) and names every tampered,
missing, unsigned, unledgered (running, interrupted, unknown) or reordered record.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import secrets as _secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from opsbook import runlock, runrecord
from opsbook.errors import AuditError, ConfigError, RecordError
from opsbook.ledger import LEDGER_FILE, is_shared, open_ledger
from opsbook.redact import Redactor
from opsbook.runrecord import AnyRecord, Record, RemoteRecord, RunRecord
from opsbook.signing import Signer, TrustStore, refuse_inside_root, signer_from_env

LEDGER = LEDGER_FILE
UNSIGNED = "unsigned"
RUN_JSON = runrecord.RUN_JSON
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


def new_record(root: Path, runbook_name: str, *, lock: bool = True) -> tuple[str, Path]:
    """Create a fresh, uniquely named record folder and return ``(run_id, path)``.

    With ``lock`` (the default) this process holds the record's run lock until
    :func:`seal_record` releases it, so ``verify`` reports it as running while this
    process lives and as interrupted if it dies before sealing.
    """
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
        if lock:
            runlock.acquire(root, run_id)
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
    """Values to redact: every declared secret that is set, and the password inside URLs.

    Kept for callers that want the plain set; :class:`opsbook.redact.Redactor` is the
    redactor (every encoding, short secrets, secrets read in the kernel)."""
    return set(Redactor(env_names).sources)


def redact_value(data: Any, values: set[str]) -> Any:
    """Redact secret values (in every encoding) anywhere inside a JSON-like structure."""
    redactor = Redactor()
    for value in values:
        redactor.add(value, "a given value")
    return redactor.value(data)


def redact_tree(folder: Path, values: set[str]) -> list[str]:
    """Scrub secret values from every file under ``folder``; return the files changed."""
    redactor = Redactor()
    for value in values:
        redactor.add(value, "a given value")
    return redactor.tree(folder)


# -------------------------------------------------------------------------- sealing


def manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file in a record except run.json itself."""
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p != folder / RUN_JSON
    }


def write_run_json(folder: Path, data: Record | dict[str, Any]) -> None:
    """(Re)write run.json while the run is in progress (not sealed yet)."""
    runrecord.write(folder, _as_record(data))


def _as_record(data: Record | dict[str, Any]) -> AnyRecord:
    return data if isinstance(data, Record) else runrecord.parse(data)


_FROM_ENV: Any = object()


def seal_record(
    root: Path,
    folder: Path,
    data: Record | dict[str, Any],
    *,
    redactor: Redactor | None = None,
    secret_env: list[str] | tuple[str, ...] = (),
    signer: Signer | None = _FROM_ENV,
) -> dict[str, Any]:
    """Seal a record folder and append its (signed) ledger entry; return the entry.

    The public sealing step for every kind of record (runs, action records): redact
    every file and ``data`` (a :class:`opsbook.runrecord.Record`, or its JSON form:
    ``run_id`` and ``status`` at least; its approvals and ``kind`` go into the ledger
    entry too), hash every artifact into its ``artifacts``, write ``run.json``
    (updating ``data`` in place to what was sealed), make the files read-only, append a
    ledger entry signed with ``signer`` (default: ``$OPSBOOK_SIGNING_KEY``, checked
    against the trusted keys; None: unsigned), release the run lock and append a
    checkpoint to ``$OPSBOOK_WITNESS`` when set.

    >>> entry = seal_record(root, folder, {"run_id": folder.name, "status": "succeeded"})  # doctest: +SKIP
    """
    if signer is _FROM_ENV:
        signer = signer_from_env(root)
    redactor = redactor or Redactor(secret_env)
    record = _as_record(data)
    redactor.tree(folder)
    sealed = runrecord.parse(redactor.value(record.to_json()))
    warnings = redactor.warnings
    if warnings:
        sealed.redaction_warnings = warnings
    sealed.artifacts = manifest(folder)
    runrecord.write(folder, sealed)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
    extra = {"approvals": sealed.approvals_list, **entry_summary(sealed)}
    if "kind" in sealed.model_fields_set:
        extra["kind"] = sealed.kind.value
    entry = append_ledger(
        root,
        sealed.run_id,
        sealed.status.value,
        sha256_file(folder / RUN_JSON),
        signer=signer,
        extra=extra,
    )
    if isinstance(data, Record):  # in place: the caller holds what was sealed
        data.update_from(sealed)
    else:
        data.clear()
        data.update(sealed.to_json())
    runlock.release(root, sealed.run_id)
    from opsbook.checkpoint import witness

    witness(root, signer, entry)
    return entry


def entry_summary(data: Record | dict[str, Any]) -> dict[str, Any]:
    """What a ledger entry carries of its record, for a team's ledger.

    With a shared ledger (PostgreSQL) a record's folder may live on another machine:
    its entry then still says what ran, by whom and where, the key results, and the
    sha256 of every artifact, so the folder can be checked wherever it is found.
    """
    record = data if isinstance(data, Record) else runrecord.parse_partial(data)
    return {
        "host": socket.gethostname(),
        "user": record.user or whoami(),
        # an action record (opsbook.actions) names its action where a run names its runbook
        "runbook": record.ledger_name,
        "started_at": record.started_at,
        "duration_s": record.duration_s,
        "key_results": record.key_results(),
        "artifacts": dict(record.artifacts),
    }


def seal(root: Path, folder: Path, data: Record | dict[str, Any], secret_env: list[str]) -> str:
    """Redact, hash, write run.json, make read-only, append to the ledger; return its hash."""
    return seal_record(root, folder, data, secret_env=secret_env)["hash"]


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 of an entry's canonical JSON without its ``hash`` and ``signature``."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "signature")}
    return sha256_text(canonical(body))


def read_ledger(root: Path) -> list[dict[str, Any]]:
    return open_ledger(root).entries()


def append_ledger(
    root: Path,
    run_id: str,
    status: str,
    run_json_sha: str,
    *,
    signer: Signer | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one entry chained to the head, signed when ``signer`` is given."""

    def build(head: dict[str, Any] | None) -> dict[str, Any]:
        if head is not None and ("_unreadable" in head or "hash" not in head):
            raise AuditError(
                f"the last entry of the {ledger.describe()} is unreadable: not extending it",
                hint="run `opsbook verify`; the record stays unsealed (`opsbook recover`)",
            )
        entry = {
            "seq": (head["seq"] + 1) if head else 1,
            "run_id": run_id,
            "status": status,
            "run_json_sha256": run_json_sha,
            "sealed_at": now_iso(),
            "prev": head["hash"] if head else GENESIS,
            **(extra or {}),
            "key": signer.fingerprint if signer else UNSIGNED,
        }
        entry["hash"] = entry_hash(entry)
        if signer:
            entry["signature"] = signer.sign(entry["hash"])
        return entry

    ledger = open_ledger(root)
    return ledger.append(build)


# ------------------------------------------------------------------------ verifying


@dataclass
class Verification:
    """What :func:`verify_trail` found: problems (non-empty means fail) and notes."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: int = 0
    signed: int = 0
    unsigned: list[str] = field(default_factory=list)
    unledgered: dict[str, str] = field(default_factory=dict)
    checkpoints: int = 0
    remote: list[str] = field(default_factory=list)


def verify(root: Path, **options: Any) -> list[str]:
    """Every problem in the audit trail under ``root``; an empty list means intact."""
    return verify_trail(root, **options).problems


def verify_trail(
    root: Path,
    *,
    trust: TrustStore | None = None,
    require_signed: bool = False,
    strict: bool = False,
    checkpoints: list[Any] | None = None,
    require_artifacts: bool = False,
) -> Verification:
    """Check the chain, every signature, every record and (given) checkpoints.

    ``require_signed``: an unsigned entry is a problem (what CI and auditors use).
    ``strict``: a record still running (not sealed yet) is a problem too.
    ``require_artifacts``: with a shared ledger, a record whose folder is on another
    machine is a problem too (by default it is listed as a note).
    """
    if trust is None:
        trust = TrustStore.load()
    refuse_inside_root(trust.path, root, "trusted-keys file")
    result = Verification()
    ledger = open_ledger(root)
    shared = is_shared(ledger)
    entries = ledger.entries()
    result.entries = len(entries)
    ledgered: set[str] = set()
    prev = GENESIS
    seen_signed = False
    for index, entry in enumerate(entries, start=1):
        if "_unreadable" in entry:
            result.problems.append(f"ledger line {entry['_line']}: unreadable (edited?)")
            prev = "?"
            continue
        run_id = entry.get("run_id", "?")
        label = f"ledger entry {index} (run {run_id})"
        result.problems += _chain_problems(entry, index, prev, label)
        prev = entry.get("hash", "?")
        signature = _signature_problem(entry, trust)
        if signature == UNSIGNED:
            result.unsigned.append(run_id)
            if require_signed:
                result.problems.append(f"{label}: unsigned (--require-signed)")
            elif seen_signed:
                result.problems.append(
                    f"{label}: unsigned after signed entries (signature stripped?)"
                )
        elif signature:
            result.problems.append(f"{label}: {signature}")
        else:
            result.signed += 1
            seen_signed = True
        if run_id in ledgered:
            result.problems.append(f"{label}: run listed twice in the ledger")
        ledgered.add(run_id)
        remote = _elsewhere(root / run_id, entry) if shared else None
        if remote is None:
            result.problems += verify_record(root / run_id, entry)
        elif require_artifacts:
            result.problems.append(f"{remote} (--require-artifacts)")
        else:
            result.notes.append(remote)
            result.remote.append(run_id)
    _unledgered(root, ledgered, strict, result)
    if checkpoints:
        from opsbook.checkpoint import check_against

        result.checkpoints = len(checkpoints)
        for cp in checkpoints:
            result.problems += check_against(cp, entries, trust)
    return result


def _chain_problems(entry: dict[str, Any], index: int, prev: str, label: str) -> list[str]:
    problems = []
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
    return problems


def _signature_problem(entry: dict[str, Any], trust: TrustStore) -> str | None:
    """None when validly signed, ``UNSIGNED``, or what is wrong with the signature."""
    key = entry.get("key")
    if (key in (None, UNSIGNED)) and "signature" not in entry:
        return UNSIGNED
    return trust.check(key, entry.get("signature"), str(entry.get("hash")), entry.get("sealed_at"))


def _unledgered(root: Path, ledgered: set[str], strict: bool, result: Verification) -> None:
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    for folder in folders:
        if folder.name.startswith(".") or folder.name in ledgered:
            continue
        lock = runlock.state(root, folder.name)
        result.unledgered[folder.name] = lock.state
        where = f"record {folder.name}: not in the ledger"
        if lock.state == "running":
            message = f"{where}: running ({lock.detail})"
            (result.problems if strict else result.notes).append(
                message + (" (--strict)" if strict else "")
            )
        elif lock.state == "interrupted":
            result.problems.append(
                f"{where}: interrupted ({lock.detail}); seal it as failed with "
                f"`opsbook recover {folder.name}`"
            )
        else:
            result.problems.append(
                f"{where}: unknown ({lock.detail}): a planted folder, a dropped ledger "
                "line or a run from before run locks"
            )


def _elsewhere(folder: Path, entry: dict[str, Any]) -> str | None:
    """Why a shared-ledger record cannot be checked here (None: its folder is here).

    A record written on this host whose folder is gone is not "elsewhere": that is a
    deleted record, and :func:`verify_record` says so.
    """
    if folder.is_dir():
        return None
    host = entry.get("host")
    if not host or host == socket.gethostname():
        return None
    count = len(entry.get("artifacts") or {})
    return (
        f"record {folder.name}: written on {host}; its {count} artifact(s) are not "
        "reachable from here (their sha256 are in the signed entry): point "
        "OPSBOOK_AUDIT_DIR at a shared folder to check them"
    )


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
    # only the artifact list is read: the bytes are checked above, and a record written
    # by another opsbook version (a status this one does not know) still verifies
    listed = runrecord.artifacts_of(data)
    if listed is None:
        return problems + [f"record {name}: run.json lists its artifacts in no known form"]
    if "artifacts" in entry and entry["artifacts"] != listed:
        problems.append(f"record {name}: run.json lists other artifacts than its ledger entry")
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


def verify_one(root: Path, run_id: str, trust: TrustStore | None = None) -> list[str]:
    """Problems with one record: its files, its ledger entry and every entry after it.

    Rewriting an entry changes its hash, so every later entry must be re-chained and
    loses its signature: checking the chain and signatures from the record to the head
    (no file hashing) catches it. An unsigned entry in a ledger that has signed ones is
    a stripped signature.
    """
    trust = trust if trust is not None else TrustStore.load()
    entries = read_ledger(root)
    position = next((i for i, e in enumerate(entries) if e.get("run_id") == run_id), None)
    if position is None:
        return [
            f"record {run_id}: not in the ledger (never sealed, or its ledger line was dropped)"
        ]
    problems: list[str] = []
    any_signed = any(_is_signed(e) for e in entries)
    prev = entries[position - 1].get("hash", "?") if position else GENESIS
    for index, entry in enumerate(entries[position:], start=position + 1):
        if "_unreadable" in entry:
            problems.append(f"ledger line {entry['_line']}: unreadable (edited?)")
            prev = "?"
            continue
        label = f"ledger entry {index} (run {entry.get('run_id', '?')})"
        problems += _chain_problems(entry, index, prev, label)
        prev = entry.get("hash", "?")
        signature = _signature_problem(entry, trust)
        if signature == UNSIGNED and any_signed:
            problems.append(f"{label}: unsigned in a ledger of signed entries (stripped?)")
        elif signature and signature != UNSIGNED:
            problems.append(f"{label}: {signature}")
    return problems + verify_record(root / run_id, entries[position])


def _is_signed(entry: dict[str, Any]) -> bool:
    return "signature" in entry and entry.get("key") not in (None, UNSIGNED)


def _load_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable, not UTF-8, not
    JSON or not an object (a tampered or planted run.json must not crash a reader)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------- reading


def list_runs(root: Path) -> list[dict[str, Any]]:
    """run.json of every record under ``root`` as stored (plain JSON), oldest first.

    For tools and tests; opsbook itself reads typed records (:func:`records`)."""
    runs = []
    for folder in _record_folders(root):
        data = _load_json(folder / RUN_JSON)
        if data is not None:
            runs.append(data)
    return runs


def _record_folders(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def records(root: Path) -> list[AnyRecord]:
    """Every record under ``root`` (runs, actions, attachments), oldest first; a folder
    without a readable run.json, or whose run.json is not a record, is skipped."""
    found = (runrecord.read_or_none(folder) for folder in _record_folders(root))
    return [record for record in found if record is not None]


def runs_of(root: Path, runbook: str) -> list[RunRecord]:
    """The runs of one runbook, oldest first."""
    return [r for r in records(root) if isinstance(r, RunRecord) and r.runbook_name == runbook]


def team_runs(root: Path) -> list[dict[str, Any]]:
    """:func:`team_records` as plain JSON, for tools: a local record's run.json, a remote
    one's ledger entry as ``run_id``, ``status``, ``runbook.name``, ``remote`` (its host)..."""
    return [
        r.to_listing() if isinstance(r, RemoteRecord) else r.to_json() for r in team_records(root)
    ]


def team_records(root: Path) -> list[AnyRecord]:
    """Every record the configured ledger knows: local run.json, else what its entry says.

    With the file ledger this is :func:`records`. With a shared ledger (PostgreSQL),
    records sealed on other machines appear too, built from their signed entries
    (:class:`opsbook.runrecord.RemoteRecord`, ``remote`` names the host), so a
    stakeholder's index covers the whole team.
    """
    local = records(root)
    ledger = open_ledger(root)
    if not is_shared(ledger):
        return local
    known = {r.run_id for r in local}
    remote: list[AnyRecord] = []
    for entry in ledger.entries():
        if "_unreadable" in entry or entry.get("run_id") in known:
            continue
        try:
            remote.append(RemoteRecord.from_entry(entry))
        except RecordError:
            continue
    return sorted(local + remote, key=lambda r: (str(r.started_at or ""), r.run_id))


def _record_folder(root: Path, run_id: str) -> Path:
    """The folder of a record; a unique prefix of its id is enough."""
    if root.exists():
        matches = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(run_id)]
    else:
        matches = []
    exact = [p for p in matches if p.name == run_id]
    matches = exact or matches
    if len(matches) != 1:
        known = ", ".join(r.run_id for r in records(root)[-5:]) or "none"
        what = "matches several runs" if matches else "is not a run"
        raise ConfigError(
            f"{run_id!r} {what} under {root}", hint=f"see `opsbook history`; recent runs: {known}"
        )
    return matches[0]


def load_run(root: Path, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The folder and run.json (plain JSON, as stored) of a record; a unique prefix of
    the id is enough. opsbook itself reads :func:`load_record`."""
    folder = _record_folder(root, run_id)
    data = _load_json(folder / RUN_JSON)
    if data is None:
        raise AuditError(f"record {folder.name} has no readable run.json")
    return folder, data


def load_record(root: Path, run_id: str) -> tuple[Path, AnyRecord]:
    """The folder and typed record of a run, action or attachment (a unique prefix of
    the id is enough); :class:`~opsbook.errors.RecordError` when run.json is unreadable."""
    folder = _record_folder(root, run_id)
    return folder, runrecord.read(folder)


def load_run_record(root: Path, run_id: str) -> tuple[Path, RunRecord]:
    """Like :func:`load_record`, for a record that must be a runbook run."""
    folder = _record_folder(root, run_id)
    record = runrecord.read(folder)
    if not isinstance(record, RunRecord):
        raise ConfigError(
            f"{folder.name} is an {record.kind.value} record, not a runbook run",
            hint="`opsbook history` lists the runs",
        )
    return folder, record


def key_results(data: Record | dict[str, Any], limit: int = 6) -> dict[str, Any]:
    """A few scalar outputs per run for tables: bools, numbers and short strings."""
    return _as_record(data).key_results(limit)
