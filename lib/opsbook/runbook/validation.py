"""Static validation of a runbook: every problem named before anything runs.

Every notebook exists, every parameter a step passes is declared in that notebook's
``parameters`` cell, literal values fit the declared types, and every template names a
real parameter, an earlier step and an output that step's notebook declares in its
metadata (:mod:`opsbook.outputs`).
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import papermill
from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from opsbook import outputs as declared_outputs
from opsbook.errors import ConfigError
from opsbook.outputs import OutputSpec
from opsbook.runbook.compose import RESERVED_IDS, load_used
from opsbook.runbook.params import check_value, format_number, value_fits, with_article
from opsbook.runbook.schema import (
    IDENTIFIER,
    LoadedRunbook,
    ParamSpec,
    Runbook,
    Step,
    Summary,
    describe_validation_error,
    project_root_for,
    read_runbook_file,
)
from opsbook.runbook.templating import (
    TEMPLATE_ROOTS,
    is_template,
    template_references,
    unsafe_attributes,
)


@dataclass
class NotebookInfo:
    """What a notebook declares: parameters (name → inferred type, default, help) and
    outputs (name → type and description; ``None`` when it declares none)."""

    path: Path
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, OutputSpec] | None = None
    #: What is wrong with the notebook's output declaration, if anything.
    declaration_problems: list[str] = field(default_factory=list)


@lru_cache(maxsize=64)
def _inspect_cached(path: str, mtime: float) -> NotebookInfo:
    nb = papermill.iorw.load_notebook_node(path)
    params = papermill.inspect_notebook(path)
    problems: list[str] = []
    try:
        outputs = declared_outputs.declared(dict(nb.metadata))
    except declared_outputs.DeclarationError as exc:
        outputs, problems = None, [str(exc)]
    for name, spec in (outputs or {}).items():
        problems += [f"output {name!r}: {p}" for p in declared_outputs.type_problems(spec)]
    return NotebookInfo(
        path=Path(path),
        parameters=dict(params),
        outputs=outputs,
        declaration_problems=problems,
    )


def inspect(path: Path) -> NotebookInfo:
    """Parameters and declared outputs of the notebook at ``path``."""
    return _inspect_cached(str(path), path.stat().st_mtime)


_NB_TYPE_TO_PARAM = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "list": "list",
    "dict": "dict",
    "tuple": "list",
}


def _notebook_type(info: dict[str, Any]) -> str | None:
    """The type of a notebook parameter: its annotation, else its default's literal type."""
    name = (info.get("inferred_type_name") or "").strip().lower()
    base = name.split("[")[0].replace("typing.", "")
    if base and base not in ("none", "nonetype"):
        return _NB_TYPE_TO_PARAM.get(base)
    try:
        default = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError):
        return None
    if default is None:
        return None
    return _NB_TYPE_TO_PARAM.get(type(default).__name__)


def _types_compatible(runbook_type: str, notebook_type: str | None) -> bool:
    if notebook_type is None:
        return True
    if runbook_type in ("path", "date"):
        return notebook_type == "str"
    if runbook_type == "enum":
        return notebook_type in ("str", "int", "float")
    if notebook_type == "float" and runbook_type == "int":
        return True
    return runbook_type == notebook_type


@dataclass
class UsedInfo:
    """What a ``uses:`` step shows later templates: the steps of the runbook it runs."""

    path: Path
    step_ids: list[str]
    infos: dict[str, NotebookInfo | UsedInfo]


Infos = dict[str, NotebookInfo | UsedInfo]


def validate(loaded: LoadedRunbook) -> list[str]:
    """Every problem in a loaded runbook, each naming file, step and parameter.

    Runbooks that ``uses:`` steps run are validated too (their problems are prefixed
    with the step that uses them). An empty list means the runbook is valid.
    """
    return _validate(loaded, ())[0]


def _validate(loaded: LoadedRunbook, stack: tuple[Path, ...]) -> tuple[list[str], Infos]:
    rb = loaded.runbook
    where = loaded.path.name
    problems: list[str] = []
    problems += _check_param_specs(rb, where)
    seen: list[str] = []
    infos: Infos = {}
    ids = [s.id for s in rb.steps]
    for step in rb.steps:
        prefix = f"{where}: step {step.id!r}"
        if step.id in seen:
            problems.append(f"{prefix}: duplicate step id (ids must be unique)")
        if step.on_failure not in ("abort", "continue") and step.on_failure not in ids:
            problems.append(
                f"{prefix}: on_failure {step.on_failure!r} is neither abort, continue "
                f"nor a step id (known: {', '.join(ids)})"
            )
        if step.on_failure == step.id:
            problems.append(f"{prefix}: on_failure cannot name the step itself")
        elif step.on_failure in ids and (
            rb.step(step.on_failure).is_gate or rb.step(step.on_failure).is_uses
        ):
            kind = "approval gate" if rb.step(step.on_failure).is_gate else "uses: step"
            problems.append(
                f"{prefix}: on_failure names the {kind} {step.on_failure!r}; "
                "a rollback step runs a notebook"
            )
        if step.is_gate:
            if step.notebook or step.parameters or step.is_uses:
                problems.append(f"{prefix}: an approval gate takes a message, not a notebook")
            if step.approvers and len(set(step.approvers)) < step.min_approvals:
                problems.append(
                    f"{prefix}: min_approvals={step.min_approvals} but only "
                    f"{len(set(step.approvers))} distinct approvers are allowed"
                )
        elif step.min_approvals != 1 or step.approvers:
            problems.append(f"{prefix}: min_approvals and approvers belong to approval gates")
            problems += _check_notebook_step(loaded, step, prefix, infos)
        elif step.is_uses:
            problems += _check_uses_step(loaded, step, prefix, infos, seen, stack)
        else:
            problems += _check_notebook_step(loaded, step, prefix, infos)
        for key, value in (("when", step.when), ("message", step.message)):
            if value:
                problems += _check_template(
                    value, f"{prefix} {key}", rb, seen, infos, step, bare=key == "when"
                )
        seen.append(step.id)
    problems += _check_on_failure_cycles(rb, where)
    if rb.summary is not None:
        problems += _check_summary(rb.summary, where, rb, _qualified(seen, infos), infos)
    return problems, infos


def _qualified(ids: list[str], infos: Infos, prefix: str = "") -> list[str]:
    """Step ids with those of used runbooks as ``<uses id>.<step id>``."""
    found = []
    for step_id in ids:
        found.append(prefix + step_id)
        info = infos.get(step_id)
        if isinstance(info, UsedInfo):
            found += _qualified(info.step_ids, info.infos, f"{prefix}{step_id}.")
    return found


def _check_uses_step(
    loaded: LoadedRunbook,
    step: Step,
    prefix: str,
    infos: Infos,
    earlier: list[str],
    stack: tuple[Path, ...],
) -> list[str]:
    """A ``uses:`` step: the file is a runbook inside the project, no cycle, its own
    problems, and a ``with:`` mapping naming declared parameters with fitting values."""
    problems = []
    misplaced = [
        key
        for key, given in (
            ("notebook", step.notebook),
            ("parameters", step.parameters),
            ("timeout_s", step.timeout_s),
            ("retries", step.retries),
            ("message", step.message),
        )
        if given
    ]
    if misplaced:
        problems.append(
            f"{prefix}: {', '.join(misplaced)} belong to notebook steps; a uses: step takes "
            "`with:` (the used runbook's parameters) and its steps set their own"
        )
    if step.on_failure not in ("abort", "continue"):
        problems.append(f"{prefix}: the on_failure of a uses: step is abort or continue")
    try:
        child = load_used(loaded, step, stack)
    except ConfigError as exc:
        return problems + [f"{prefix}: {exc.message}"]
    child_problems, child_infos = _validate(child, (*stack, loaded.path.resolve()))
    problems += [f"{prefix}: uses {step.uses}: {p}" for p in child_problems]
    child_rb = child.runbook
    for reserved in [s.id for s in child_rb.steps if s.id in RESERVED_IDS]:
        problems.append(
            f"{prefix}: uses {step.uses}: its step id {reserved!r} is reserved in a used "
            f"runbook (steps.{step.id}.{reserved} means something else); rename the step"
        )
    infos[step.id] = UsedInfo(child.path, [s.id for s in child_rb.steps], child_infos)
    declared = child_rb.parameters
    for name, value in step.with_.items():
        where = f"{prefix} with {name!r}"
        if name not in declared:
            known = ", ".join(f"{n} ({s.type})" for n, s in declared.items()) or "none"
            problems.append(
                f"{where}: {step.uses} declares no parameter {name!r} (declared: {known})"
            )
            continue
        spec = declared[name]
        if is_template(value) or isinstance(value, list | dict):
            problems += _check_template(value, where, loaded.runbook, earlier, infos, step)
            problems += _check_mapped_type(value, spec, where, loaded.runbook)
        elif not value_fits(value, spec.type):
            problems.append(f"{where}: {value!r} is not {with_article(spec.type)}")
        else:
            try:
                check_value(name, spec, value)
            except ConfigError as exc:
                problems.append(f"{where}: {exc.message}")
    for name, spec in declared.items():
        if spec.required and spec.default is None and name not in step.with_:
            problems.append(
                f"{prefix}: {step.uses} needs parameter {name!r} ({spec.type}); map it under with:"
            )
    return problems


def _check_mapped_type(value: Any, spec: ParamSpec, where: str, rb: Runbook) -> list[str]:
    """``with: {x: "{{ params.y }}"}``: the parameter's type must suit the one it feeds."""
    match = re.fullmatch(r"\{\{\s*params\.(\w+)\s*\}\}", str(value).strip())
    if not match or match.group(1) not in rb.parameters:
        return []
    given = rb.parameters[match.group(1)].type
    textual = {"str", "path", "date"}
    fits = (
        given == spec.type
        or (given == "int" and spec.type == "float")
        or (given in textual and spec.type in textual)
        or (given == "enum" and spec.type in ("str", "enum"))
    )
    if fits:
        return []
    return [
        f"{where}: takes runbook parameter {match.group(1)!r} ({given}) but the used "
        f"runbook declares {spec.type}"
    ]


def _check_on_failure_cycles(rb: Runbook, where: str) -> list[str]:
    """Refuse ``on_failure`` chains that come back to where they started (a -> b -> a).

    Every step of such a cycle is somebody's rollback step, so none would run at all.
    """
    targets = {s.id: s.on_failure for s in rb.steps}
    problems: list[str] = []
    reported: set[frozenset[str]] = set()
    for start in targets:
        path = [start]
        while targets.get(path[-1]) in targets and targets[path[-1]] not in path:
            path.append(targets[path[-1]])
        closing = targets.get(path[-1])
        if closing == start and len(path) > 1 and frozenset(path) not in reported:
            reported.add(frozenset(path))
            problems.append(
                f"{where}: on_failure cycle {' -> '.join(path + [start])}: each of these steps "
                "is another's rollback, so none would run; make one of them abort or continue"
            )
    return problems


def _check_summary(
    summary: Summary, where: str, rb: Runbook, ids: list[str], infos: Infos
) -> list[str]:
    problems = []
    fake = Step(id="_summary", gate="approval")
    for section in summary.sections:
        prefix = f"{where}: summary section {section.heading!r}"
        if section.step not in ids:
            problems.append(f"{prefix}: step {section.step!r} does not exist")
        values = [section.text, section.ok] + [
            v for item in section.items for v in (item.value, item.table, item.ok)
        ]
        for value in values:
            if value:
                problems += _check_template(value, prefix, rb, ids, infos, fake)
    return problems


def _check_param_specs(rb: Runbook, where: str) -> list[str]:
    problems = []
    for name, spec in rb.parameters.items():
        if not IDENTIFIER.match(name):
            problems.append(f"{where}: parameter {name!r} must be an identifier")
        if spec.type == "enum" and not spec.allowed:
            problems.append(f"{where}: parameter {name!r} is an enum: list its `allowed` values")
        problems += [f"{where}: parameter {name!r} {p}" for p in _check_bounds_spec(spec)]
        if spec.default is not None and not value_fits(spec.default, spec.type):
            problems.append(
                f"{where}: parameter {name!r} default {spec.default!r} is not {with_article(spec.type)}"
            )
        elif spec.default not in (None, ""):
            try:
                check_value(name, spec, spec.default)
            except ConfigError as exc:
                problems.append(f"{where}: default of {exc.message}")
        if spec.allowed and spec.default is not None and spec.default not in spec.allowed:
            problems.append(
                f"{where}: parameter {name!r} default {spec.default!r} is not one of {spec.allowed}"
            )
    return problems


def _check_bounds_spec(spec: ParamSpec) -> list[str]:
    if spec.min is None and spec.max is None:
        return []
    if spec.type not in ("int", "float"):
        return [f"is {with_article(spec.type)}: min/max apply to int and float parameters"]
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        return [f"min {format_number(spec.min)} is greater than max {format_number(spec.max)}"]
    return []


def _check_notebook_step(loaded: LoadedRunbook, step: Step, prefix: str, infos: Infos) -> list[str]:
    if not step.notebook:
        return [f"{prefix}: needs `notebook:` (or `gate: approval`)"]
    path = loaded.notebook_path(step)
    if not path.is_file():
        return [
            f"{prefix}: notebook {step.notebook} not found at {path} (paths are relative to "
            f"{loaded.root})"
        ]
    try:
        info = inspect(path)
    except Exception as exc:  # papermill raises several kinds on broken notebooks
        return [f"{prefix}: cannot inspect notebook {step.notebook}: {exc}"]
    infos[step.id] = info
    problems = [f"{prefix}: notebook {step.notebook}: {p}" for p in info.declaration_problems]
    declared = info.parameters
    if not declared and step.parameters:
        problems.append(f"{prefix}: notebook {step.notebook} has no cell tagged `parameters`")
    for name, value in step.parameters.items():
        if declared and name not in declared:
            near = ", ".join(sorted(declared))
            problems.append(
                f"{prefix}: parameter {name!r} is not declared in {step.notebook}'s "
                f"parameters cell (declared: {near}); fix the name or add it there"
            )
            continue
        nb_type = _notebook_type(declared.get(name, {}))
        problems += _check_value_type(value, nb_type, name, prefix, loaded.runbook)
        if is_template(value) or isinstance(value, list | dict):
            problems += _check_template(
                value,
                f"{prefix} parameter {name!r}",
                loaded.runbook,
                _earlier_ids(loaded.runbook, step),
                infos,
                step,
            )
    return problems


def _earlier_ids(rb: Runbook, step: Step) -> list[str]:
    ids = [s.id for s in rb.steps]
    return ids[: ids.index(step.id)]


def _check_value_type(
    value: Any, nb_type: str | None, name: str, prefix: str, rb: Runbook
) -> list[str]:
    if nb_type is None:
        return []
    if not is_template(value):
        if isinstance(value, list | dict):
            return (
                []
                if nb_type in ("list", "dict") and value_fits(value, nb_type)
                else [
                    f"{prefix}: parameter {name!r} gets {type(value).__name__} but the notebook "
                    f"declares {nb_type}"
                ]
            )
        if value_fits(value, nb_type):  # an int fits a float; a bool fits neither
            return []
        return [
            f"{prefix}: parameter {name!r} gets {value!r} ({type(value).__name__}) but the "
            f"notebook declares {nb_type}"
        ]
    match = re.fullmatch(r"\{\{\s*params\.(\w+)\s*\}\}", value.strip())
    if match and match.group(1) in rb.parameters:
        rb_type = rb.parameters[match.group(1)].type
        if not _types_compatible(rb_type, nb_type):
            return [
                f"{prefix}: parameter {name!r} takes runbook parameter "
                f"{match.group(1)!r} ({rb_type}) but the notebook declares {nb_type}"
            ]
    return []


def _check_template(
    value: Any,
    where: str,
    rb: Runbook,
    earlier: list[str],
    infos: Infos,
    step: Step,
    *,
    bare: bool = False,
) -> list[str]:
    try:
        refs = template_references(value, bare=bare)
    except TemplateSyntaxError as exc:
        return [f"{where}: template syntax error: {exc.message}"]
    problems = [
        f"{where}: template reaches for {name!r}: Python internals are out of reach of "
        "runbook templates (they run in Jinja's sandbox)"
        for name in unsafe_attributes(value, bare=bare)
    ]
    for ref in refs:
        root = ref[0]
        if root not in TEMPLATE_ROOTS:
            if root in ("true", "false", "none", "True", "False", "None"):
                continue
            problems.append(
                f"{where}: template names {'.'.join(ref)!r}; use params.*, "
                f"steps.<id>.outputs.*, run.* or step.*"
            )
        elif root == "params":
            if len(ref) < 2 or ref[1] not in rb.parameters:
                known = ", ".join(rb.parameters) or "none"
                problems.append(
                    f"{where}: template uses {'.'.join(ref)!r} but the runbook declares "
                    f"no such parameter (declared: {known})"
                )
        elif root == "steps":
            problems += _check_step_ref(ref, where, earlier, infos, step)
            problems += _check_rollback_ref(ref, where, rb, step)
        elif root in ("run", "step") and (len(ref) < 2 or ref[1] not in _RUN_KEYS[root]):
            problems.append(
                f"{where}: {'.'.join(ref)!r} is unknown; {root}.* has "
                f"{', '.join(sorted(_RUN_KEYS[root]))}"
            )
    return problems


_RUN_KEYS = {"run": {"id", "dir", "work_dir", "runbook"}, "step": {"id", "dir"}}


def _check_rollback_ref(ref: tuple[str, ...], where: str, rb: Runbook, step: Step) -> list[str]:
    """A step on the normal path cannot depend on a step that runs only as a rollback."""
    rollbacks = rb.rollback_step_ids
    target = ref[1] if len(ref) > 1 else ""
    if target not in rollbacks or step.id in rollbacks or step.id == "_summary":
        return []
    owners = ", ".join(repr(s.id) for s in rb.steps if s.on_failure == target)
    return [
        f"{where}: uses {'.'.join(ref)!r} but {target!r} runs only as the rollback of "
        f"{owners} (on_failure), never on the normal path"
    ]


def _check_step_ref(
    ref: tuple[str, ...], where: str, earlier: list[str], infos: Infos, step: Step
) -> list[str]:
    if len(ref) < 3:
        return [
            f"{where}: {'.'.join(ref)!r} should be steps.<id>.outputs.<name> or steps.<id>.status"
        ]
    target = ref[1]
    if target not in earlier:
        why = "is this step itself" if target == step.id else "is not an earlier step"
        return [
            f"{where}: template refers to step {target!r}, which {why} "
            f"(earlier steps: {', '.join(earlier) or 'none'})"
        ]
    info = infos.get(target)
    if isinstance(info, UsedInfo):
        return _check_used_ref(ref, where, info)
    if ref[2] == "status":
        return []
    if ref[2] != "outputs":
        return [f"{where}: {'.'.join(ref)!r}: a step has `outputs` and `status`"]
    if info is None or len(ref) < 4:
        return []
    if info.outputs is None:
        return [
            f"{where}: step {target!r} never records {ref[3]!r}: its notebook "
            f"{info.path.name} declares no outputs (list them in its metadata.opsbook.outputs)"
        ]
    if ref[3] not in info.outputs:
        return [
            f"{where}: step {target!r} never records {ref[3]!r} (its notebook declares: "
            f"{', '.join(sorted(info.outputs)) or 'nothing'})"
        ]
    return []


def _check_used_ref(ref: tuple[str, ...], where: str, info: UsedInfo) -> list[str]:
    """``steps.<uses id>.status`` or ``steps.<uses id>.<its step>.outputs.<name>``."""
    target, inner = ref[1], ref[2]
    if inner == "status":
        return []
    if inner == "outputs":
        return [
            f"{where}: {'.'.join(ref)!r}: step {target!r} runs {info.path.name} and has no "
            f"outputs of its own; read steps.{target}.<its step>.outputs.<name>"
        ]
    if inner not in info.step_ids:
        return [
            f"{where}: {'.'.join(ref)!r}: step {target!r} runs {info.path.name}, which has no "
            f"step {inner!r} (its steps: {', '.join(info.step_ids)}); read "
            f"steps.{target}.<step>.outputs.<name> or steps.{target}.status"
        ]
    if len(ref) < 4:
        return [f"{where}: {'.'.join(ref)!r} should continue with .outputs.<name> or .status"]
    dummy = Step(id="_parent", gate="approval")
    inner_ref = ("steps", *ref[2:])
    problems = _check_step_ref(inner_ref, where, info.step_ids, info.infos, dummy)
    quoted, whole = repr(".".join(inner_ref)), repr(".".join(ref))
    return [
        p.replace(f"step {inner!r}", f"step {target}.{inner}", 1).replace(quoted, whole, 1)
        for p in problems
    ]


def check_file(path: str | Path) -> list[str]:
    """Every problem of a runbook file in one pass: schema errors, then semantic ones.

    Where the schema refuses a field, the semantic checks run on the file without it
    (an unknown key, a bad ``timeout_s`` or type is left out; a step or section missing
    a required field is left out whole), so fixing one list does not reveal another.
    """
    path = Path(path)
    text, data = read_runbook_file(path)
    schema_problems: list[str] = []
    refused_specs: set[str] = set()  # parameters whose spec lost a field
    runbook = None
    for _ in range(50):  # each pass removes at least one offending key
        try:
            runbook = Runbook.model_validate(data)
            break
        except ValidationError as exc:
            for line in describe_validation_error(exc, data):
                if f"{path.name}: {line}" not in schema_problems:
                    schema_problems.append(f"{path.name}: {line}")
            refused_specs |= {
                str(e["loc"][1]) for e in exc.errors() if e["loc"][:1] == ("parameters",)
            }
            data = _without_errors(data, exc, path)
    if runbook is None:
        return schema_problems
    loaded = LoadedRunbook(
        path=path.resolve(), root=project_root_for(path), text=text, runbook=runbook
    )
    noise = tuple(f"{path.name}: parameter {name!r} " for name in refused_specs)
    return schema_problems + [p for p in validate(loaded) if not p.startswith(noise)]


_GONE = object()


def _without_errors(data: dict[str, Any], exc: ValidationError, path: Path) -> dict[str, Any]:
    """A copy of ``data`` without the values the schema refused."""
    data = copy.deepcopy(data)
    for err in exc.errors():
        loc = list(err["loc"])
        if err["type"] == "missing" and len(loc) == 1:
            data[loc[0]] = path.stem if loc[0] == "name" else []
            continue
        if err["type"] == "missing":
            loc = loc[:-1]  # drop the whole step / section / secret
        _drop(data, loc)
    return _purge(data)


def _drop(data: Any, loc: list[Any]) -> None:
    """Mark the deepest existing container entry along ``loc`` as gone."""
    parent: Any = None
    key: Any = None
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_dict or in_list):
            break
        parent, key, node = node, part, node[part]
    if parent is not None:
        parent[key] = _GONE


def _purge(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _purge(v) for k, v in node.items() if v is not _GONE}
    if isinstance(node, list):
        return [_purge(v) for v in node if v is not _GONE]
    return node
