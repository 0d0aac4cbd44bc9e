"""Action records: every library call that changes a system leaves one sealed audit record.

Runs of runbooks are not the only way production changes: engineers run the same
library calls step by step in JupyterLab or through the domain CLIs. Each call that
changes a system is decorated with :func:`recorded` (or calls :func:`record_action`),
and writes ONE record into the same audit root and ledger as runner records, through the
same sealing (:func:`opsbook.audit.seal_record`: signed ledger entry with ``kind``),
redaction (:class:`opsbook.redact.Redactor`) and ledger. A dry run, or a call
that changed nothing, writes none.

An action record is a folder ``<audit root>/<action_id>/`` holding ``run.json`` with
``"kind": "action"`` and ``index.html``; its fields
(:class:`opsbook.runrecord.ActionRecord`) say who
(``user@host``), when, which call with which parameters (secrets redacted), what
changed, whether it succeeded, and where it came from (:func:`origin`): a runner step
(the run's record then lists the action under that step), the ``opsbook`` CLI, an
interactive kernel (notebook path when Jupyter tells it, kernel id) or plain Python.

Production changes from an interactive kernel need an explicit approval, like a runbook
gate: :func:`approve` (``opsbook.approve("alice", note="CHG-1234")``) before the call,
or an answer to the prompt the call shows; the approval is recorded. A call is
production when :func:`is_production` says so for its target, or ``OPSBOOK_ENV=production``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opsbook import audit, runrecord
from opsbook.errors import ApprovalRequired
from opsbook.redact import Redactor
from opsbook.runrecord import ActionRecord, AnyRecord, Origin, RecordKind, RunRecord, StepError
from opsbook.settings import audit_root, seen_secrets

ACTION_MIME = "application/vnd.opsbook.action+json"
#: The secrets opsbook itself reads (see .env.example): always scrubbed from records.
KNOWN_SECRET_ENV = ["QDRANT_API_KEY", "LOKI_AUTH", "REDIS_URL"]
KIND = RecordKind.ACTION.value
STEP_ACTIONS = ".actions.jsonl"  # written into a runner step's folder, read by the runner
P = ParamSpec("P")
R = TypeVar("R")

_cli_argv: list[str] | None = None
_pending_approval: dict[str, Any] | None = None


@dataclass
class ActionSpec:
    """How to record one kind of call; the functions take the call's bound arguments."""

    name: str
    params: Callable[[dict[str, Any]], dict[str, Any]]
    summary: Callable[[Any, dict[str, Any]], dict[str, Any]]  # (result, arguments)
    target: Callable[[dict[str, Any]], str] = lambda a: ""
    production: Callable[[dict[str, Any]], bool] = lambda a: False
    skip: Callable[[dict[str, Any]], bool] = lambda a: False  # dry runs
    changed: Callable[[Any], bool] = lambda r: True  # a no-op writes no record
    before: Callable[[dict[str, Any]], Any] = lambda a: None  # kept as arguments["_before"]
    secret_env: Callable[[dict[str, Any]], list[str]] = lambda a: []


# ------------------------------------------------------------------------- origin


def mark_cli(argv: list[str]) -> None:
    """Called by the ``opsbook`` entry point: actions from now on come from the CLI."""
    global _cli_argv
    _cli_argv = list(argv)


def origin() -> dict[str, Any]:
    """Where the current call comes from: runner step, CLI, interactive kernel or Python."""
    run_id = os.environ.get("OPSBOOK_RUN_ID")
    if run_id:
        step_dir = os.environ.get("OPSBOOK_STEP_DIR", "")
        return {"kind": "runner", "run_id": run_id, "step": Path(step_dir).name or None}
    if _cli_argv is not None:
        return {"kind": "cli", "argv": _cli_argv}
    kernel = _kernel_origin()
    if kernel is not None:
        return kernel
    return {"kind": "python", "argv": list(sys.argv)}


def _kernel_origin() -> dict[str, Any] | None:
    """An IPython kernel (not a terminal IPython): its id and, when known, the notebook."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    try:
        kernel_id = Path(get_connection_file()).stem.removeprefix("kernel-")
    except Exception:  # no connection file: an embedded kernel
        kernel_id = None
    return {"kind": "kernel", "kernel_id": kernel_id, "notebook": notebook_path()}


def notebook_path() -> str | None:
    """The notebook this kernel serves, when Jupyter says (``JPY_SESSION_NAME``)."""
    session = os.environ.get("JPY_SESSION_NAME")
    if not session:
        return None
    path = Path(session)
    if path.is_absolute():
        return str(path)
    here = Path.cwd() / path.name  # the kernel starts in the notebook's folder
    return str(here.resolve()) if here.exists() else session


# ----------------------------------------------------------------------- approval


def approve(by: str, note: str = "") -> dict[str, Any]:
    """Approve the next production change made from this kernel, in the record's name.

    >>> import opsbook
    >>> opsbook.approve("alice@example.com", note="CHG-1234")  # doctest: +SKIP
    """
    global _pending_approval
    if not by or not by.strip():
        raise ApprovalRequired("approve() needs the approver's name", hint='approve("alice")')
    _pending_approval = {"by": by.strip(), "at": audit.now_iso(), "via": "approve()", "note": note}
    return dict(_pending_approval)


def _take_approval(name: str, target: str, interactive: bool) -> dict[str, Any] | None:
    """The approval for a production change, or raise :class:`ApprovalRequired`."""
    global _pending_approval
    if _pending_approval is not None:
        approval, _pending_approval = _pending_approval, None
        return approval
    by = os.environ.get("OPSBOOK_APPROVE_BY", "").strip()
    if by:
        return {"by": by, "at": audit.now_iso(), "via": "OPSBOOK_APPROVE_BY", "note": ""}
    if interactive:
        by = _prompt(f"{name} changes production ({target}). Approver's name to go ahead: ")
        if by:
            return {"by": by, "at": audit.now_iso(), "via": "prompt", "note": ""}
    raise ApprovalRequired(
        f"{name} would change production ({target}) from an interactive kernel without "
        "an approval; nothing was changed",
        hint='run opsbook.approve("<approver>", note="<ticket>") first, then call again',
    )


def _prompt(message: str) -> str:
    try:
        return input(message).strip()
    except Exception:  # papermill/nbval kernels have no stdin
        return ""


def is_production(target: str) -> bool:
    """Whether a target is production: ``OPSBOOK_ENV=production``, or a URL whose host
    is neither loopback nor ``localhost`` (a remote Qdrant, Redis or Loki)."""
    if os.environ.get("OPSBOOK_ENV", "").lower() in ("prod", "production"):
        return True
    try:
        host = urlsplit(target).hostname if "://" in target else None
    except ValueError:
        return True
    if not host:
        return False
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


# ---------------------------------------------------------------------- redaction


def redactor_for(data: Any, secret_env: list[str]) -> Redactor:
    """The audit redactor (every encoding: see :mod:`opsbook.redact`) for one record: the
    secrets opsbook reads (``.env.example``), the call's declared ones, every value
    ``settings.secret()`` handed out in this process, and passwords inside URLs in ``data``."""
    redactor = Redactor([*KNOWN_SECRET_ENV, *secret_env])
    for value in seen_secrets():
        redactor.add(value, "read with opsbook.settings.secret()")
    redactor.add_from_data(data)
    return redactor


# ------------------------------------------------------------------------ writing


def record_action(
    name: str,
    *,
    parameters: dict[str, Any],
    summary: dict[str, Any],
    target: str = "",
    status: str = "succeeded",
    error: dict[str, Any] | None = None,
    production: bool = False,
    approval: dict[str, Any] | None = None,
    secret_env: list[str] | None = None,
    started: float | None = None,
    started_at: str | None = None,
    root: Path | None = None,
) -> str:
    """Write and seal one action record; return its id. Use :func:`recorded` where the
    call can be wrapped (it also asks for approval before the change)."""
    root = root or audit_root()
    where = Origin.model_validate(origin())
    if approval is None and where.kind == "runner" and where.run_id:
        approval = _runner_approvals(root, where.run_id)
    action_id, folder = audit.new_record(root, f"action-{name}")
    now = audit.now_iso()
    record = ActionRecord(
        run_id=action_id,
        action=name,
        target=target,
        status=status,
        user=audit.whoami(),
        started_at=started_at or now,
        ended_at=now,
        duration_s=round(time.monotonic() - started, 3) if started is not None else 0.0,
        parameters=_jsonable(parameters),
        summary=_jsonable(summary),
        origin=where,
        production=production,
        approval=approval,
        error=StepError.model_validate(error) if error is not None else None,
        environment=audit.environment_info(None),
        kind=RecordKind.ACTION,
        schema_version=runrecord.SCHEMA_VERSION,
        approvals=[approval] if approval else [],  # seal_record signs them into the ledger
    )
    redactor = redactor_for(record.to_json(), secret_env or [])
    record = runrecord.parse(redactor.value(record.to_json()))
    assert isinstance(record, ActionRecord)
    _write_page(folder, record)  # from the redacted record; sealing scrubs every file again
    audit.seal_record(root, folder, record, redactor=redactor)  # signed like runner records
    _announce(record, where)
    if where.kind in ("kernel", "cli"):
        _refresh_index(root)
    return action_id


def _refresh_index(root: Path) -> None:
    """Keep audit/index.html current after an interactive change (runs rebuild it too)."""
    try:
        from opsbook.report import audit_index

        audit_index(root)
    except Exception:  # derived: `opsbook report` rebuilds it
        pass


def _write_page(folder: Path, record: ActionRecord) -> None:
    try:
        from opsbook.report import action_page

        action_page(folder, record)
    except Exception as exc:  # the page is derived; the record itself must be written
        record.report_error = f"{type(exc).__name__}: {exc}"


def _announce(record: ActionRecord, where: Origin) -> None:
    """Link the record to where it came from: the runner step, or the notebook's output."""
    if where.kind == "runner" and os.environ.get("OPSBOOK_STEP_DIR"):
        line = json.dumps({"action_id": record.run_id, "action": record.action})
        with (Path(os.environ["OPSBOOK_STEP_DIR"]) / STEP_ACTIONS).open("a") as fh:
            fh.write(line + "\n")
    elif where.kind == "kernel":
        from IPython.display import display

        text = f"audit: {record.action} recorded as {record.run_id} ({record.status.value})"
        payload = {"action_id": record.run_id, "action": record.action}
        display({ACTION_MIME: payload, "text/plain": text}, raw=True)


def _runner_approvals(root: Path, run_id: str) -> dict[str, Any] | None:
    """The gate approvals of the runner run this step belongs to (its run.json so far)."""
    run = runrecord.read_or_none(root / run_id)
    if not isinstance(run, RunRecord) or not run.approvals:
        return None
    return {"via": "runbook gates", "gates": run.approvals_list}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def step_actions(step_dir: Path) -> list[str]:
    """Ids of the action records a runner step wrote (and remove the hand-over file)."""
    path = step_dir / STEP_ACTIONS
    if not path.exists():
        return []
    ids = [json.loads(line)["action_id"] for line in path.read_text().splitlines() if line]
    path.unlink()
    return ids


# ---------------------------------------------------------------------- decorator


def recorded(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a changing call: approval first (production from a kernel), then the call,
    then one action record, failed or not. Dry runs and no-ops write none.

    ``name`` picks the :class:`ActionSpec` in :data:`opsbook.action_kinds.SPECS`, looked
    up at call time so decorating a domain function imports nothing heavy.
    """
    import inspect

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            from opsbook.action_kinds import SPECS

            spec = SPECS[name]
            if spec.skip(arguments):
                return func(*args, **kwargs)
            return _run_recorded(spec, func, arguments, args, kwargs)

        return wrapper

    return decorate


def _run_recorded(
    spec: ActionSpec, func: Callable[..., Any], arguments: dict[str, Any], args: Any, kwargs: Any
) -> Any:
    target = spec.target(arguments)
    production = spec.production(arguments) or is_production(target)
    where = Origin.model_validate(origin())
    approval = None
    if production and where.kind == "kernel":
        approval = _take_approval(spec.name, target, interactive=True)
    arguments["_before"] = spec.before(arguments)
    started, started_at = time.monotonic(), audit.now_iso()
    common = {
        "parameters": spec.params(arguments),
        "target": target,
        "production": production,
        "approval": approval,
        "secret_env": spec.secret_env(arguments),
        "started": started,
        "started_at": started_at,
    }
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        error = {"ename": type(exc).__name__, "evalue": str(exc)[:2000]}
        record_action(spec.name, summary={}, status="failed", error=error, **common)
        raise
    if spec.changed(result):
        record_action(spec.name, summary=spec.summary(result, arguments), **common)
    return result


# ------------------------------------------------------------------------ reading


def is_action(record: AnyRecord) -> bool:
    return record.kind == RecordKind.ACTION


def title(record: AnyRecord) -> str:
    """What a record is called in tables: the runbook's name, or the action's."""
    return record.title
