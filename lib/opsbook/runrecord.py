"""The typed audit record: what ``run.json`` holds, written and read only through here.

Every record folder under the audit root holds one ``run.json``. A runbook run writes a
:class:`RunRecord` (its steps are :class:`StepRecord`, its gate approvals
:class:`Approval`); a changing library call writes an :class:`ActionRecord`
(:mod:`opsbook.actions`); a notebook attached to actions writes an
:class:`AttachmentRecord` (:mod:`opsbook.attach`). :func:`parse` picks the model by the
record's ``kind``.

Compatibility with records written before these models:

* unknown fields are kept (``extra="allow"``) and written back, never dropped;
* a field that was absent stays absent when the record is written again
  (:meth:`Record.to_json` dumps only the fields that were set), so a record keeps the
  shape the old code gave it;
* ``opsbook verify`` hashes run.json as stored bytes: a record is never re-serialised
  to be verified.

Statuses and outcomes are enums (:class:`RunStatus`, :class:`StepStatus`): a record
with an unknown status is refused with :class:`opsbook.errors.RecordError`.

The JSON Schema of ``run.json`` (``docs/run-record.schema.json``) is generated from
these models: ``opsbook schema run-record`` or ``python -m opsbook.runrecord``.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsbook.errors import RecordError

RUN_JSON = "run.json"
SCHEMA_VERSION = 1


class RunStatus(StrEnum):
    """Where a run (or an action, an attachment) stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"


class StepStatus(StrEnum):
    """The outcome of one step (and of one attempt: succeeded or failed)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    APPROVED = "approved"
    AWAITING_APPROVAL = "awaiting_approval"
    #: a finished step copied from the run this one resumes (``original_status`` says how)
    CARRIED = "carried"


#: A step that needs no rerun when its run is resumed.
DONE_STEP = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.APPROVED, StepStatus.CARRIED}
)
#: A step that ran a notebook to the end or to an error (its outputs are meaningful).
RAN_STEP = frozenset({StepStatus.SUCCEEDED, StepStatus.CARRIED, StepStatus.FAILED})


class StepKind(StrEnum):
    NOTEBOOK = "notebook"
    GATE = "gate"
    #: a ``uses:`` step: another runbook, whose steps follow it with ``parent`` naming it
    RUNBOOK = "runbook"


class RecordKind(StrEnum):
    RUN = "run"
    ACTION = "action"
    ATTACHMENT = "attachment"


class _Model(BaseModel):
    """Keeps unknown fields, validates assignments, dumps only what was set."""

    model_config = ConfigDict(
        extra="allow",
        validate_assignment=True,
        populate_by_name=True,
        use_enum_values=False,
        use_attribute_docstrings=True,  # the field docstrings describe the JSON Schema
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (plain dicts, lists and scalars) with only the fields set."""
        raw = self.model_dump(by_alias=True, exclude_unset=True)
        return json.loads(json.dumps(raw, ensure_ascii=False, default=str))

    def update_from(self, other: _Model) -> None:
        """Take every field (and extra) of ``other``, a record of the same model."""
        for name in type(self).model_fields:
            object.__setattr__(self, name, getattr(other, name))
        object.__setattr__(self, "__pydantic_extra__", dict(other.__pydantic_extra__ or {}))
        object.__setattr__(self, "__pydantic_fields_set__", set(other.model_fields_set))

    def extra(self, name: str, default: Any = None) -> Any:
        """An unknown field kept from an older (or newer) record."""
        return (self.__pydantic_extra__ or {}).get(name, default)


# ---------------------------------------------------------------------- run records


class Approval(_Model):
    """One approval of a gate: who, when, how (``--approve``, ``--yes``, ``prompt``)."""

    step: str
    """The gate's step id."""
    by: str
    """``user@host`` of the approver."""
    at: str
    """UTC time, ISO 8601."""
    via: str
    """``--approve``, ``--yes`` or ``prompt``."""
    message: str | None = None
    """The gate's message as the approver saw it (absent on a refused approval)."""


class StepError(_Model):
    """Why a step failed: exception name and value, and the cell that raised it."""

    ename: str | None = None
    """Exception name (``StepTimeout``, ``ExecutorDied``, ``Interrupted`` from the runner)."""
    evalue: str | None = None
    cell_index: int | None = None
    """Index of the failing cell in the executed notebook."""

    def short(self, limit: int = 300) -> str:
        return f"{self.ename}: {str(self.evalue)[:limit]}"


class Attempt(_Model):
    """One try of a notebook step (``retries`` gives more)."""

    status: StepStatus
    ename: str | None = None
    evalue: str | None = None
    cell_index: int | None = None
    duration_s: float | None = None
    started_ahead: bool | None = None
    """Whether its child (papermill and kernel) was started while the step before ran."""


class UsesRef(_Model):
    """The runbook a ``uses:`` step ran: its path as written, name, hash and kept copy."""

    path: str
    name: str
    sha256: str
    saved_as: str | None = None
    """The used runbook's text, relative to the record folder (``uses/<step id>.yaml``)."""


class StepRecord(_Model):
    """One step of a run, as it stands: gate, notebook, skipped, carried, rollback, or a
    ``uses:`` step (kind ``runbook``) followed by the steps of the runbook it ran."""

    id: str
    """The step id; a used runbook's step is qualified with the ``uses:`` step's
    (``migration.migrate``)."""
    title: str | None = None
    kind: StepKind = StepKind.NOTEBOOK
    parent: str | None = None
    """On a step of a used runbook: the id of the ``uses:`` step that ran it."""
    uses: UsesRef | None = None
    """On a ``uses:`` step: the runbook it ran (its ``parameters`` are that runbook's)."""
    rollback_for: str | None = None
    """On a rollback step: the step whose failure ran it."""
    # a gate
    message: str | None = None
    approvals_needed: int | None = None
    """``min_approvals`` of the gate."""
    approved_by: list[str] = Field(default_factory=list)
    """Distinct approvers so far."""
    approval: Approval | None = None
    """The approval that opened the gate."""
    refused_approvals: list[Approval] = Field(default_factory=list)
    """Approvals by users the gate's ``approvers`` do not name."""
    # a notebook
    notebook_source: str | None = None
    """The notebook as the runbook names it."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The rendered parameters the notebook ran with (secrets redacted)."""
    started_at: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    status: StepStatus | None = None
    """Absent while the step runs (a runner that died leaves it so: ``opsbook recover``)."""
    reason: str | None = None
    """Why a step was skipped."""
    ended_at: str | None = None
    duration_s: float | None = None
    notebook: str | None = None
    """The executed notebook, relative to the record folder."""
    log: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    """What the notebook recorded with ``opsbook.record(name, value)``."""
    actions: list[str] = Field(default_factory=list)
    """Ids of the action records the step wrote (changes it made)."""
    error: StepError | None = None
    report: str | None = None
    """The stakeholder report (no code), relative to the record folder."""
    full_report: str | None = None
    report_error: str | None = None
    original_status: StepStatus | None = None
    """On a carried step: its status in the run it comes from."""
    from_run: str | None = None
    """On a carried step: the run it comes from."""

    @property
    def ran(self) -> bool:
        """Whether its notebook ran (here or in the run it was carried from)."""
        return self.status in RAN_STEP

    def scalar_outputs(self, limit: int = 8, max_len: int = 60) -> dict[str, Any]:
        """Bools, numbers and short strings among the outputs, for tables."""
        picked = {k: v for k, v in self.outputs.items() if _is_short_scalar(v, max_len)}
        return dict(list(picked.items())[:limit])


class RunbookRef(_Model):
    """The runbook that ran: its text is ``runbook.yaml`` in the record folder."""

    name: str
    description: str = ""
    path: str | None = None
    sha256: str | None = None


class SecretRef(_Model):
    """A secret the runbook declares: its variable and whether it was set (never its value)."""

    env: str
    set: bool = False


class Environment(_Model):
    """Python, platform, key package versions and the suite's git commit."""

    python: str | None = None
    executable: str | None = None
    platform: str | None = None
    cpus: int | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    suite_commit: str | None = None


class Recovered(_Model):
    """Who sealed an interrupted record (``opsbook recover``), when, and its lock."""

    by: str
    at: str
    lock: dict[str, Any] | None = None


class Record(_Model):
    """What every ``run.json`` holds; the base of the three kinds of record."""

    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    """Version of this format."""
    kind: RecordKind = RecordKind.RUN
    """Absent on runbook runs."""
    run_id: str
    """The record folder's name."""
    status: RunStatus
    user: str = ""
    """``user@host`` who ran it."""
    started_at: str | None = None
    """UTC times are ISO 8601 with milliseconds and ``Z``."""
    ended_at: str | None = None
    duration_s: float | None = None
    report_error: str | None = None
    redaction_warnings: list[str] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    """sha256 of every other file of the record folder, by relative path; set when sealed."""

    @property
    def title(self) -> str:
        """What the record is called in tables: its runbook's or action's name."""
        return "?"

    @property
    def remote(self) -> str | None:
        """The host holding the record's folder when it is not on this machine."""
        return None

    @property
    def runbook_name(self) -> str | None:
        """The runbook's name (runs only)."""
        return None

    @property
    def ledger_name(self) -> str | None:
        """What its ledger entry names: the runbook of a run, the call of an action."""
        return self.runbook_name

    @property
    def approvals_list(self) -> list[dict[str, Any]]:
        """The approvals the ledger entry carries (signed with it)."""
        return [a.to_json() if isinstance(a, _Model) else a for a in self.extra("approvals") or []]

    def key_results(self, limit: int = 6) -> dict[str, Any]:
        """A few scalar results for tables (bools, numbers, short strings)."""
        return {}

    #: the order of run.json's keys (what the dict-building code before these models
    #: wrote); unknown keys follow, then :data:`_TAIL`
    KEY_ORDER: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return _ordered(super().to_json(), self.KEY_ORDER)

    def to_text(self) -> str:
        """run.json's text: written in one way (:data:`KEY_ORDER`, two-space indent)."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


class RunRecord(Record):
    """``run.json`` of a runbook run."""

    KEY_ORDER = (
        "schema",
        "kind",
        "run_id",
        "runbook",
        "project_root",
        "status",
        "parameters",
        "secrets",
        "user",
        "started_at",
        "ended_at",
        "duration_s",
        "resumed_from",
        "work_dir",
        "approvals",
        "steps",
        "environment",
        "error",
        "exit_code",
        "recovered",
    )

    kind: Literal[RecordKind.RUN] = RecordKind.RUN
    runbook: RunbookRef | None = None
    """Absent only on a bare record (one sealed by hand or by a test)."""
    project_root: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The runbook's resolved parameters (secrets redacted)."""
    secrets: list[SecretRef] = Field(default_factory=list)
    resumed_from: str | None = None
    """The run this one resumes."""
    work_dir: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    environment: Environment = Field(default_factory=Environment)
    error: str | None = None
    """Why the run stopped outside a step (Ctrl-C, SIGTERM, a template error)."""
    exit_code: int | None = None
    """The documented exit code (``opsbook.errors.ExitCode``)."""
    recovered: Recovered | None = None

    @property
    def title(self) -> str:
        return self.runbook.name if self.runbook else "?"

    @property
    def runbook_name(self) -> str | None:
        return self.runbook.name if self.runbook else None

    @property
    def approvals_list(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.approvals]

    def step(self, step_id: str) -> StepRecord | None:
        """The last entry of ``step_id`` (a rollback may run a step twice)."""
        return next((s for s in reversed(self.steps) if s.id == step_id), None)

    def approvals_of(self, step_id: str) -> list[Approval]:
        return [a for a in self.approvals if a.step == step_id]

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if "steps" in data:
            data["steps"] = [_step_ordered(step) for step in data["steps"]]
        return data

    def key_results(self, limit: int = 6) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for step in self.steps:
            for name, value in step.outputs.items():
                if _is_short_scalar(value, 40):
                    found[name] = value
                if len(found) >= limit:
                    return found
        return found


class Origin(_Model):
    """Where a change came from: a runner step, the ``opsbook`` CLI, an interactive
    kernel (notebook path when Jupyter tells it) or plain Python."""

    kind: str | None = None
    run_id: str | None = None
    step: str | None = None
    argv: list[str] | None = None
    kernel_id: str | None = None
    notebook: str | None = None


class ActionRecord(Record):
    """``run.json`` of an action record: one changing library call (:mod:`opsbook.actions`)."""

    KEY_ORDER = (
        "run_id",
        "action",
        "target",
        "status",
        "user",
        "started_at",
        "ended_at",
        "duration_s",
        "parameters",
        "summary",
        "origin",
        "production",
        "approval",
        "error",
        "environment",
        "kind",
        "schema",
        "approvals",
    )

    kind: Literal[RecordKind.ACTION] = RecordKind.ACTION
    action: str
    target: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)
    origin: Origin = Field(default_factory=Origin)
    production: bool = False
    #: ``by``, ``at``, ``via``, ``note``; from a runner: ``via`` and the run's ``gates``
    approval: dict[str, Any] | None = None
    #: the approval again, as a list: what the ledger entry signs
    approvals: list[dict[str, Any]] = Field(default_factory=list)
    error: StepError | None = None
    environment: Environment = Field(default_factory=Environment)

    @property
    def title(self) -> str:
        return self.action

    @property
    def ledger_name(self) -> str | None:
        return self.action

    @property
    def approvals_list(self) -> list[dict[str, Any]]:
        return list(self.approvals)

    def key_results(self, limit: int = 6) -> dict[str, Any]:
        picked = {k: v for k, v in self.summary.items() if _is_short_scalar(v, 40)}
        return dict(list(picked.items())[:limit])


class AttachedNotebook(_Model):
    name: str
    path: str
    sha256_as_saved: str


class AttachmentRecord(Record):
    """``run.json`` of a notebook attached to action records (:mod:`opsbook.attach`)."""

    KEY_ORDER = (
        "schema",
        "kind",
        "run_id",
        "status",
        "user",
        "started_at",
        "ended_at",
        "duration_s",
        "actions",
        "notebook",
        "origin",
    )

    kind: Literal[RecordKind.ATTACHMENT] = RecordKind.ATTACHMENT
    actions: list[str] = Field(default_factory=list)
    notebook: AttachedNotebook
    origin: Origin = Field(default_factory=Origin)

    @property
    def title(self) -> str:
        return "notebook attached"


class RemoteRecord(Record):
    """A record sealed on another machine, known here only by its shared-ledger entry
    (:func:`opsbook.audit.team_runs`); never written as a run.json."""

    kind: RecordKind = RecordKind.RUN
    host: str = "?"
    #: the runbook's or action's name, as the entry says
    entry_name: str | None = None
    entry_key_results: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> RemoteRecord:
        """The record a shared ledger's entry describes (:func:`opsbook.audit.entry_summary`)."""
        try:
            return cls.model_validate(
                {
                    "run_id": entry["run_id"],
                    "status": entry.get("status"),
                    "kind": entry.get("kind") or RecordKind.RUN,
                    "user": entry.get("user") or "",
                    "started_at": entry.get("started_at"),
                    "duration_s": entry.get("duration_s"),
                    "host": entry.get("host") or "?",
                    "entry_name": entry.get("runbook"),
                    "entry_key_results": entry.get("key_results") or {},
                }
            )
        except (KeyError, ValidationError) as exc:
            raise RecordError(
                f"ledger entry {entry.get('seq')} describes no record: {exc}"
            ) from None

    def to_listing(self) -> dict[str, Any]:
        """What ``opsbook.audit.team_runs`` lists for it (plain JSON)."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "runbook": {"name": self.entry_name or "?"},
            "kind": self.kind.value,
            "action": self.entry_name,
            "user": self.user or None,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "key_results": dict(self.entry_key_results),
            "remote": self.host,
            "steps": [],
        }

    @property
    def title(self) -> str:
        return self.entry_name or "?"

    @property
    def runbook_name(self) -> str | None:
        return self.entry_name if self.kind == RecordKind.RUN else None

    @property
    def ledger_name(self) -> str | None:
        return self.entry_name

    @property
    def remote(self) -> str | None:
        return self.host

    def key_results(self, limit: int = 6) -> dict[str, Any]:
        return dict(list(self.entry_key_results.items())[:limit])


AnyRecord = RunRecord | ActionRecord | AttachmentRecord | RemoteRecord | Record


#: keys written last, in this order, by the sealing (:func:`opsbook.audit.seal_record`)
_TAIL = ("report_error", "redaction_warnings", "artifacts")


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    head = {k: data[k] for k in order if k in data}
    rest = {k: v for k, v in data.items() if k not in head and k not in _TAIL}
    return head | rest | {k: data[k] for k in _TAIL if k in data}


_STEP_ORDER = (
    "id",
    "title",
    "kind",
    "parent",
    "uses",
    "rollback_for",
    "message",
    "refused_approvals",
    "approvals_needed",
    "approved_by",
    "approval",
    "notebook_source",
    "parameters",
    "started_at",
    "attempts",
    "ended_at",
    "duration_s",
    "notebook",
    "log",
    "outputs",
    "actions",
    "error",
    "report",
    "full_report",
    "report_error",
)


def _step_ordered(step: dict[str, Any]) -> dict[str, Any]:
    """A step's keys in the order the runner sets them: its status comes after what a
    gate, a notebook or a ``uses:`` step set before it, right after ``kind`` (and
    ``parent``, ``uses``) for a skipped step."""
    order = list(_STEP_ORDER)
    if "attempts" in step:
        order.insert(order.index("attempts") + 1, "status")
    elif "approved_by" in step:
        order.insert(order.index("approved_by") + 1, "status")
    elif "uses" in step and "started_at" in step:
        order.insert(order.index("started_at") + 1, "status")
    else:
        order[order.index("uses") + 1 : order.index("uses") + 1] = ["status", "reason"]
    head = {k: step[k] for k in order if k in step}
    carried = {k: step[k] for k in ("original_status", "from_run") if k in step}
    rest = {k: v for k, v in step.items() if k not in head and k not in carried}
    return head | rest | carried


def jsonable(value: Any) -> Any:
    """A field's value as plain JSON (a nested model as its JSON form)."""
    return value.to_json() if isinstance(value, _Model) else value


def _is_short_scalar(value: Any, max_len: int) -> bool:
    return isinstance(value, bool | int | float) or (
        isinstance(value, str) and len(value) < max_len
    )


# ------------------------------------------------------------------ template context


def nest_steps(flat: dict[str, Any]) -> dict[str, Any]:
    """Template contexts by qualified id (``migration.migrate``) nested the way templates
    read them (``steps.migration.migrate``).

    >>> nest_steps({"m": {"status": "succeeded"}, "m.a": {"status": "skipped"}})["m"]["a"]
    {'status': 'skipped'}
    """
    nested: dict[str, Any] = {}
    for qid, ctx in flat.items():
        *parents, last = qid.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {"outputs": {}, "status": None})
        node[last] = {**node.get(last, {}), **ctx}
    return nested


def step_context(step: StepRecord) -> dict[str, Any]:
    """What templates see of a finished step: ``outputs`` and ``status``.

    A carried step shows the status it had in the run it comes from; an approved gate
    has the output ``approved``.
    """
    status = step.original_status if step.status == StepStatus.CARRIED else step.status
    outputs = dict(step.outputs)
    if step.kind == StepKind.GATE and status == StepStatus.APPROVED:
        outputs.setdefault("approved", True)
    return {"outputs": outputs, "status": status.value if status else None}


def template_context(
    record: RunRecord, *, folder: Path | str | None = None, step_id: str | None = None
) -> dict[str, Any]:
    """The context of every template about a run: step parameters, ``when:``, gate
    messages (the runner) and the executive summary (:mod:`opsbook.summary`).

    ``params``, ``steps.<id>.outputs|status`` (finished steps only; a step run twice,
    by a rollback, shows its last run), ``run.id|dir|work_dir|runbook`` and, given
    ``step_id``, ``step.id|dir``.
    """
    # a used runbook's steps (id "migration.migrate") read as steps.migration.migrate
    steps = nest_steps({s.id: step_context(s) for s in record.steps if s.status is not None})
    context: dict[str, Any] = {
        "params": record.parameters,
        "steps": steps,
        "run": {
            "id": record.run_id,
            "dir": "" if folder is None else str(folder),
            "work_dir": record.work_dir,
            "runbook": record.runbook_name,
        },
    }
    if step_id is not None:
        step_dir = Path(str(folder or "")) / "steps" / step_id
        context["step"] = {"id": step_id, "dir": str(step_dir)}
    return context


# ------------------------------------------------------------------ reading, writing


def parse(data: Any, where: str = "run.json") -> AnyRecord:
    """The record in ``data`` (a run.json object), by its ``kind``.

    A record without ``kind`` is a runbook run. Raises :class:`RecordError` naming every field that does not fit.
    """
    if not isinstance(data, dict):
        raise RecordError(f"{where}: a record is a JSON object, not {type(data).__name__}")
    kind = data.get("kind", RecordKind.RUN.value)
    model: type[Record]
    if kind == RecordKind.ACTION:
        model = ActionRecord
    elif kind == RecordKind.ATTACHMENT:
        model = AttachmentRecord
    elif kind == RecordKind.RUN:
        model = RunRecord
    else:
        raise RecordError(
            f"{where}: unknown record kind {kind!r} (expected one of "
            + ", ".join(k.value for k in RecordKind)
            + ")",
            hint="a record written by a newer opsbook? upgrade opsbook to read it",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordError(
            f"{where} is not a valid {model.__name__}:\n  - " + "\n  - ".join(_errors(exc)),
            hint="see docs/run-record.schema.json (`opsbook schema run-record`) for the format",
        ) from None


def parse_partial(data: dict[str, Any]) -> AnyRecord:
    """:func:`parse`, or, for a record missing required fields (a ledger entry's
    summary built from a partial record), the fields it has, unvalidated."""
    try:
        return parse(data)
    except RecordError:
        kind = data.get("kind", RecordKind.RUN.value)
        model = {RecordKind.ACTION: ActionRecord, RecordKind.ATTACHMENT: AttachmentRecord}.get(
            kind, RunRecord
        )
        return model.model_construct(**{k: v for k, v in data.items() if k != "schema"})


def parse_run(data: Any, where: str = "run.json") -> RunRecord:
    """Like :func:`parse`, for a record that must be a runbook run."""
    record = parse(data, where)
    if not isinstance(record, RunRecord):
        raise RecordError(
            f"{where} is a {record.kind.value} record, not a runbook run",
            hint="`opsbook history` lists the records and their kinds",
        )
    return record


def _errors(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(record)"
        given = error.get("input")
        shown = f" (given {given!r})" if not isinstance(given, dict | list) else ""
        lines.append(f"{where}: {error['msg']}{shown}")
    return lines


class _Sealed(BaseModel):
    model_config = ConfigDict(extra="ignore")
    artifacts: dict[str, str] = Field(default_factory=dict)


def artifacts_of(data: dict[str, Any]) -> dict[str, str] | None:
    """The ``artifacts`` of a sealed run.json, whatever else it holds (None: malformed).

    What verification reads: a record written by another opsbook version verifies by
    its bytes and artifacts even where :func:`parse` would refuse a field."""
    try:
        return _Sealed.model_validate(data).artifacts
    except ValidationError:
        return None


def read(folder: Path) -> AnyRecord:
    """The record in ``folder/run.json``; :class:`RecordError` when it is unreadable."""
    path = folder / RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError, JSONDecodeError
        raise RecordError(f"record {folder.name} has no readable {RUN_JSON}: {exc}") from None
    return parse(data, f"{folder.name}/{RUN_JSON}")


def read_or_none(folder: Path) -> AnyRecord | None:
    """The record in ``folder``, or None when run.json is missing, unreadable or not a
    record (a tampered or planted run.json must not crash a listing)."""
    try:
        return read(folder)
    except RecordError:
        return None


def write(folder: Path, record: Record) -> Path:
    """(Re)write ``folder/run.json`` atomically from ``record``."""
    path = folder / RUN_JSON
    tmp = folder / (RUN_JSON + ".tmp")
    tmp.write_text(record.to_text(), encoding="utf-8")
    tmp.replace(path)
    return path


def json_schema() -> dict[str, Any]:
    """The JSON Schema of run.json: one of the three kinds of record."""
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(m, "serialization") for m in (RunRecord, ActionRecord, AttachmentRecord)],
        by_alias=True,
        ref_template="#/$defs/{model}",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:opsbook:run-record:{SCHEMA_VERSION}",
        "title": "opsbook run.json",
        "description": (
            "The run.json of an opsbook audit record: a runbook run (no kind, or kind "
            '"run"), an action record (kind "action") or an attachment (kind '
            '"attachment"). Fields not listed may appear (older or newer records); '
            "generated from opsbook.runrecord."
        ),
        "anyOf": [
            {"$ref": "#/$defs/ActionRecord"},
            {"$ref": "#/$defs/AttachmentRecord"},
            {"$ref": "#/$defs/RunRecord"},
        ],
        "$defs": defs["$defs"],
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(json_schema_text())
