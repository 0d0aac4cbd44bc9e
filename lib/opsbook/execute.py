"""Execute runbooks: steps through papermill, gates, retries, timeouts, resume.

:func:`run` starts a new run and :func:`resume` continues a stopped or failed one as a
new record linked to the first. Each run writes a record (see :mod:`opsbook.audit`)
whatever happens: a failing cell leaves the executed notebook with the error marked,
a timeout leaves the partial notebook with the running cell marked.

Exit codes: :class:`opsbook.errors.ExitCode`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from opsbook import actions, audit, checkpoint, ledger, process, report, runlock, runrecord
from opsbook.errors import AuditError, ConfigError, ExitCode, OutputError, RunbookError
from opsbook.outputs import ENV_VAR as OUTPUTS_ENV
from opsbook.outputs import OutputSpec, env_value, mismatches
from opsbook.record import results_from_notebook
from opsbook.redact import READ_FILE, Redactor
from opsbook.runbook import (
    LoadedRunbook,
    Runbook,
    Step,
    check_approvals,
    evaluate_condition,
    inspect,
    load,
    render,
    resolve_parameters,
    validate,
)
from opsbook.runbook.compose import Composition, compose
from opsbook.runrecord import (
    Approval,
    Attempt,
    Recovered,
    RunbookRef,
    RunRecord,
    RunStatus,
    SecretRef,
    StepError,
    StepKind,
    StepRecord,
    StepStatus,
    UsesRef,
    template_context,
)
from opsbook.settings import audit_root
from opsbook.signing import TrustStore, signer_from_env

Echo = Callable[[str], None]


@dataclass
class RunOptions:
    """How to run: approvals, interactivity, output, kernel and where records go."""

    approve: set[str] = field(default_factory=set)
    yes: bool = False
    interactive: bool = False
    confirm: Callable[[str], bool] | None = None
    log_output: bool = False
    progress_bar: bool = True
    kernel_name: str | None = None
    #: Start the next step's child (papermill and its own fresh kernel) while a step runs.
    #: On unless ``OPSBOOK_START_AHEAD=0``; kernels use private Unix sockets (no port race).
    start_ahead: bool = field(default_factory=lambda: os.environ.get("OPSBOOK_START_AHEAD") != "0")
    root: Path | None = None
    work_root: Path | None = None
    echo: Echo = print


@dataclass
class RunResult:
    run_id: str
    status: RunStatus
    exit_code: int
    folder: Path
    record: RunRecord

    @property
    def data(self) -> dict[str, Any]:
        """The record as sealed in run.json (its JSON form)."""
        return self.record.to_json()


# -------------------------------------------------------------------------- public


def run(
    path: str | Path, params: dict[str, Any] | None = None, options: RunOptions | None = None
) -> RunResult:
    """Validate and execute a runbook; always returns (or raises before any record)."""
    options = options or RunOptions()
    loaded = load(path)
    check(loaded)
    composition = compose(loaded)
    check_approvals(loaded.runbook, options.approve, composition.gate_ids())
    resolved = resolve_parameters(loaded.runbook, params or {})
    with _sigterm_as_interrupt():
        return _Run(composition, resolved, options).execute()


def resume(run_id: str, options: RunOptions | None = None) -> RunResult:
    """Continue a stopped or failed run from the step where it stopped, as a new record."""
    options = options or RunOptions()
    root = options.root or audit_root()
    folder, previous = audit.load_run_record(root, run_id)
    problems = audit.verify_one(root, folder.name, TrustStore.load())
    if problems:
        raise AuditError(
            f"run {folder.name} does not verify; refusing to resume it:\n  - "
            + "\n  - ".join(problems),
            hint="a tampered record is never resumed: start a new run with `opsbook run`"
            " (an interrupted record: `opsbook recover` it first)",
        )
    if previous.status == RunStatus.SUCCEEDED:
        raise ConfigError(
            f"run {previous.run_id} succeeded: there is nothing to resume",
            hint="start a new run with `opsbook run`",
        )
    if previous.runbook is None or previous.runbook.path is None:
        raise AuditError(f"run {previous.run_id} names no runbook: it cannot be resumed")
    loaded = load(folder / "runbook.yaml")
    loaded.path = Path(previous.runbook.path)
    loaded.root = Path(str(previous.project_root))
    check(loaded)
    composition = compose(loaded)
    _check_used_unchanged(composition, previous)
    check_approvals(loaded.runbook, options.approve, composition.gate_ids())
    with _sigterm_as_interrupt():
        return _Run(composition, previous.parameters, options, previous=previous).execute()


def _check_used_unchanged(composition: Composition, previous: RunRecord) -> None:
    """Refuse to resume when a runbook the run uses changed since the run started."""
    now = {qid: audit.sha256_text(comp.loaded.text) for qid, comp in _used(composition)}
    for entry in previous.steps:
        if entry.kind != StepKind.RUNBOOK or entry.uses is None:
            continue
        if now.get(entry.id) != entry.uses.sha256:
            raise ConfigError(
                f"run {previous.run_id}: step {entry.id!r} used {entry.uses.path} "
                f"(sha256 {entry.uses.sha256[:12]}), which has changed since",
                hint="start a new run with `opsbook run`, or restore the used runbook",
            )


def _used(composition: Composition, prefix: str = "") -> list[tuple[str, Composition]]:
    """Every runbook used below ``composition``, by the qualified id of its step."""
    found = []
    for step_id, child in composition.children.items():
        found.append((prefix + step_id, child))
        found += _used(child, f"{prefix}{step_id}.")
    return found


def recover(run_id: str, root: Path | None = None) -> tuple[Path, RunRecord]:
    """Seal an interrupted record (its runner died: SIGKILL, power loss) as failed.

    Refuses a record that is already in the ledger or whose runner is still alive.
    Redacts the record first (the secrets it declared, URL passwords, variables its
    notebooks read with ``settings.secret()``), then seals and signs it like a run.
    """
    root = root or audit_root()
    signer = signer_from_env(root)  # before anything is written
    ledger.preflight(root)
    folder, record = audit.load_run_record(root, run_id)
    run_id = folder.name
    if any(e.get("run_id") == run_id for e in audit.read_ledger(root)):
        raise ConfigError(f"run {run_id} is already sealed: there is nothing to recover")
    lock = runlock.state(root, run_id)
    if lock.state == "running":
        raise ConfigError(
            f"run {run_id} is still running ({lock.detail})",
            hint="stop it (Ctrl-C or SIGTERM seals it as failed) or wait for it to finish",
        )
    redactor = Redactor([s.env for s in record.secrets if s.env])
    redactor.add_from_data(record.parameters)
    by = audit.whoami()
    for step in record.steps:
        if step.status in (None, StepStatus.RUNNING):
            step.status = StepStatus.FAILED
            step.error = StepError(
                ename="Interrupted", evalue="the runner died while this step ran", cell_index=None
            )
    record.status = RunStatus.FAILED
    record.exit_code = ExitCode.FAILED
    record.error = f"interrupted: the runner died ({lock.detail}); recovered by {by}"
    record.recovered = Recovered(by=by, at=audit.now_iso(), lock=lock.lock)
    audit.seal_record(root, folder, record, redactor=redactor, signer=signer)
    with contextlib.suppress(Exception):  # derived; `opsbook report` rebuilds it
        report.audit_index(root)
    return folder, record


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the child is killed and the record sealed as failed."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _sigterm_deferred() -> Iterator[None]:
    """Hold SIGTERM back while the record is sealed; it is delivered right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def check(loaded: LoadedRunbook) -> None:
    problems = validate(loaded)
    if problems:
        raise RunbookError(
            f"{loaded.path.name} is invalid:\n  - " + "\n  - ".join(problems),
            hint="fix the runbook or the notebook's parameters cell; "
            "`opsbook validate` lists every problem",
        )


def default_kernel() -> str:
    """``$OPSBOOK_KERNEL``, else the ``opsbook`` kernel when registered, else ``python3``.

    The notebooks name the ``opsbook`` kernel (so JupyterLab preselects it); where it is
    not registered (a plain ``pip install``), ipykernel's ``python3`` runs them instead.
    """
    if os.environ.get("OPSBOOK_KERNEL"):
        return os.environ["OPSBOOK_KERNEL"]
    prefix_spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "opsbook"
    return "opsbook" if prefix_spec.is_dir() else "python3"


# ---------------------------------------------------------------------------- state


@dataclass(eq=False)
class _Scope:
    """The steps of one runbook in a run: the run's own, or those a ``uses:`` step runs."""

    loaded: LoadedRunbook
    #: ``""`` for the run's runbook, ``"<uses id>."`` (nested: ``"a.b."``) for a used one.
    prefix: str = ""
    parent: _Scope | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: pending (not reached), open (its steps run), closed, skipped or failed.
    state: str = "open"
    #: The record entry of the ``uses:`` step (``None`` for the run's own runbook).
    entry: StepRecord | None = None
    #: A step failed with ``on_failure: continue``: the ``uses:`` step fails when it ends.
    had_failure: bool = False
    began: float = 0.0

    @property
    def rb(self) -> Runbook:
        return self.loaded.runbook

    @property
    def uses_id(self) -> str:
        """The qualified id of the ``uses:`` step that runs this scope."""
        return self.prefix[:-1]

    def active(self) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if scope.state != "open":
                return False
            scope = scope.parent
        return True


@dataclass(eq=False)
class _Unit:
    """One thing the main loop does: run a step, or open / close a used runbook."""

    kind: str  # step | open | close
    step: Step
    scope: _Scope  # the scope the step belongs to
    qid: str  # qualified id: "migrate", "migration.migrate"
    child: _Scope | None = None  # for open / close: the used runbook's scope

    @property
    def is_rollback(self) -> bool:
        return self.step.id in self.scope.rb.rollback_step_ids


def _plan(composition: Composition, scope: _Scope) -> list[_Unit]:
    """The run's units in order; a used runbook's steps between its open and close."""
    units: list[_Unit] = []
    for step in composition.loaded.runbook.steps:
        qid = scope.prefix + step.id
        if step.uses is None:
            units.append(_Unit("step", step, scope, qid))
            continue
        used = composition.children[step.id]
        child = _Scope(used.loaded, qid + ".", scope, state="pending")
        units.append(_Unit("open", step, scope, qid, child))
        units += _plan(used, child)
        units.append(_Unit("close", step, scope, qid, child))
    return units


class _Run:
    """One execution of a runbook, writing its record as it goes."""

    def __init__(
        self,
        composition: Composition,
        params: dict[str, Any],
        options: RunOptions,
        previous: RunRecord | None = None,
    ) -> None:
        loaded = composition.loaded
        self.loaded = loaded
        self.rb = loaded.runbook
        self.params = params
        self.scope = _Scope(loaded, params=params)
        self.units = _plan(composition, self.scope)
        self.secrets = composition.secrets()  # the used runbooks' too
        self.options = options
        self.previous = previous
        self.root = options.root or audit_root()
        # key, trusted keys and witness are checked before anything is written
        self.signer = signer_from_env(self.root)
        checkpoint.witness_path(self.root)
        ledger.preflight(self.root)
        self.secret_env = [s.env for s in self.secrets]
        self.warm = process.WarmChildren()
        self.redactor = Redactor(self.secret_env)
        self.redactor.add_from_data(params)
        self.run_id, self.folder = audit.new_record(self.root, self.rb.name)  # and its lock
        work_root = options.work_root or Path(os.environ.get("OPSBOOK_WORK_DIR", "work"))
        self.work_dir = (
            Path(str(previous.work_dir))
            if previous and previous.work_dir
            else (work_root / self.run_id).resolve()
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.record = self._initial_record()

    def _initial_record(self) -> RunRecord:
        (self.folder / "runbook.yaml").write_text(self.loaded.text, encoding="utf-8")
        record = RunRecord(
            schema_version=runrecord.SCHEMA_VERSION,
            run_id=self.run_id,
            runbook=RunbookRef(
                name=self.rb.name,
                description=self.rb.description,
                path=str(self.loaded.path),
                sha256=audit.sha256_text(self.loaded.text),
            ),
            project_root=str(self.loaded.root),
            status=RunStatus.RUNNING,
            parameters=self.params,
            secrets=[SecretRef(env=s.env, set=bool(os.environ.get(s.env))) for s in self.secrets],
            user=audit.whoami(),
            started_at=audit.now_iso(),
            ended_at=None,
            duration_s=None,
            resumed_from=self.previous.run_id if self.previous else None,
            work_dir=str(self.work_dir),
            approvals=[],
            steps=[],
            environment=audit.environment_info(self.loaded.root),
        )
        self._save(record)
        return record

    def _save(self, record: RunRecord | None = None) -> None:
        """Write run.json, redacted: even a killed run leaves no plain secret in it."""
        self.redactor.refresh(self.folder)
        audit.write_run_json(self.folder, self._redacted(record or self.record))

    def _redacted(self, record: RunRecord) -> RunRecord:
        return runrecord.parse_run(self.redactor.value(record.to_json()))

    def _echo(self, line: str) -> None:
        self.options.echo(self.redactor.text(line))

    # ------------------------------------------------------------------ main loop

    def execute(self) -> RunResult:
        started = time.monotonic()
        echo = self._echo
        count = sum(unit.kind == "step" for unit in self.units)
        echo(f"run {self.run_id}: {self.rb.name} ({count} steps)")
        status, exit_code = RunStatus.SUCCEEDED, ExitCode.OK
        start_at = self._carry_previous()
        try:
            for unit in self.units[start_at:]:
                outcome = self._do_unit(unit)
                if outcome == "awaiting_approval":
                    status, exit_code = RunStatus.AWAITING_APPROVAL, ExitCode.AWAITING_APPROVAL
                    self._mark_open_scopes(StepStatus.AWAITING_APPROVAL, unit.scope)
                    break
                if outcome == "failed_continue":
                    status, exit_code = RunStatus.FAILED, ExitCode.FAILED
                    unit.scope.had_failure = True
                if outcome == "abort":
                    status, exit_code = RunStatus.FAILED, ExitCode.FAILED
                    if not self._abort_scope(unit.scope):
                        break
        except KeyboardInterrupt as exc:
            status, exit_code = RunStatus.FAILED, ExitCode.FAILED
            self.record.error = (
                "terminated (SIGTERM)"
                if isinstance(exc, Terminated)
                else "interrupted by the user (Ctrl-C)"
            )
            raise
        except RunbookError as exc:  # a template failed at run time
            status, exit_code = RunStatus.FAILED, ExitCode.FAILED
            self.record.error = str(exc)
            echo(f"  error: {exc}")
        finally:
            self.warm.close()  # a child started for a step that will not run; kernel dirs
            if status != RunStatus.AWAITING_APPROVAL:
                self._mark_open_scopes(StepStatus.FAILED)  # a used runbook left half-run
            self._finish(status, exit_code, time.monotonic() - started)
        return RunResult(self.run_id, status, exit_code, self.folder, self.record)

    def _carry_previous(self) -> int:
        """Copy finished steps of the run being resumed; return the unit to continue at.

        A used runbook that had not finished is opened again with the parameters it had;
        its finished steps are carried like the run's own.
        """
        if not self.previous:
            return 0
        self.record.approvals = [a.model_copy(deep=True) for a in self.previous.approvals]
        where = {unit.qid: i for i, unit in enumerate(self.units) if unit.kind != "close"}
        position = 0
        for old in self.previous.steps:
            index = where.get(old.id)
            if index is None:
                continue
            unit = self.units[index]
            finished = old.status in runrecord.DONE_STEP
            if unit.child is not None and not finished:  # reopen the used runbook
                entry = old.model_copy(deep=True)
                entry.status, entry.error, entry.ended_at = StepStatus.RUNNING, None, None
                self.record.steps.append(entry)
                unit.child.entry, unit.child.params = entry, dict(old.parameters)
                unit.child.state, unit.child.began = "open", time.monotonic()
                position = index + 1
                continue
            if not finished:
                return index
            carried = old.model_copy(deep=True)
            carried.original_status = old.status
            carried.status = StepStatus.CARRIED
            carried.from_run = self.previous.run_id
            self.record.steps.append(carried)
            if unit.child is not None:  # a used runbook that had finished
                unit.child.state = "skipped" if old.status == StepStatus.SKIPPED else "closed"
            position = index + 1
        return position

    def _context(self, unit: _Unit) -> dict[str, Any]:
        """The templates' context; in a used runbook, its own ``params`` and ``steps``."""
        context = template_context(self.record, folder=self.folder, step_id=unit.qid)
        for part in unit.scope.prefix.split(".")[:-1]:
            context["steps"] = context["steps"].get(part, {})
        context["params"] = unit.scope.params
        return context

    def _step_dir(self, unit: _Unit) -> Path:
        return self.folder / "steps" / unit.qid

    def _new_entry(self, unit: _Unit, kind: StepKind, **fields: Any) -> StepRecord:
        entry = StepRecord(id=unit.qid, title=unit.step.title, kind=kind, **fields)
        if unit.scope.parent is not None:
            entry.parent = unit.scope.uses_id
        self.record.steps.append(entry)
        return entry

    def _do_unit(self, unit: _Unit) -> str:
        if not unit.scope.active():  # inside a used runbook that was skipped or failed
            self.warm.forget(unit.qid)  # its child, started ahead, will not be needed
            return "continue"
        if unit.kind == "open":
            return self._open(unit)
        if unit.kind == "close":
            return self._close(unit)
        return self._do_step(unit)

    # ------------------------------------------------------------- used runbooks

    def _open(self, unit: _Unit) -> str:
        """Start a used runbook: record its step, render ``with:``, check its parameters."""
        step, child = unit.step, unit.child
        assert child is not None and step.uses is not None
        uses = UsesRef(
            path=step.uses,
            name=child.rb.name,
            sha256=audit.sha256_text(child.loaded.text),
            saved_as=f"uses/{unit.qid}.yaml",
        )
        saved = self.folder / str(uses.saved_as)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(child.loaded.text, encoding="utf-8")
        entry = self._new_entry(unit, StepKind.RUNBOOK, uses=uses)
        child.entry = entry
        context = self._context(unit)
        if step.when is not None and not evaluate_condition(step.when, context):
            child.state = "skipped"
            return self._skip(unit, entry, f"when: {step.when} was false")
        entry.started_at = audit.now_iso()
        try:
            child.params = resolve_parameters(child.rb, render(step.with_, context))
        except ConfigError as exc:  # a template, or a value the used runbook refuses
            child.state = "failed"
            entry.status, entry.ended_at = StepStatus.FAILED, audit.now_iso()
            entry.error = StepError(ename=type(exc).__name__, evalue=exc.message)
            self._echo(f"- {unit.qid}: FAILED ({exc.message})")
            self._save()
            return "failed_continue" if step.on_failure == "continue" else "abort"
        self.redactor.add_from_data(child.params)
        entry.parameters = child.params
        entry.status = StepStatus.RUNNING
        child.state, child.began = "open", time.monotonic()
        self._echo(f"- {unit.qid}: runs {step.uses} ({child.rb.name})")
        self._save()
        return "continue"

    def _close(self, unit: _Unit) -> str:
        """End a used runbook whose steps all ran: it succeeded unless one failed."""
        child = unit.child
        assert child is not None and child.entry is not None
        if child.state != "open":
            return "continue"
        child.state = "closed"
        self._end_entry(child, StepStatus.FAILED if child.had_failure else StepStatus.SUCCEEDED)
        self._echo(f"  {unit.qid}: {child.entry.status}")
        self._save()
        if child.entry.status == StepStatus.SUCCEEDED:
            return "continue"
        return "failed_continue" if unit.step.on_failure == "continue" else "abort"

    def _end_entry(self, scope: _Scope, status: StepStatus) -> None:
        assert scope.entry is not None
        scope.entry.status = status
        scope.entry.ended_at = audit.now_iso()
        scope.entry.duration_s = round(time.monotonic() - scope.began, 3)

    def _abort_scope(self, scope: _Scope) -> bool:
        """A step of ``scope`` aborted: fail the used runbooks it sits in, outwards, up to
        one whose ``uses:`` step says ``on_failure: continue``. Returns whether the run
        goes on (``False``: the run's own runbook aborts)."""
        while scope.parent is not None:
            if scope.state == "open":
                scope.state = "failed"
                self._end_entry(scope, StepStatus.FAILED)
                self._echo(f"  {scope.uses_id}: failed")
            uses_step = scope.parent.rb.step(scope.uses_id.rsplit(".", 1)[-1])
            if uses_step.on_failure == "continue":
                scope.parent.had_failure = True
                self._save()
                return True
            scope = scope.parent
        self._save()
        return False

    def _mark_open_scopes(self, status: StepStatus, scope: _Scope | None = None) -> None:
        """Give the entries of used runbooks still open (all of them, or ``scope`` and
        those around it) the run's final status: awaiting approval, or failed."""
        if scope is None:
            scopes = [u.child for u in self.units if u.kind == "open" and u.child is not None]
        else:
            scopes = []
            while scope.parent is not None:
                scopes.append(scope)
                scope = scope.parent
        for open_scope in scopes:
            if open_scope.state == "open" and open_scope.entry is not None:
                open_scope.entry.status = status

    def _do_step(self, unit: _Unit) -> str:
        """Run one step; return continue | abort | awaiting_approval | failed_continue."""
        step = unit.step
        entry = self._new_entry(unit, StepKind.GATE if step.is_gate else StepKind.NOTEBOOK)
        if unit.is_rollback:
            return self._skip(unit, entry, "rollback step: runs only when a step fails")
        context = self._context(unit)
        if step.when is not None and not evaluate_condition(step.when, context):
            self.warm.forget(unit.qid)  # its child, started ahead, will not be needed
            return self._skip(unit, entry, f"when: {step.when} was false")
        if step.is_gate:
            return self._gate(unit, entry, context)
        return self._notebook(unit, entry, context)

    def _skip(self, unit: _Unit, entry: StepRecord, reason: str) -> str:
        entry.status = StepStatus.SKIPPED
        entry.reason = reason
        self._echo(f"- {unit.qid}: skipped ({reason})")
        self._save()
        return "continue"

    # ----------------------------------------------------------------------- gates

    def _gate(self, unit: _Unit, entry: StepRecord, context: dict[str, Any]) -> str:
        step, gate_id = unit.step, unit.qid  # a used runbook's gate: "migration.approve"
        message = str(render(step.message, context)) if step.message else f"Approve {gate_id}?"
        entry.message = message
        via = None
        if gate_id in self.options.approve:
            via = "--approve"
        elif self.options.yes:
            via = "--yes"
        elif self.options.interactive and self.options.confirm is not None:
            via = "prompt" if self.options.confirm(f"[{gate_id}] {message}") else None
        if via is not None:
            self._approve(unit, entry, message, via)
        approvals = self.record.approvals_of(gate_id)
        distinct = sorted({a.by for a in approvals})
        entry.approvals_needed = step.min_approvals
        entry.approved_by = distinct
        if len(distinct) < step.min_approvals:
            entry.status = StepStatus.AWAITING_APPROVAL
            count = f" ({len(distinct)}/{step.min_approvals} approvals)" * (step.min_approvals > 1)
            who = f" from one of {', '.join(step.approvers)}" if step.approvers else ""
            self._echo(
                f"- {gate_id}: awaiting approval{count}{who}: {message}\n"
                f"  continue with: opsbook resume {self.run_id} --approve {gate_id}"
            )
            self._save()
            return "awaiting_approval"
        entry.status = StepStatus.APPROVED
        entry.approval = approvals[-1].model_copy(deep=True)
        self._echo(f"- {gate_id}: approved by {', '.join(distinct)}")
        self._save()
        return "continue"

    def _approve(self, unit: _Unit, entry: StepRecord, message: str, via: str) -> None:
        """Record one approval, unless its user may not approve or already did."""
        step, gate_id = unit.step, unit.qid
        by = audit.whoami()
        approval = Approval(step=gate_id, by=by, at=audit.now_iso(), via=via)
        if step.approvers and not _allowed(by, step.approvers):
            entry.refused_approvals = [*entry.refused_approvals, approval]
            self._echo(
                f"- {gate_id}: approval by {by} does not count: approvers are "
                f"{', '.join(step.approvers)}"
            )
            return
        if any(a.by == by for a in self.record.approvals_of(gate_id)):
            self._echo(f"- {gate_id}: {by} already approved; another user must approve")
            return
        approval.message = message
        self.record.approvals.append(approval)

    # ------------------------------------------------------------------- notebooks

    def _notebook(self, unit: _Unit, entry: StepRecord, context: dict[str, Any]) -> str:
        step = unit.step
        step_dir = self._step_dir(unit)
        step_dir.mkdir(parents=True, exist_ok=True)
        parameters = render(step.parameters, context)
        entry.notebook_source = str(step.notebook)
        entry.parameters = parameters
        entry.started_at = audit.now_iso()
        entry.attempts = []
        began = time.monotonic()
        outcome = Attempt(status=StepStatus.FAILED)
        attempts = step.retries + 1
        for attempt in range(1, attempts + 1):
            self._echo(
                f"- {unit.qid}: running {step.notebook}"
                + (f" (attempt {attempt}/{attempts})" if attempt > 1 else "")
            )
            outcome = self._attempt(unit, step_dir, parameters, attempt)
            entry.attempts.append(outcome)
            if outcome.status == StepStatus.SUCCEEDED:
                break
        nb_path = step_dir / "notebook.ipynb"
        outputs = self._read_outputs(nb_path)
        if outcome.status == StepStatus.SUCCEEDED:
            outcome = self._check_outputs(unit, outputs) or outcome
        entry.status = outcome.status
        entry.ended_at = audit.now_iso()
        entry.duration_s = round(time.monotonic() - began, 3)
        entry.notebook = f"steps/{unit.qid}/notebook.ipynb"
        entry.log = f"steps/{unit.qid}/step.log"
        entry.outputs = outputs
        entry.actions = actions.step_actions(step_dir)  # changes the notebook made
        if outcome.status != StepStatus.SUCCEEDED:
            entry.error = StepError(
                ename=outcome.ename, evalue=outcome.evalue, cell_index=outcome.cell_index
            )
        self._reports(unit, entry, nb_path)
        self._save()
        return self._after(unit, entry)

    def _after(self, unit: _Unit, entry: StepRecord) -> str:
        echo = self._echo
        step = unit.step
        if entry.status == StepStatus.SUCCEEDED:
            echo(f"  {unit.qid}: succeeded in {entry.duration_s or 0:.1f}s")
            return "continue"
        err = entry.error or StepError()
        echo(f"  {unit.qid}: FAILED ({err.short()}); see {self.folder / str(entry.notebook)}")
        if step.on_failure == "continue":
            return "failed_continue"
        if step.on_failure != "abort":
            rollback = next(
                u
                for u in self.units
                if u.scope is unit.scope and u.kind == "step" and u.step.id == step.on_failure
            )
            echo(f"- {unit.qid}: running rollback step {rollback.qid}")
            rb_entry = self._new_entry(rollback, StepKind.NOTEBOOK, rollback_for=unit.qid)
            if not rollback.step.is_gate:
                self._notebook(rollback, rb_entry, self._context(rollback))
        return "abort"

    def _declared_outputs(self, unit: _Unit) -> dict[str, OutputSpec] | None:
        return inspect(unit.scope.loaded.notebook_path(unit.step)).outputs

    def _check_outputs(self, unit: _Unit, outputs: dict[str, Any]) -> Attempt | None:
        """A failed outcome when the recorded outputs do not match the declaration."""
        declaration = self._declared_outputs(unit)
        problems = mismatches(declaration, outputs) if declaration is not None else []
        if not problems:
            return None
        return Attempt(
            status=StepStatus.FAILED,
            ename=OutputError.__name__,
            evalue=f"step {unit.qid!r} ({unit.step.notebook}): " + "; ".join(problems),
            cell_index=None,
        )

    def _read_outputs(self, nb_path: Path) -> dict[str, Any]:
        if not nb_path.exists():
            return {}
        try:
            return results_from_notebook(nbformat.read(nb_path, as_version=4))
        except Exception:  # a truncated notebook after a kill: keep what the record has
            return {}

    def _attempt(
        self, unit: _Unit, step_dir: Path, parameters: dict[str, Any], attempt: int
    ) -> Attempt:
        step = unit.step
        output = step_dir / "notebook.ipynb"
        if output.exists() and attempt > 1:
            output.replace(step_dir / f"notebook.attempt{attempt - 1}.ipynb")
        result_path = step_dir / ".result.json"
        result_path.unlink(missing_ok=True)
        spec: dict[str, Any] = {
            "input": str(unit.scope.loaded.notebook_path(step)),
            "output": str(output),
            "parameters": parameters,
            "kernel_name": self.options.kernel_name or default_kernel(),
            "cwd": str(self.loaded.root),
            "log_output": True,
            "progress_bar": self.options.progress_bar,
            "result_path": str(result_path),
            "secret_env": self.secret_env,
            "step_dir": str(step_dir),
            "parent_pid": os.getpid(),
        }
        env = self._child_env(unit)
        began = time.monotonic()
        proc = self.warm.take(unit.qid, env, spec)
        started_ahead = proc is not None
        proc = proc or self.warm.start_now(env)
        self._start_next(unit)  # its kernel starts while this step runs
        with (step_dir / "step.log").open("a", encoding="utf-8") as log:
            log.write(f"== attempt {attempt} at {audit.now_iso()}\n")
            code, timed_out = self.warm.run(
                proc,
                json.dumps(spec, default=str),
                process.Tee(log, self.options.log_output, self.redactor, step_dir / READ_FILE),
                step.timeout_s,
            )
        outcome: dict[str, Any]
        if timed_out:
            outcome = {
                "status": "failed",
                "ename": "StepTimeout",
                "evalue": f"step {unit.qid} exceeded timeout_s={step.timeout_s}",
                "cell_index": _mark_timeout(output, step.timeout_s),
            }
        elif result_path.exists():
            outcome = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            outcome = {
                "status": "failed",
                "ename": "ExecutorDied",
                "evalue": f"papermill process exited with code {code}",
                "cell_index": None,
            }
        result_path.unlink(missing_ok=True)
        return Attempt(
            status=outcome.get("status", StepStatus.FAILED),
            ename=outcome.get("ename"),
            evalue=outcome.get("evalue"),
            cell_index=outcome.get("cell_index"),
            duration_s=round(time.monotonic() - began, 3),
            started_ahead=started_ahead,
        )

    def _child_env(self, unit: _Unit) -> dict[str, str]:
        declaration = self._declared_outputs(unit)
        return process.child_env(
            OPSBOOK_RUN_ID=self.run_id,
            OPSBOOK_STEP_DIR=str(self._step_dir(unit)),
            OPSBOOK_AUDIT_DIR=str(self.root),  # action records land in this run's ledger
            # opsbook.record_all records exactly what the notebook declares
            **{OUTPUTS_ENV: env_value(declaration)} if declaration is not None else {},
        )

    def _start_next(self, unit: _Unit) -> None:
        """Start the child (papermill and a fresh kernel) of the step expected after
        ``unit``, so that it is ready when its turn comes (:class:`process.WarmChildren`)."""
        upcoming = self._expected_after(unit) if self.options.start_ahead else None
        if upcoming is None:
            return
        warmup = process.Warmup(
            kernel_name=self.options.kernel_name or default_kernel(),
            cwd=str(self.loaded.root),
            parent_pid=os.getpid(),
        )
        self.warm.start(upcoming.qid, self._child_env(upcoming), warmup)

    def _expected_after(self, unit: _Unit) -> _Unit | None:
        """The next notebook step on the normal path, when no gate will stop the run first.

        A guess: a ``when:`` may skip it and a failure may run a rollback instead; the
        started child is then discarded and the step that does run starts its own.
        """
        if unit.is_rollback:
            return None
        for upcoming in self.units[self.units.index(unit) + 1 :]:
            if upcoming.kind != "step" or upcoming.is_rollback:
                continue
            if upcoming.step.is_gate:
                if upcoming.qid in self.options.approve or self.options.yes:
                    continue
                return None
            return upcoming
        return None

    def _reports(self, unit: _Unit, entry: StepRecord, nb_path: Path) -> None:
        if not nb_path.exists():
            return
        try:
            report.step_reports(nb_path, entry, self.record)
            entry.report = f"steps/{unit.qid}/report.html"
            entry.full_report = f"steps/{unit.qid}/full.html"
        except Exception as exc:  # a report must never hide the step's own outcome
            entry.report_error = f"{type(exc).__name__}: {exc}"

    # -------------------------------------------------------------------- finish

    def _finish(self, status: RunStatus, exit_code: int, duration: float) -> None:
        with _sigterm_deferred():  # a SIGTERM now would leave a half-sealed record
            self._seal(status, exit_code, duration)

    def _seal(self, status: RunStatus, exit_code: int, duration: float) -> None:
        self.record.status = status
        self.record.exit_code = exit_code
        self.record.ended_at = audit.now_iso()
        self.record.duration_s = round(duration, 3)
        self.redactor.refresh(self.folder)
        self.record = self._redacted(self.record)
        try:
            if self.rb.summary is not None:
                from opsbook.summary import write_summary

                write_summary(self.folder, self.rb.summary, self.record)
            report.run_page(self.folder, self.record)
        except Exception as exc:
            self.record.report_error = f"{type(exc).__name__}: {exc}"
        audit.seal_record(
            self.root, self.folder, self.record, redactor=self.redactor, signer=self.signer
        )
        try:
            report.audit_index(self.root)
        except Exception as exc:  # the index is derived and can be rebuilt with `opsbook report`
            self._echo(f"  (could not rebuild {self.root / 'index.html'}: {exc})")
        self._echo(f"run {self.run_id}: {status} in {duration:.1f}s; record: {self.folder}")


def _allowed(by: str, approvers: list[str]) -> bool:
    """``user@host`` may approve when the list names it or its bare user."""
    return by in approvers or by.split("@", 1)[0] in approvers


def _mark_timeout(output: Path, timeout: float | None) -> int | None:
    """Mark the cell that was running when the step timed out; return its index."""
    if not output.exists():
        return None
    try:
        nb = nbformat.read(output, as_version=4)
    except Exception:
        return None
    index = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            index = i
            cell.outputs = list(cell.get("outputs", [])) + [
                nbformat.v4.new_output(
                    "error",
                    ename="StepTimeout",
                    evalue=f"the step exceeded timeout_s={timeout} while this cell was running",
                    traceback=[f"StepTimeout: the step exceeded timeout_s={timeout}"],
                )
            ]
            cell.metadata["papermill"]["status"] = "failed"
    banner = nbformat.v4.new_markdown_cell(
        f'<span style="color:red; font-size:1.5em">Step timed out after {timeout} s'
        + (f" in cell {index}" if index is not None else "")
        + ".</span>"
    )
    banner.metadata["tags"] = ["opsbook-error"]
    nb.cells.insert(0, banner)
    nbformat.write(nb, output)
    return index
