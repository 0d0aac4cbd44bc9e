"""Attach a saved notebook, with its outputs, to the action records it produced.

Records are write-once, so attaching does not reopen an action record: it seals a new
record (``"kind": "attachment"``) that holds the notebook exactly as the engineer saved
it (secrets scrubbed like every artifact), its stakeholder report and full report, and
the ids of the action records it belongs to. ``opsbook show ACTION`` and the audit index
list the attachment beside its actions; ``opsbook verify`` detects a later edit of the
sealed copy like any other artifact.

Which actions? Those named explicitly, else the ones whose audit notice
(:data:`opsbook.actions.ACTION_MIME`) is among the notebook's saved outputs, else the
action records whose origin is this notebook.

>>> opsbook.attach()                                  # doctest: +SKIP  (inside the notebook)
$ opsbook attach notebooks/chroma_to_qdrant.ipynb     # from a shell
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from opsbook import actions, audit, runrecord
from opsbook.errors import ConfigError
from opsbook.runrecord import ActionRecord, AttachedNotebook, AttachmentRecord, Origin, RecordKind
from opsbook.settings import audit_root

ATTACHMENT = RecordKind.ATTACHMENT.value


def actions_in_notebook(nb: nbformat.NotebookNode) -> list[str]:
    """Action ids announced in the notebook's saved outputs, in order, without repeats."""
    found: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(actions.ACTION_MIME)
            if isinstance(payload, dict) and payload.get("action_id") not in found:
                found.append(str(payload["action_id"]))
    return found


def actions_from_origin(root: Path, notebook: Path) -> list[str]:
    """Action records whose origin is an interactive kernel serving ``notebook``."""
    wanted = str(notebook.resolve())
    return [
        record.run_id
        for record in audit.records(root)
        if isinstance(record, ActionRecord) and record.origin.notebook == wanted
    ]


def attach(
    notebook: str | Path | None = None,
    action_ids: list[str] | None = None,
    *,
    root: Path | None = None,
) -> str:
    """Seal the saved ``notebook`` into a record attached to its action records.

    Inside a notebook, call it with no argument after saving (Ctrl-S): the notebook is
    the one this kernel serves. Returns the attachment record's id.
    """
    root = root or audit_root()
    path = _notebook(notebook)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise ConfigError(f"{path} is not a readable notebook: {exc}") from None
    ids = list(action_ids or []) or actions_in_notebook(nb) or actions_from_origin(root, path)
    if not ids:
        raise ConfigError(
            f"{path.name} produced no action record: nothing to attach it to",
            hint="run the changing cells first and save, or pass --action ACTION_ID",
        )
    full_ids = []
    for action_id in ids:
        _, record = audit.load_record(root, action_id)
        if not isinstance(record, ActionRecord):
            raise ConfigError(f"{action_id} is a {record.kind.value} record, not an action")
        full_ids.append(record.run_id)
    return _seal(root, path, full_ids)


def _notebook(notebook: str | Path | None) -> Path:
    if notebook is None:
        current = actions.notebook_path()
        if current is None:
            raise ConfigError(
                "cannot tell which notebook this kernel runs",
                hint="pass its path: opsbook.attach('notebooks/chroma_to_qdrant.ipynb')",
            )
        notebook = current
    path = Path(notebook).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"notebook {path} does not exist", hint="save it first, then attach")
    return path


def _seal(root: Path, path: Path, ids: list[str]) -> str:
    record_id, folder = audit.new_record(root, f"attach-{path.stem}")
    shutil.copyfile(path, folder / "notebook.ipynb")
    redactor = actions.redactor_for(json.loads(path.read_text(encoding="utf-8")), [])
    now = audit.now_iso()
    record = AttachmentRecord(
        schema_version=runrecord.SCHEMA_VERSION,
        kind=RecordKind.ATTACHMENT,
        run_id=record_id,
        status=runrecord.RunStatus.SUCCEEDED,
        user=audit.whoami(),
        started_at=now,
        ended_at=now,
        duration_s=None,
        actions=ids,
        notebook=AttachedNotebook(
            name=path.name, path=str(path), sha256_as_saved=audit.sha256_file(path)
        ),
        origin=Origin.model_validate(actions.origin()),
    )
    try:
        from opsbook.report import attachment_pages

        attachment_pages(folder, record)
    except Exception as exc:  # the notebook itself is the record; the pages are derived
        record.report_error = f"{type(exc).__name__}: {exc}"
    audit.seal_record(root, folder, record, redactor=redactor)
    return record_id


def attachments_of(root: Path, action_id: str) -> list[str]:
    """Ids of the attachment records that name ``action_id``."""
    return [
        record.run_id
        for record in audit.records(root)
        if isinstance(record, AttachmentRecord) and action_id in record.actions
    ]
