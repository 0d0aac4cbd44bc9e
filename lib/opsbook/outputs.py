"""Declared notebook outputs: what a step records, declared once in the notebook.

A notebook lists its outputs in its metadata (papermill keeps notebook metadata in the
executed copy)::

    "metadata": {"opsbook": {"outputs": {
        "candidates": {"type": "list", "description": "apps proposed for archiving"},
        "commit_sha": {"type": "str | null", "description": "the archive commit"}
    }}}

``opsbook validate`` checks ``{{ steps.<id>.outputs.<name> }}`` against this declaration,
the runner checks at the end of a step that every declared output was recorded with its
type, and :func:`opsbook.record_all` records a notebook's results in one call.

Types: ``str``, ``int``, ``float`` (an int fits), ``bool``, ``list``, ``dict``, ``any``,
joined with ``|``; ``null`` allows ``None`` (``"str | null"``).

This module is imported inside notebook kernels: it needs nothing beyond the standard
library.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

#: The metadata key under which a notebook declares its outputs.
METADATA_KEY = "opsbook"
#: Environment variable through which the runner tells a step's kernel what it declares
#: (``{"name": "type", ...}``), so that :func:`opsbook.record_all` records only those.
ENV_VAR = "OPSBOOK_OUTPUTS"

_CHECKS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
    "any": lambda v: True,
}
TYPE_NAMES = tuple(_CHECKS)


@dataclass(frozen=True)
class OutputSpec:
    """One declared output: its type (``"int"``, ``"str | null"``) and what it means."""

    type: str = "any"
    description: str = ""

    @property
    def alternatives(self) -> list[str]:
        return [part.strip() for part in self.type.split("|")]

    def accepts(self, value: Any) -> bool:
        return any(_CHECKS.get(name, _CHECKS["any"])(value) for name in self.alternatives)


def type_problems(spec: OutputSpec) -> list[str]:
    """Unknown type names in a declaration (``"integer"`` is not one)."""
    return [
        f"type {name!r} is unknown (use {', '.join(TYPE_NAMES)}, joined with |)"
        for name in spec.alternatives
        if name not in _CHECKS
    ]


def json_type(value: Any) -> str:
    """The declared-type name a recorded value has (``None`` is ``null``)."""
    if value is None:
        return "null"
    for name in ("bool", "int", "float", "str", "list", "dict"):
        if _CHECKS[name](value):
            return name
    return type(value).__name__


class DeclarationError(ValueError):
    """A notebook's ``metadata.opsbook.outputs`` is not a mapping of name to spec."""


def declared(metadata: dict[str, Any]) -> dict[str, OutputSpec] | None:
    """The outputs a notebook's metadata declares, or ``None`` when it declares none.

    >>> declared({"opsbook": {"outputs": {"n": {"type": "int", "description": "count"}}}})
    {'n': OutputSpec(type='int', description='count')}
    """
    section = (metadata or {}).get(METADATA_KEY)
    if not isinstance(section, dict) or "outputs" not in section:
        return None
    raw = section["outputs"]
    if not isinstance(raw, dict):
        raise DeclarationError("metadata.opsbook.outputs must map each output name to a spec")
    found: dict[str, OutputSpec] = {}
    for name, spec in raw.items():
        if not str(name).isidentifier():
            raise DeclarationError(f"output name {name!r} must be an identifier")
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or set(spec) - {"type", "description"}:
            raise DeclarationError(
                f"output {name!r}: a spec is {{type, description}}, got {json.dumps(spec)}"
            )
        found[name] = OutputSpec(str(spec.get("type", "any")), str(spec.get("description", "")))
    return found


def mismatches(declaration: dict[str, OutputSpec], recorded: dict[str, Any]) -> list[str]:
    """What is wrong with the values a step recorded, one line per output.

    Every declared output must be recorded with its declared type, and nothing else
    may be recorded (the declaration is the one list ``validate`` trusts).
    """
    problems = []
    for name, spec in declaration.items():
        if name not in recorded:
            problems.append(f"output {name!r} ({spec.type}) was never recorded")
        elif not spec.accepts(recorded[name]):
            problems.append(
                f"output {name!r} should be {spec.type} but {json_type(recorded[name])} "
                f"was recorded ({_short(recorded[name])})"
            )
    for name in recorded:
        if name not in declaration:
            problems.append(
                f"output {name!r} was recorded but is not declared in the notebook's "
                "metadata.opsbook.outputs"
            )
    return problems


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def env_value(declaration: dict[str, OutputSpec]) -> str:
    """The value of :data:`ENV_VAR` for a step whose notebook declares ``declaration``."""
    return json.dumps({name: spec.type for name, spec in declaration.items()})


def from_env() -> dict[str, OutputSpec] | None:
    """The declaration the runner passed to this kernel, or ``None`` outside a run."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    return {name: OutputSpec(type_) for name, type_ in json.loads(raw).items()}
