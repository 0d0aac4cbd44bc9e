"""Loki ruler rule files: load, validate, change thresholds, write back.

Loki's ruler reads Prometheus rule groups whose ``expr`` is a LogQL metric query::

    groups:
      - name: p0-alerts
        interval: 1m
        rules:
          - alert: HighErrorRate
            expr: sum by (service) (count_over_time({env="prod", level="error"}[1m])) > 10
            for: 2m
            labels: {severity: page}
            annotations: {summary: "{{ $labels.service }} logs more than 10 errors/min"}

:func:`load_rules` validates the file against pydantic models of the format
(:class:`RuleFileSpec`, :class:`GroupSpec`, :class:`AlertSpec`, :class:`RecordSpec`): it
checks everything the ruler would reject (unknown keys, bad durations, bad label names,
exprs that do not parse or are log queries) and reports every problem at once, each with
the file, its path inside the file (``groups[0].rules[1]``) and its group and rule. :func:`write_rules` validates before writing and
replaces the file atomically, so a bad edit never leaves half a file behind.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from opsbook.actions import recorded
from opsbook.errors import ConfigError
from opsbook.loki.http import is_log_query
from opsbook.loki.timeutil import parse_duration

DEFAULT_INTERVAL = "1m"  # Loki ruler's evaluation_interval default
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)")
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


class RuleFileError(ConfigError):
    """A rule file is not valid Loki ruler YAML; ``problems`` lists every issue."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{path}: {len(problems)} problem(s) in the rule file:\n{listing}",
            hint="fix the rules (Prometheus rule-group format with LogQL exprs) and retry",
        )


@dataclass
class Rule:
    """One alerting or recording rule."""

    name: str
    expr: str
    kind: str = "alert"  # alert | record
    for_: str = "0s"
    keep_firing_for: str = "0s"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def for_ns(self) -> int:
        return parse_duration(self.for_)

    @property
    def keep_firing_for_ns(self) -> int:
        return parse_duration(self.keep_firing_for)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: self.name, "expr": self.expr}
        if self.kind == "alert":
            if self.for_ not in ("", "0s", "0m", "0"):
                out["for"] = self.for_
            if self.keep_firing_for not in ("", "0s", "0m", "0"):
                out["keep_firing_for"] = self.keep_firing_for
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.kind == "alert" and self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass
class RuleGroup:
    """A rule group: rules evaluated together every ``interval``."""

    name: str
    rules: list[Rule]
    interval: str = DEFAULT_INTERVAL
    limit: int | None = None

    @property
    def interval_ns(self) -> int:
        return parse_duration(self.interval)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "interval": self.interval}
        if self.limit:
            out["limit"] = self.limit
        out["rules"] = [rule.to_dict() for rule in self.rules]
        return out


def load_rules(path: str | Path, *, check_exprs: bool = True) -> list[RuleGroup]:
    """Load and validate a ruler YAML file; raise :class:`RuleFileError` listing problems.

    A relative path is looked up from the working directory, then the project root.
    """
    from opsbook.paths import resolve

    path = resolve(path)
    if not path.exists():
        raise ConfigError(f"rule file {path} does not exist", hint="check rules_path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RuleFileError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_rules(doc, source=str(path), check_exprs=check_exprs)


def parse_rules(doc: Any, *, source: str = "<rules>", check_exprs: bool = True) -> list[RuleGroup]:
    """Validate a decoded rule document against :class:`RuleFileSpec` and build groups.

    Every problem is reported at once, each with its path inside the document
    (``groups[0].rules[1]``) and the names of its group and rule.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise RuleFileError(source, ["the top level must be a mapping with a 'groups' list"])
    problems: list[str] = []
    spec: RuleFileSpec | None = None
    try:
        spec = RuleFileSpec.model_validate(doc, context={"check_exprs": check_exprs})
    except ValidationError as exc:
        problems += validation_problems(exc, doc)
    problems += _duplicate_groups(doc["groups"])
    if problems or spec is None:
        raise RuleFileError(source, problems)
    return [group.to_group() for group in spec.groups]


# ------------------------------------------------------------------ the file format


def _expected_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _duration_text(value: Any, field: str, default: str, *, positive: bool = False) -> str:
    text = str(value) if value not in (None, "") else default
    try:
        ns = parse_duration(text)
    except ConfigError:
        raise ValueError(f"{field} {text!r} is not a duration (use 30s, 1m, 1h30m)") from None
    if positive and ns <= 0:
        raise ValueError(f"{field} must be positive")
    return text


def _string_map(value: Any, field: str, *, names: bool = False) -> dict[str, str]:
    """Labels or annotations: a mapping of strings (numbers are accepted and kept as text)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a mapping of strings")
    bad: list[str] = []
    out: dict[str, str] = {}
    for key, item in value.items():
        if names and not (isinstance(key, str) and LABEL_NAME.fullmatch(key)):
            bad.append(f"{key!r} is not a valid label name")
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            bad.append(f"value of {key!r} must be a string")
        else:
            out[str(key)] = str(item)
    if bad:
        raise ValueError(f"{field}: " + "; ".join(bad))
    return out


def _checked_expr(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("'expr' must be a non-empty LogQL string")
    if (info.context or {}).get("check_exprs", True):
        problem = expr_problem(value)
        if problem:
            raise ValueError(problem)
    return value.strip()


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AlertSpec(_Spec):
    """An alerting rule as the ruler reads it."""

    alert: str
    expr: str = Field("", validate_default=True)  # missing: the validator says what it needs
    for_: str = Field("0s", alias="for")
    keep_firing_for: str = "0s"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    _alert = field_validator("alert", mode="before")(lambda v: _expected_text(v, "'alert'"))
    _expr = field_validator("expr", mode="before")(_checked_expr)
    _for = field_validator("for_", mode="before")(lambda v: _duration_text(v, "for", "0s"))
    _keep = field_validator("keep_firing_for", mode="before")(
        lambda v: _duration_text(v, "keep_firing_for", "0s")
    )
    _labels = field_validator("labels", mode="before")(
        lambda v: _string_map(v, "labels", names=True)
    )
    _annotations = field_validator("annotations", mode="before")(
        lambda v: _string_map(v, "annotations")
    )

    def to_rule(self) -> Rule:
        return Rule(
            name=self.alert,
            expr=self.expr,
            kind="alert",
            for_=self.for_,
            keep_firing_for=self.keep_firing_for,
            labels=self.labels,
            annotations=self.annotations,
        )


class RecordSpec(_Spec):
    """A recording rule: ``record`` is the metric name its result is stored under."""

    record: str
    expr: str = Field("", validate_default=True)
    labels: dict[str, str] = Field(default_factory=dict)

    _expr = field_validator("expr", mode="before")(_checked_expr)
    _labels = field_validator("labels", mode="before")(
        lambda v: _string_map(v, "labels", names=True)
    )

    @field_validator("record", mode="before")
    @classmethod
    def _metric_name(cls, value: Any) -> str:
        name = _expected_text(value, "'record'")
        if not METRIC_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid metric name")
        return name

    def to_rule(self) -> Rule:
        return Rule(name=self.record, expr=self.expr, kind="record", labels=self.labels)


def _rule_kind(raw: Any) -> str | None:
    """``alert`` or ``record`` (the key present), None when it is not exactly one."""
    if isinstance(raw, AlertSpec | RecordSpec):
        return "alert" if isinstance(raw, AlertSpec) else "record"
    if not isinstance(raw, dict):
        return None
    kinds = [kind for kind in ("alert", "record") if kind in raw]
    return kinds[0] if len(kinds) == 1 else None


RuleSpec = Annotated[
    Annotated[AlertSpec, Tag("alert")] | Annotated[RecordSpec, Tag("record")],
    Discriminator(
        _rule_kind,
        custom_error_type="rule_kind",
        custom_error_message="needs exactly one of 'alert' or 'record'",
    ),
]


class GroupSpec(_Spec):
    """A rule group: rules evaluated together every ``interval``."""

    name: str = Field("", validate_default=True)
    interval: str = DEFAULT_INTERVAL
    limit: int | None = None
    rules: list[RuleSpec] = Field(default_factory=list, validate_default=True)

    _name = field_validator("name", mode="before")(lambda v: _expected_text(v, "'name'"))
    _interval = field_validator("interval", mode="before")(
        lambda v: _duration_text(v, "interval", DEFAULT_INTERVAL, positive=True)
    )

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> int | None:
        if value is not None and (type(value) is not int or value < 0):
            raise ValueError("'limit' must be a non-negative integer")
        return value

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("'rules' must be a non-empty list")
        return value

    def to_group(self) -> RuleGroup:
        return RuleGroup(
            name=self.name,
            rules=[rule.to_rule() for rule in self.rules],
            interval=self.interval,
            limit=self.limit,
        )


class RuleFileSpec(_Spec):
    """A Loki ruler file: ``groups:`` of Prometheus rule groups with LogQL exprs."""

    groups: list[GroupSpec]

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("'groups' is empty")
        return value


def validation_problems(exc: ValidationError, doc: Any) -> list[str]:
    """One line per problem of a :class:`RuleFileSpec` validation, each saying where it is
    (``groups[0].rules[1] (group 'g', alert 'B'): ...``); unknown keys of one mapping are
    reported together."""
    entries: list[tuple[tuple, str | None]] = []  # (group/rule, message); None: unknown keys
    unknown: dict[tuple, list[str]] = {}
    for error in exc.errors():
        obj, rest = _split_loc(_model_loc(tuple(error["loc"])))
        if error["type"] == "extra_forbidden":
            if obj not in unknown:
                entries.append((obj, None))
            unknown.setdefault(obj, []).append(str(rest[0]))
            continue
        if error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        elif error["type"] == "rule_kind" and not isinstance(_walk(doc, obj), dict):
            message = "must be a mapping"
        else:
            message = f"{_path(rest)}: {error['msg']}" if rest else error["msg"]
        entries.append((obj, message))
    return [
        f"{_where(doc, obj)}{message if message is not None else _unknown(doc, obj, unknown[obj])}"
        for obj, message in entries
    ]


def _unknown(doc: Any, obj: tuple, keys: list[str]) -> str:
    if not obj:
        return f"unknown top-level key(s) {sorted(keys)}; only 'groups' is allowed"
    return f"unknown key(s) {sorted(keys)} (allowed: {sorted(_allowed_keys(doc, obj))})"


def _model_loc(loc: tuple) -> tuple:
    """``loc`` without the union tag pydantic inserts after ``rules[j]``."""
    if len(loc) > 4 and loc[2] == "rules" and loc[4] in ("alert", "record"):
        return loc[:4] + loc[5:]
    return loc


def _split_loc(loc: tuple) -> tuple[tuple, tuple]:
    """(the group or rule a problem belongs to, the field path inside it)."""
    size = 4 if len(loc) >= 4 and loc[2] == "rules" else 2 if len(loc) >= 2 else 0
    if len(loc) == 1 and loc[0] != "groups":
        size = 0
    return loc[:size], loc[size:]


def _walk(doc: Any, loc: tuple) -> Any:
    node = doc
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _path(loc: tuple) -> str:
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _where(doc: Any, obj: tuple) -> str:
    """``groups[0].rules[1] (group 'g', alert 'B'): `` for a group or rule location."""
    if not obj:
        return ""
    names = []
    group = _walk(doc, obj[:2])
    if isinstance(group, dict) and isinstance(group.get("name"), str):
        names.append(f"group {group['name']!r}")
    if len(obj) == 4:
        rule = _walk(doc, obj)
        kind = _rule_kind(rule)
        if kind and isinstance(rule[kind], str):
            names.append(f"{kind} {rule[kind]!r}")
    label = f" ({', '.join(names)})" if names else ""
    return f"{_path(obj)}{label}: "


def _allowed_keys(doc: Any, obj: tuple) -> set[str]:
    if len(obj) == 2:
        model: type[BaseModel] = GroupSpec
    else:
        model = AlertSpec if _rule_kind(_walk(doc, obj)) == "alert" else RecordSpec
    return {f.alias or name for name, f in model.model_fields.items()}


def _duplicate_groups(groups: list[Any]) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for index, group in enumerate(groups):
        name = group.get("name") if isinstance(group, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                f"groups[{index}] (group {name!r}): duplicate group name "
                f"(first at groups[{first[name]}])"
            )
        first.setdefault(name, index)
    return problems


def expr_problem(expr: str) -> str | None:
    """Why ``expr`` cannot be a rule expression (None when it is fine)."""
    if is_log_query(expr):
        return "expr is a log query; rules need a metric query (e.g. count_over_time(...))"
    parse = _logql_parser()
    if parse is None:  # the engine's parser is not available: skip the syntax check
        return None
    try:
        parse(expr)
    except ConfigError as exc:
        return f"expr does not parse: {exc.message}"
    return None


def _logql_parser() -> Any:
    try:
        from opsbook.loki.logql import parse
    except ImportError:
        try:
            from opsbook.loki.logql.parser import parse
        except ImportError:
            return None
    return parse


def rules_document(groups: list[RuleGroup]) -> dict[str, Any]:
    """The YAML-ready document of ``groups``."""
    return {"groups": [group.to_dict() for group in groups]}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings so long exprs stay readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_rules(groups: list[RuleGroup]) -> str:
    """YAML text of ``groups`` (validated by re-parsing it)."""
    text = yaml.dump(
        rules_document(groups), Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True
    )
    parse_rules(yaml.safe_load(text), source="<generated rules>")
    return text


@recorded("loki.write_rules")
def write_rules(groups: list[RuleGroup], path: str | Path, header: str = "") -> Path:
    """Validate and write ``groups`` to ``path`` atomically; returns the path."""
    text = dump_rules(groups)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Threshold:
    """``expr`` split as ``lhs op value`` at its top-level comparison."""

    lhs: str
    op: str
    value: float
    bool_modifier: bool = False

    def expr_with(self, value: float) -> str:
        """The rule expression with ``value`` as threshold."""
        modifier = " bool" if self.bool_modifier else ""
        return f"{self.lhs} {self.op}{modifier} {format_number(value)}"

    def holds(self, sample: float, value: float | None = None) -> bool:
        """Whether ``sample op threshold`` holds (the filter the comparison applies)."""
        return compare(sample, self.op, self.value if value is None else value)


def compare(sample: Any, op: str, value: float) -> Any:
    """Apply a comparison operator to a number or a numpy array."""
    if op == ">":
        return sample > value
    if op == ">=":
        return sample >= value
    if op == "<":
        return sample < value
    if op == "<=":
        return sample <= value
    if op == "==":
        return sample == value
    if op == "!=":
        return sample != value
    raise ConfigError(f"unknown comparison operator {op!r}")


def format_number(value: float) -> str:
    """Shortest plain text for a threshold (``10``, ``0.5``, ``2000``)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def split_threshold(expr: str) -> Threshold | None:
    """Split ``expr`` at its last top-level comparison with a number on the right.

    >>> split_threshold('sum(count_over_time({a="b"}[1m])) > 10')
    Threshold(lhs='sum(count_over_time({a="b"}[1m]))', op='>', value=10.0, bool_modifier=False)

    Returns None when there is no such comparison (e.g. ``absent_over_time(...)``).
    """
    position = _last_top_level_comparison(expr)
    if position is None:
        return None
    at, op = position
    lhs = expr[:at].strip()
    rhs = expr[at + len(op) :].strip()
    bool_modifier = False
    if rhs.startswith("bool") and (len(rhs) == 4 or not rhs[4].isalnum()):
        bool_modifier, rhs = True, rhs[4:].strip()
    if not lhs or not _NUMBER.fullmatch(rhs):
        return None
    return Threshold(lhs=lhs, op=op, value=float(rhs), bool_modifier=bool_modifier)


def _last_top_level_comparison(expr: str) -> tuple[int, str] | None:
    depth = 0
    i = 0
    found: tuple[int, str] | None = None
    while i < len(expr):
        ch = expr[i]
        if ch in "\"`'":
            i = _skip_string(expr, i)
            continue
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif depth == 0:
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    found = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    return found


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    return i


def with_thresholds(groups: list[RuleGroup], thresholds: dict[str, float]) -> list[RuleGroup]:
    """Copy of ``groups`` where each alert named in ``thresholds`` gets that threshold."""
    updated = copy.deepcopy(groups)
    unknown = set(thresholds)
    for group in updated:
        for rule in group.rules:
            if rule.name not in thresholds:
                continue
            unknown.discard(rule.name)
            split = split_threshold(rule.expr)
            if split is None:
                raise ConfigError(
                    f"rule {rule.name!r} has no numeric threshold to change",
                    hint="only rules of the form `<query> <op> <number>` can be tuned",
                )
            rule.expr = split.expr_with(thresholds[rule.name])
    if unknown:
        raise ConfigError(f"no rule named {sorted(unknown)} in the rule groups")
    return updated


def range_windows_ns(expr: str) -> list[int]:
    """Every range-vector window (``[5m]``) in ``expr``, in ns."""
    found = []
    for match in re.finditer(r"\[\s*([0-9][0-9a-zµ.]*)\s*\]", expr):
        try:
            found.append(parse_duration(match.group(1)))
        except ConfigError:
            continue
    return found
