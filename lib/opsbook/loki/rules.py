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

:func:`load_rules` checks everything the ruler would reject (unknown keys, bad
durations, bad label names, exprs that do not parse or are log queries) and reports every
problem at once with its group and rule. :func:`write_rules` validates before writing and
replaces the file atomically, so a bad edit never leaves half a file behind.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsbook.actions import recorded
from opsbook.errors import ConfigError
from opsbook.loki.http import is_log_query
from opsbook.loki.timeutil import parse_duration

DEFAULT_INTERVAL = "1m"  # Loki ruler's evaluation_interval default
GROUP_KEYS = {"name", "interval", "limit", "rules"}
ALERT_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
RECORD_KEYS = {"record", "expr", "labels"}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
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
    """Validate a decoded rule document and build :class:`RuleGroup` objects."""
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise RuleFileError(source, ["the top level must be a mapping with a 'groups' list"])
    extra = set(doc) - {"groups"}
    if extra:
        problems.append(f"unknown top-level key(s) {sorted(extra)}; only 'groups' is allowed")
    groups: list[RuleGroup] = []
    seen: set[str] = set()
    for index, raw in enumerate(doc["groups"]):
        group = _parse_group(raw, index, problems, check_exprs)
        if group is None:
            continue
        if group.name in seen:
            problems.append(f"group {group.name!r}: duplicate group name")
        seen.add(group.name)
        groups.append(group)
    if not doc["groups"]:
        problems.append("'groups' is empty")
    if problems:
        raise RuleFileError(source, problems)
    return groups


def _parse_group(raw: Any, index: int, problems: list[str], check_exprs: bool) -> RuleGroup | None:
    where = f"group #{index + 1}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: 'name' must be a non-empty string")
        name = f"#{index + 1}"
    where = f"group {name!r}"
    extra = set(raw) - GROUP_KEYS
    if extra:
        problems.append(f"{where}: unknown key(s) {sorted(extra)} (allowed: {sorted(GROUP_KEYS)})")
    interval = str(raw.get("interval") or DEFAULT_INTERVAL)
    _check_duration(interval, f"{where}: interval", problems, positive=True)
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        problems.append(f"{where}: 'limit' must be a non-negative integer")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        problems.append(f"{where}: 'rules' must be a non-empty list")
        rules_raw = []
    rules = [
        rule
        for i, item in enumerate(rules_raw)
        if (rule := _parse_rule(item, f"{where} rule #{i + 1}", problems, check_exprs))
    ]
    return RuleGroup(name=str(name), rules=rules, interval=interval, limit=limit)


def _parse_rule(raw: Any, where: str, problems: list[str], check_exprs: bool) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    has_alert, has_record = "alert" in raw, "record" in raw
    if has_alert == has_record:
        problems.append(f"{where}: needs exactly one of 'alert' or 'record'")
        return None
    kind = "alert" if has_alert else "record"
    name = raw[kind]
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: '{kind}' must be a non-empty string")
        return None
    where = f"{where.rsplit(' rule #', 1)[0]} {kind} {name!r}"
    allowed = ALERT_KEYS if kind == "alert" else RECORD_KEYS
    extra = set(raw) - allowed
    if extra:
        problems.append(f"{where}: unknown key(s) {sorted(extra)} (allowed: {sorted(allowed)})")
    if kind == "record" and not _METRIC_NAME.fullmatch(name):
        problems.append(f"{where}: {name!r} is not a valid metric name")
    expr = raw.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        problems.append(f"{where}: 'expr' must be a non-empty LogQL string")
        expr = ""
    elif check_exprs:
        problem = expr_problem(expr)
        if problem:
            problems.append(f"{where}: {problem}")
    for_ = str(raw.get("for") or "0s")
    keep = str(raw.get("keep_firing_for") or "0s")
    _check_duration(for_, f"{where}: for", problems)
    _check_duration(keep, f"{where}: keep_firing_for", problems)
    labels = _string_map(raw.get("labels"), f"{where}: labels", problems, names=True)
    annotations = _string_map(raw.get("annotations"), f"{where}: annotations", problems)
    return Rule(
        name=name,
        expr=expr.strip(),
        kind=kind,
        for_=for_,
        keep_firing_for=keep,
        labels=labels,
        annotations=annotations,
    )


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


def _check_duration(text: str, where: str, problems: list[str], positive: bool = False) -> None:
    try:
        value = parse_duration(text)
    except ConfigError:
        problems.append(f"{where} {text!r} is not a duration (use 30s, 1m, 1h30m)")
        return
    if positive and value <= 0:
        problems.append(f"{where} must be positive")


def _string_map(raw: Any, where: str, problems: list[str], names: bool = False) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping of strings")
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if names and not (isinstance(key, str) and _LABEL_NAME.fullmatch(key)):
            problems.append(f"{where}: {key!r} is not a valid label name")
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problems.append(f"{where}: value of {key!r} must be a string")
            continue
        out[str(key)] = str(value)
    return out


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
