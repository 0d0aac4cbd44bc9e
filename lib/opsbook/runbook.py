"""Runbooks: typed YAML files that chain notebooks with parameters, gates and outputs.

A runbook is loaded into :class:`Runbook` (pydantic, unknown keys rejected) and checked
by :func:`validate` before anything runs: every notebook exists, every parameter a step
passes is declared in that notebook's ``parameters`` cell, literal values fit the
declared types, and every template names a real parameter, an earlier step and an
output that step's notebook records.

Templates are sandboxed Jinja2 templates that keep types: a template that is one
``{{ expression }}`` passes the expression's value unchanged, so
``"{{ steps.audit.outputs.candidates }}"`` arrives in the notebook as a list and a ``str``
parameter that looks like a number stays a string; a template mixing text and expressions
is a string. Nothing is ever ``literal_eval``-ed, and attributes starting with ``_`` are
out of reach (``jinja2.sandbox``).
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import papermill
import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsbook.errors import ConfigError, RunbookError

ParamType = Literal["str", "int", "float", "bool", "path", "enum", "list", "dict", "date"]
#: Largest accepted runbook parameter, measured as JSON. Bigger data belongs in a file
#: whose path is the parameter: a parameter is copied into the record, the step entry,
#: the injected notebook cell and its metadata.
MAX_PARAM_BYTES = 64 * 1024
#: Longest accepted ``timeout_s`` of a step (a week).
MAX_TIMEOUT_S = 7 * 24 * 3600
TEMPLATE_ROOTS = {"params", "steps", "run", "step"}
_RECORD_CALL = re.compile(r"""record\(\s*["']([A-Za-z_]\w*)["']""")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ParamSpec(BaseModel):
    """One typed runbook parameter."""

    model_config = ConfigDict(extra="forbid")

    type: ParamType = "str"
    required: bool = False
    default: Any = None
    allowed: list[Any] | None = None
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    help: str = ""


class SecretSpec(BaseModel):
    """A secret, declared by the NAME of the environment variable holding it."""

    model_config = ConfigDict(extra="forbid")

    env: str
    help: str = ""
    required: bool = False

    @field_validator("env")
    @classmethod
    def _is_env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
            raise ValueError(f"{value!r} is not an environment variable name (UPPER_SNAKE_CASE)")
        return value


class Step(BaseModel):
    """A notebook step or an approval gate."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = ""
    notebook: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    retries: int = Field(default=0, ge=0, le=10)
    on_failure: str = "abort"
    gate: Literal["approval"] | None = None
    message: str = ""
    min_approvals: int = Field(default=1, ge=1, le=20)
    approvers: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _is_ident(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"step id {value!r} must be an identifier (letters, digits, _)")
        return value

    @property
    def is_gate(self) -> bool:
        return self.gate is not None

    @property
    def title(self) -> str:
        return self.name or self.id


class SummaryItem(BaseModel):
    """One line of an executive summary: a label and a templated value (or a table)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    value: str | None = None
    table: str | None = None
    columns: list[str] | None = None
    ok: str | None = None
    #: A file or folder inside the step's folder the value links to (``grafana/``).
    link: str | None = None

    @field_validator("link")
    @classmethod
    def _link_inside_step(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = PurePosixPath(value).parts
        if not value or value.startswith(("/", "\\")) or ".." in parts or ":" in value:
            raise ValueError(
                f"link {value!r} must be a relative path inside the step's folder (no '..')"
            )
        return value


class SummarySection(BaseModel):
    """A block of the executive summary, linked to the report of ``step``."""

    model_config = ConfigDict(extra="forbid")

    heading: str
    step: str
    text: str = ""
    ok: str | None = None
    items: list[SummaryItem] = Field(default_factory=list)


class Summary(BaseModel):
    """An executive summary page written with every run of the runbook."""

    model_config = ConfigDict(extra="forbid")

    title: str
    intro: str = ""
    sections: list[SummarySection] = Field(default_factory=list)


class Runbook(BaseModel):
    """A parsed runbook file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    parameters: dict[str, ParamSpec] = Field(default_factory=dict)
    secrets: list[SecretSpec] = Field(default_factory=list)
    steps: list[Step]
    summary: Summary | None = None

    @property
    def rollback_step_ids(self) -> set[str]:
        """Steps named by another step's ``on_failure``: they run only on failure."""
        return {s.on_failure for s in self.steps if s.on_failure not in ("abort", "continue")}

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise RunbookError(f"runbook {self.name!r} has no step {step_id!r}")


@dataclass
class LoadedRunbook:
    """A runbook with where it came from."""

    path: Path
    root: Path
    text: str
    runbook: Runbook

    def notebook_path(self, step: Step) -> Path:
        assert step.notebook is not None
        candidate = Path(step.notebook)
        return candidate if candidate.is_absolute() else (self.root / candidate)


# --------------------------------------------------------------------------- loading


def project_root_for(path: Path) -> Path:
    """Notebook paths in a runbook are relative to the folder holding ``runbooks/``."""
    path = path.resolve()
    return path.parent.parent if path.parent.name == "runbooks" else path.parent


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose impossible dates (2026-02-30) are errors with a position."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def read_yaml(path: Path, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """Parse a YAML file (safe tags only); raise ``error`` naming ``file:line:column``.

    >>> read_yaml(Path("params.yaml"), "parameters file")  # doctest: +SKIP
    ConfigError: parameters file params.yaml:2:8: could not determine a constructor ...
    """
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        hint = "only plain YAML values are accepted (no !! tags)" if "tag" in problem else None
        raise error(f"{what} {where}: not valid YAML: {problem}", hint=hint) from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML: {exc}") from None


def _read_runbook(path: Path) -> tuple[str, dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(
            f"runbook file {path} does not exist",
            hint="pass a path like runbooks/archive-experimental-apps.yaml (see `opsbook validate`)",
        )
    data = read_yaml(path, "runbook", RunbookError)
    if not isinstance(data, dict):
        raise RunbookError(f"{path}: a runbook is a mapping with name, parameters and steps")
    return path.read_text(encoding="utf-8"), data


def load(path: str | Path) -> LoadedRunbook:
    """Read and schema-check a runbook file; raise :class:`RunbookError` naming the field.

    A missing file is a :class:`ConfigError` (bad input, exit 2).
    """
    path = Path(path)
    text, data = _read_runbook(path)
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        raise RunbookError(f"{path}: {'; '.join(_describe_validation(exc, data))}") from None
    return LoadedRunbook(
        path=path.resolve(), root=project_root_for(path), text=text, runbook=runbook
    )


def check_file(path: str | Path) -> list[str]:
    """Every problem of a runbook file in one pass: schema errors, then semantic ones.

    Where the schema refuses a field, the semantic checks run on the file without it
    (an unknown key, a bad ``timeout_s`` or type is left out; a step or section missing
    a required field is left out whole), so fixing one list does not reveal another.
    """
    path = Path(path)
    text, data = _read_runbook(path)
    schema_problems: list[str] = []
    refused_specs: set[str] = set()  # parameters whose spec lost a field
    runbook = None
    for _ in range(50):  # each pass removes at least one offending key
        try:
            runbook = Runbook.model_validate(data)
            break
        except ValidationError as exc:
            for line in _describe_validation(exc, data):
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


def _describe_validation(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _location(loc, data)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (check the spelling; see the runbook schema in README)"
        lines.append(f"{where}: {msg}")
    return lines


def _location(loc: list[Any], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = data.get("steps") or []
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        step_id = step.get("id", f"#{loc[1]}") if isinstance(step, dict) else f"#{loc[1]}"
        rest = ".".join(str(p) for p in loc[2:])
        return f"step {step_id!r}" + (f" {rest}" if rest else "")
    return ".".join(str(p) for p in loc) or "runbook"


# ------------------------------------------------------------------------ templating


def _typed_concat(values: Iterable[Any]) -> Any:
    """One output node keeps its value and type; several are joined as a string.

    Unlike ``jinja2.nativetypes.native_concat`` nothing is ``literal_eval``-ed, so the
    string ``"123"`` stays a string and ``"[{{ a }}]"`` is text, not a list.
    """
    iterator: Iterator[Any] = iter(values)
    head = list(islice(iterator, 2))
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, iterator))


class _TypedTemplate(NativeTemplate):
    """A native template rendered with :func:`_typed_concat`."""

    def render(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            return _typed_concat(self.root_render_func(ctx))
        except Exception:
            return self.environment.handle_exception()


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed (no ``_`` attributes, no mutating methods) and type-keeping."""

    code_generator_class = NativeCodeGenerator
    template_class = _TypedTemplate
    concat = staticmethod(_typed_concat)  # type: ignore[assignment]


_ENV = TemplateEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render templates inside ``value`` (recursively through lists and dicts).

    >>> render("{{ params.n + 1 }}", {"params": {"n": 1}})
    2
    """
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    try:
        result = _ENV.from_string(value).render(**context)
        if isinstance(result, Undefined):
            str(result)  # raises UndefinedError naming what is missing
        return result
    except SecurityError as exc:
        raise RunbookError(f"template {value!r} is unsafe: {exc.message}") from None
    except UndefinedError as exc:
        raise RunbookError(
            f"template {value!r} refers to something that does not exist: {exc.message}",
            hint="check the step id and that the step ran and recorded that output",
        ) from None
    except TemplateSyntaxError as exc:
        raise RunbookError(f"template {value!r} is not valid: {exc.message}") from None


def evaluate_condition(expr: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when:`` condition: a template or a bare Jinja expression."""
    if is_template(expr):
        value = render(expr, context)
    else:
        try:
            value = _ENV.compile_expression(expr)(**context)
            if isinstance(value, Undefined):
                str(value)
        except SecurityError as exc:
            raise RunbookError(f"condition {expr!r} is unsafe: {exc.message}") from None
        except UndefinedError as exc:
            raise RunbookError(f"condition {expr!r}: {exc.message}") from None
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none")
    return bool(value)


def _trees(value: Any, bare: bool) -> list[nodes.Template]:
    """Parsed templates inside ``value`` (a bare string is an expression when ``bare``)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _trees(v, False)]
    if isinstance(value, list):
        return [t for v in value for t in _trees(v, False)]
    if not isinstance(value, str) or not value.strip():
        return []
    if not is_template(value) and not bare:
        return []
    return [_ENV.parse(value if is_template(value) else "{{ " + value + " }}")]


def template_references(value: Any, *, bare: bool = False) -> list[tuple[str, ...]]:
    """Dotted references (``("steps", "audit", "outputs", "candidates")``) in a value.

    With ``bare=True`` a string without ``{{ }}`` is read as an expression (``when:``).
    Names the template defines itself (``{% for x in ... %}``, ``{% set %}``, ``loop``)
    and Jinja's globals (``range``, ``dict``, ...) are not references.
    """
    refs: list[tuple[str, ...]] = []
    for tree in _trees(value, bare):
        local = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
        local |= {"loop", *_ENV.globals}
        for node in tree.find_all((nodes.Getattr, nodes.Name, nodes.Getitem)):
            chain_ = _chain(node)
            if chain_ and chain_[0] not in local:
                refs.append(chain_)
    # keep only maximal chains (a.b.c, not also a.b and a)
    return [r for r in refs if not any(o != r and o[: len(r)] == r for o in refs)]


def unsafe_attributes(value: Any, *, bare: bool = False) -> list[str]:
    """Dunder attributes a template reaches for (``''.__class__``, ``x['__globals__']``).

    The sandbox refuses them (and any ``_`` attribute of an object) at run time;
    validation names them before anything runs. A single leading underscore is not
    flagged: ``outputs._x`` may be a recorded output's key, which the sandbox allows.
    """
    found: list[str] = []
    for tree in _trees(value, bare):
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                name = node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                name = node.arg.value
            else:
                continue
            if name.startswith("__") and name not in found:
                found.append(name)
    return found


def _chain(node: nodes.Node) -> tuple[str, ...] | None:
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            parts.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return tuple(reversed(parts))
        else:
            return None


# ------------------------------------------------------------------------ notebooks


@dataclass
class NotebookInfo:
    """What a notebook declares: parameters (name → inferred type, default, help) and outputs."""

    path: Path
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)


@lru_cache(maxsize=64)
def _inspect_cached(path: str, mtime: float) -> NotebookInfo:
    params = papermill.inspect_notebook(path)
    text = Path(path).read_text(encoding="utf-8")
    import json

    nb = json.loads(text)
    sources = [
        "".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code"
    ]
    outputs = set(_RECORD_CALL.findall("\n".join(sources)))
    return NotebookInfo(path=Path(path), parameters=dict(params), outputs=outputs)


def inspect(path: Path) -> NotebookInfo:
    """Parameters and recorded output names of the notebook at ``path``."""
    return _inspect_cached(str(path), path.stat().st_mtime)


# ------------------------------------------------------------------------ validation

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "date": (str,),
    "enum": (str, int, float, bool),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_NB_TYPE_TO_PARAM = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "list": "list",
    "dict": "dict",
    "tuple": "list",
}


def value_fits(value: Any, type_name: str) -> bool:
    """Whether a literal fits a declared type (bool is not an int here)."""
    if value is None:
        return True
    if type_name in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES.get(type_name, (object,)))


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


def validate(loaded: LoadedRunbook) -> list[str]:
    """Every problem in a loaded runbook, each naming file, step and parameter.

    An empty list means the runbook is valid.
    """
    rb = loaded.runbook
    where = loaded.path.name
    problems: list[str] = []
    problems += _check_param_specs(rb, where)
    seen: list[str] = []
    infos: dict[str, NotebookInfo] = {}
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
        elif step.on_failure in ids and rb.step(step.on_failure).is_gate:
            problems.append(
                f"{prefix}: on_failure names the approval gate {step.on_failure!r}; "
                "a rollback step runs a notebook"
            )
        if step.is_gate:
            if step.notebook or step.parameters:
                problems.append(f"{prefix}: an approval gate takes a message, not a notebook")
            if step.approvers and len(set(step.approvers)) < step.min_approvals:
                problems.append(
                    f"{prefix}: min_approvals={step.min_approvals} but only "
                    f"{len(set(step.approvers))} distinct approvers are allowed"
                )
        elif step.min_approvals != 1 or step.approvers:
            problems.append(f"{prefix}: min_approvals and approvers belong to approval gates")
            problems += _check_notebook_step(loaded, step, prefix, infos)
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
        problems += _check_summary(rb.summary, where, rb, seen, infos)
    return problems


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
    summary: Summary, where: str, rb: Runbook, ids: list[str], infos: dict[str, NotebookInfo]
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
        if not _IDENT.match(name):
            problems.append(f"{where}: parameter {name!r} must be an identifier")
        if spec.type == "enum" and not spec.allowed:
            problems.append(f"{where}: parameter {name!r} is an enum: list its `allowed` values")
        problems += [f"{where}: parameter {name!r} {p}" for p in _check_bounds_spec(spec)]
        if spec.default is not None and not value_fits(spec.default, spec.type):
            problems.append(
                f"{where}: parameter {name!r} default {spec.default!r} is not {_a(spec.type)}"
            )
        elif spec.default not in (None, ""):
            try:
                _check_value(name, spec, spec.default)
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
        return [f"is {_a(spec.type)}: min/max apply to int and float parameters"]
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        return [f"min {_num(spec.min)} is greater than max {_num(spec.max)}"]
    return []


def _a(word: str) -> str:
    """``"an int"``, ``"a str"``: the article that fits a type name."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_notebook_step(
    loaded: LoadedRunbook, step: Step, prefix: str, infos: dict[str, NotebookInfo]
) -> list[str]:
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
    problems = []
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
        if value_fits(value, nb_type) or (nb_type == "float" and isinstance(value, int)):
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
    infos: dict[str, NotebookInfo],
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
    ref: tuple[str, ...], where: str, earlier: list[str], infos: dict[str, NotebookInfo], step: Step
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
    if ref[2] == "status":
        return []
    if ref[2] != "outputs":
        return [f"{where}: {'.'.join(ref)!r}: a step has `outputs` and `status`"]
    info = infos.get(target)
    if info is not None and len(ref) >= 4 and ref[3] not in info.outputs:
        return [
            f"{where}: step {target!r} never records {ref[3]!r} (its notebook records: "
            f"{', '.join(sorted(info.outputs)) or 'nothing'})"
        ]
    return []


# ------------------------------------------------------------------- run parameters


def coerce_cli_value(raw: str, spec: ParamSpec, name: str) -> Any:
    """Turn a ``-p name=value`` string into the declared type (str, path, date stay strings)."""
    try:
        if spec.type == "int":
            return int(raw)
        if spec.type == "float":
            return float(raw)
        if spec.type == "bool":
            lowered = raw.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(raw)
        if spec.type in ("list", "dict"):
            value = yaml.safe_load(raw)
            if not value_fits(value, spec.type) or value is None:
                raise ValueError(raw)
            return value
        if spec.type == "enum":
            value = yaml.safe_load(raw)
            return value if value in (spec.allowed or []) else raw
    except (ValueError, yaml.YAMLError):
        raise ConfigError(f"parameter {name!r} expects {_a(spec.type)}, got {raw!r}") from None
    return raw


def _typed(name: str, spec: ParamSpec, value: Any) -> Any:
    """A given value in the declared type: CLI strings coerced, YAML dates as ISO text."""
    if isinstance(value, str) and spec.type not in ("str", "path", "date"):
        value = coerce_cli_value(value, spec, name)
    if spec.type == "date" and isinstance(value, dt.date):  # YAML reads 2026-11-28 as a date
        value = value.isoformat()
    if spec.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _check_value(name: str, spec: ParamSpec, value: Any) -> None:
    """Refuse a value outside its type, allowed values, bounds or the size limit."""
    if value is None:
        return
    if not value_fits(value, spec.type):
        quote = spec.type in ("str", "path", "date") and isinstance(value, int | float | bool)
        raise ConfigError(
            f"parameter {name!r} expects {_a(spec.type)}, got {value!r}",
            hint=f'quote it in YAML: {name}: "{value}"' if quote else None,
        )
    if spec.allowed and value not in spec.allowed:
        raise ConfigError(f"parameter {name!r} must be one of {spec.allowed}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"parameter {name!r} expects a finite number, got {value!r}")
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"parameter {name!r} must be at least {_num(spec.min)}, got {value!r}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"parameter {name!r} must be at most {_num(spec.max)}, got {value!r}")
    if spec.type == "date" and value:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(
                f"parameter {name!r}: {value!r} is not a valid date ({exc})",
                hint="an ISO date such as 2026-11-28 or date-time such as 2026-11-28T10:00:00Z",
            ) from None
    size = len(json.dumps(value, default=str).encode("utf-8"))
    if size > MAX_PARAM_BYTES:
        raise ConfigError(
            f"parameter {name!r} is {size:,} bytes; the limit is {MAX_PARAM_BYTES // 1024} KiB "
            "per parameter",
            hint="put large data in a file and pass its path",
        )


def resolve_parameters(
    rb: Runbook, given: dict[str, Any], *, base: Path | None = None
) -> dict[str, Any]:
    """Merge given values with defaults; check names, types, allowed values, bounds, dates,
    sizes and requireds. Every value comes back in its declared type."""
    unknown = sorted(set(given) - set(rb.parameters))
    if unknown:
        known = ", ".join(f"{n} ({s.type})" for n, s in rb.parameters.items()) or "none"
        raise ConfigError(
            f"runbook {rb.name!r} has no parameter {', '.join(map(repr, unknown))}",
            hint=f"declared parameters: {known}",
        )
    resolved: dict[str, Any] = {}
    for name, spec in rb.parameters.items():
        if name in given:
            value = _typed(name, spec, given[name])
        elif spec.required:
            raise ConfigError(
                f"runbook {rb.name!r} needs parameter {name!r} ({spec.type}): {spec.help}",
                hint=f"pass -p {name}=... or put it in a -f params.yaml file",
            )
        else:
            value = spec.default
        _check_value(name, spec, value)
        if spec.type == "path" and isinstance(value, str) and value:
            value = str((base or Path.cwd()).joinpath(Path(value).expanduser()).resolve())
        resolved[name] = value
    return resolved


def check_approvals(rb: Runbook, approve: Iterable[str]) -> None:
    """Refuse ``--approve`` names that are not approval gates of the runbook."""
    gates = [s.id for s in rb.steps if s.is_gate]
    unknown = sorted(set(approve) - set(gates))
    if unknown:
        raise ConfigError(
            f"--approve: runbook {rb.name!r} has no gate {', '.join(map(repr, unknown))}",
            hint=f"its gates: {', '.join(gates) or 'none (nothing to approve)'}",
        )


def discover(root: Path) -> list[Path]:
    """Runbook files directly under ``root/runbooks`` (alert rule folders are skipped)."""
    folder = root / "runbooks"
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file())
