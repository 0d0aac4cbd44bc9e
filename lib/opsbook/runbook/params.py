"""Run parameters: ``-p``/``-f`` values in their declared types, checked before a run.

Every value is checked against its type, ``allowed`` values, ``min``/``max``, date
validity and :data:`MAX_PARAM_BYTES`; a refusal is a :class:`ConfigError` (exit 2).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from opsbook.errors import ConfigError
from opsbook.runbook.schema import ParamSpec, Runbook

#: Largest accepted runbook parameter, measured as JSON. Bigger data belongs in a file
#: whose path is the parameter: a parameter is copied into the record, the step entry,
#: the injected notebook cell and its metadata.
MAX_PARAM_BYTES = 64 * 1024

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


def value_fits(value: Any, type_name: str) -> bool:
    """Whether a literal fits a declared type (bool is not an int here)."""
    if value is None:
        return True
    if type_name in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES.get(type_name, (object,)))


def with_article(word: str) -> str:
    """``"an int"``, ``"a str"``: the article that fits a type name."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
        raise ConfigError(
            f"parameter {name!r} expects {with_article(spec.type)}, got {raw!r}"
        ) from None
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


def check_value(name: str, spec: ParamSpec, value: Any) -> None:
    """Refuse a value outside its type, allowed values, bounds or the size limit."""
    if value is None:
        return
    if not value_fits(value, spec.type):
        quote = spec.type in ("str", "path", "date") and isinstance(value, int | float | bool)
        raise ConfigError(
            f"parameter {name!r} expects {with_article(spec.type)}, got {value!r}",
            hint=f'quote it in YAML: {name}: "{value}"' if quote else None,
        )
    if spec.allowed and value not in spec.allowed:
        raise ConfigError(f"parameter {name!r} must be one of {spec.allowed}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"parameter {name!r} expects a finite number, got {value!r}")
    if spec.min is not None and value < spec.min:
        raise ConfigError(
            f"parameter {name!r} must be at least {format_number(spec.min)}, got {value!r}"
        )
    if spec.max is not None and value > spec.max:
        raise ConfigError(
            f"parameter {name!r} must be at most {format_number(spec.max)}, got {value!r}"
        )
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
        check_value(name, spec, value)
        if spec.type == "path" and isinstance(value, str) and value:
            value = str((base or Path.cwd()).joinpath(Path(value).expanduser()).resolve())
        resolved[name] = value
    return resolved


def check_approvals(rb: Runbook, approve: Iterable[str], gates: list[str] | None = None) -> None:
    """Refuse ``--approve`` names that are not approval gates of the runbook.

    ``gates`` lists the gate ids when the runbook uses others (qualified ids such as
    ``migration.approve``); by default, the runbook's own gates.
    """
    gates = gates if gates is not None else [s.id for s in rb.steps if s.is_gate]
    unknown = sorted(set(approve) - set(gates))
    if unknown:
        raise ConfigError(
            f"--approve: runbook {rb.name!r} has no gate {', '.join(map(repr, unknown))}",
            hint=f"its gates: {', '.join(gates) or 'none (nothing to approve)'}",
        )
