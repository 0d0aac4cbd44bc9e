"""The runbook file: its pydantic schema (unknown keys rejected) and how it is loaded.

:func:`load` reads a YAML runbook (safe tags only, impossible dates refused with a
position) into :class:`LoadedRunbook`; schema errors name the step and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from opsbook.errors import ConfigError, RunbookError

ParamType = Literal["str", "int", "float", "bool", "path", "enum", "list", "dict", "date"]
#: Longest accepted ``timeout_s`` of a step (a week).
MAX_TIMEOUT_S = 7 * 24 * 3600
#: What a step id and a parameter name look like.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    """A notebook step, an approval gate, or a step that runs another runbook (``uses:``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    name: str = ""
    notebook: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: Another runbook to run as this step (a path relative to the project root).
    uses: str | None = None
    #: The used runbook's parameters (templates over this runbook's context).
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
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
        if not IDENTIFIER.match(value):
            raise ValueError(f"step id {value!r} must be an identifier (letters, digits, _)")
        return value

    @property
    def is_gate(self) -> bool:
        return self.gate is not None

    @property
    def is_uses(self) -> bool:
        return self.uses is not None

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


class StepDefaults(BaseModel):
    """What every notebook step of the runbook gets unless it says otherwise.

    ``parameters`` are merged under each notebook step's own (the step's value wins);
    ``notebook`` is the notebook of a step that names none. Gates and ``uses:`` steps
    take neither.
    """

    model_config = ConfigDict(extra="forbid")

    notebook: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Runbook(BaseModel):
    """A parsed runbook file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    parameters: dict[str, ParamSpec] = Field(default_factory=dict)
    secrets: list[SecretSpec] = Field(default_factory=list)
    defaults: StepDefaults | None = None
    steps: list[Step]
    summary: Summary | None = None

    @model_validator(mode="after")
    def _apply_defaults(self) -> Runbook:
        if self.defaults is None:
            return self
        for step in self.steps:
            if step.is_gate or step.is_uses:
                continue
            if step.notebook is None:
                step.notebook = self.defaults.notebook
            step.parameters = {**self.defaults.parameters, **step.parameters}
        return self

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


def read_runbook_file(path: Path) -> tuple[str, dict[str, Any]]:
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
    text, data = read_runbook_file(path)
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        raise RunbookError(f"{path}: {'; '.join(describe_validation_error(exc, data))}") from None
    return LoadedRunbook(
        path=path.resolve(), root=project_root_for(path), text=text, runbook=runbook
    )


def describe_validation_error(exc: ValidationError, data: dict[str, Any]) -> list[str]:
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


def discover(root: Path) -> list[Path]:
    """Runbook files directly under ``root/runbooks`` (alert rule folders are skipped)."""
    folder = root / "runbooks"
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file())
