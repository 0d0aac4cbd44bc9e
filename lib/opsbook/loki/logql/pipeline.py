"""Log pipeline stages: line filters, parsers, label filters, formatters.

A pipeline is compiled once per query into a list of small functions, each taking an
:class:`Entry` (line, labels, stream labels, timestamp) and returning ``False`` to drop
it. Behaviour follows Loki's ``pkg/logql/log`` stages: parsers never drop lines but set
``__error__`` / ``__error_details__``; numeric, duration and bytes filters drop lines
lacking the label, and set ``LabelFilterErr`` when the value does not convert; extracted
labels that clash with a stream label get the ``_extracted`` suffix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from opsbook.loki.logql import ast
from opsbook.loki.logql.regex import compile_re2
from opsbook.loki.logql.template import Ctx, TemplateRuntimeError, compile_template
from opsbook.loki.logql.units import go_duration_ns, parse_bytes, parse_float

ERROR = "__error__"
ERROR_DETAILS = "__error_details__"
JSON_ERR = "JSONParserErr"
LOGFMT_ERR = "LogfmtParserErr"
LABEL_FILTER_ERR = "LabelFilterErr"
TEMPLATE_ERR = "TemplateFormatErr"
SAMPLE_ERR = "SampleExtractionErr"

_ANSI = re.compile(
    "[\u001b\u009b][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\u0007)"
    "|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))"
)
_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class Entry:
    """One log entry flowing through a pipeline.

    ``base`` holds the stream labels, ``meta`` the entry's structured metadata as it joined
    ``labels`` (see :func:`start_labels`); labels in neither are parsed/formatted ones.
    """

    __slots__ = ("ts", "line", "labels", "base", "meta")

    def __init__(
        self,
        ts: int,
        line: str,
        labels: dict[str, str],
        base: dict[str, str],
        meta: dict[str, str] | None = None,
    ):
        self.ts = ts
        self.line = line
        self.labels = labels
        self.base = base
        self.meta = meta

    def set_error(self, kind: str, details: str | None) -> None:
        self.labels[ERROR] = kind
        if details is not None:
            self.labels[ERROR_DETAILS] = details


StageFn = Callable[[Entry], bool]


def start_labels(base: dict[str, str], meta: dict[str, str] | None) -> dict[str, str]:
    """Labels an entry enters the pipeline with (Loki 3.x): the stream labels plus the
    entry's structured metadata. A metadata name the stream already has is renamed
    ``<name>_extracted``, as parsed labels are; a parser that later extracts a name the
    metadata holds overwrites it (parsers only rename around stream labels)."""
    labels = dict(base)
    if meta:
        for name, value in meta.items():
            labels[name + "_extracted" if name in base else name] = value
    return labels


def entry_meta(base: dict[str, str], meta: dict[str, str] | None) -> dict[str, str] | None:
    """Structured metadata under the names :func:`start_labels` gives it."""
    if not meta:
        return None
    return {(name + "_extracted" if name in base else name): v for name, v in meta.items()}


def categorize(entry: Entry) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Split an entry's final labels the way ``categorize-labels`` answers do:
    (stream labels, structured metadata, parsed labels). A label keeps its category only
    while it holds the value it came with; one a stage rewrote counts as parsed."""
    stream: dict[str, str] = {}
    meta: dict[str, str] = {}
    parsed: dict[str, str] = {}
    origin = entry.meta or {}
    for name, value in entry.labels.items():
        if value == "":
            continue
        if entry.base.get(name) == value:
            stream[name] = value
        elif origin.get(name) == value:
            meta[name] = value
        else:
            parsed[name] = value
    return stream, meta, parsed


def sanitize_key(key: str) -> str:
    """Loki's ``sanitizeLabelKey(key, true)``: invalid chars → ``_``, digit start → ``_``."""
    key = key.strip()
    if not key:
        return key
    if key[0].isdigit() and key[0] in "0123456789":
        key = "_" + key
    return _SANITIZE.sub("_", key)


def _target(entry: Entry, name: str) -> str:
    return name + "_extracted" if name in entry.base else name


# ----------------------------------------------------------------------------- line filters


def compile_line_pattern(pattern: str) -> Callable[[str], bool]:
    """Compile the argument of ``|>`` / ``!>`` into a predicate over a line."""
    parts = _pattern_parts(pattern)
    if not parts:
        raise ValueError("pattern is empty")

    def test(line: str) -> bool:
        if not line:
            return False
        off = 0
        for index, (kind, text) in enumerate(parts):
            if kind != "lit":
                continue
            found = line.find(text, off)
            if found < 0:
                return False
            if index == 0 and found != 0:
                return False
            off = found + len(text)
        if parts[-1][0] == "lit":
            return off == len(line)
        return True

    return test


def _pattern_parts(pattern: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    pos = 0
    for match in re.finditer(r"<(_|[a-zA-Z_][a-zA-Z0-9_]*)>", pattern):
        if match.start() > pos:
            parts.append(("lit", pattern[pos : match.start()]))
        if parts and parts[-1][0] == "cap":
            raise ValueError("found consecutive capture: invalid expression")
        parts.append(("cap", match.group(1)))
        pos = match.end()
    if pos < len(pattern):
        parts.append(("lit", pattern[pos:]))
    return parts


_IP_RUN = re.compile(r"[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*")
_IPV4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d+")


def line_ips(line: str) -> list[Any]:
    """IP addresses written in a line, for ``|= ip("...")``.

    Candidates are the maximal runs of hex digits, ``.`` and ``:`` holding a separator; a
    run is an address when it parses as one, once a trailing ``.`` (end of a sentence) or
    an IPv4 ``:port`` is taken off. Anything else (versions, times, MACs) is not an address.
    """
    found = []
    for match in _IP_RUN.finditer(line):
        text = match.group()
        ip = _as_ip(text) or _as_ip(text.rstrip("."))
        if ip is None:
            port = _IPV4_PORT.fullmatch(text)
            ip = _as_ip(port.group(1)) if port else None
        if ip is not None:
            found.append(ip)
    return found


def _ip_line_predicate(flt: ast.LineFilter) -> Callable[[str], bool]:
    tests = [compile_ip_matcher(v) for v in flt.values]

    def hit(line: str) -> bool:
        return any(test(ip) for ip in line_ips(line) for test in tests)

    return hit if flt.op == "|=" else (lambda line: not hit(line))


def _line_predicate(flt: ast.LineFilter) -> Callable[[str], bool]:
    op = flt.op
    values = flt.values
    if flt.ip:
        return _ip_line_predicate(flt)
    if op in ("|=", "!="):
        if len(values) == 1:
            needle = values[0]
            return (
                (lambda line: needle in line) if op == "|=" else (lambda line: needle not in line)
            )
        if op == "|=":
            return lambda line: any(v in line for v in values)
        return lambda line: all(v not in line for v in values)
    if op in ("|~", "!~"):
        regexes = [compile_re2(v) for v in values]
        if len(regexes) == 1:
            test = regexes[0].test
            return test if op == "|~" else (lambda line: not test(line))
        if op == "|~":
            return lambda line: any(r.test(line) for r in regexes)
        return lambda line: not any(r.test(line) for r in regexes)
    tests = [compile_line_pattern(v) for v in values]
    if op == "|>":
        return lambda line: any(t(line) for t in tests)
    return lambda line: not any(t(line) for t in tests)


def line_filter_predicate(stage: ast.LineFilterStage) -> Callable[[str], bool]:
    """All the filters of a stage combined into one predicate over the line."""
    preds = [_line_predicate(f) for f in stage.filters]
    if len(preds) == 1:
        return preds[0]
    return lambda line: all(p(line) for p in preds)


# ----------------------------------------------------------------------------- json


def _json_value(value: Any) -> str | None:
    """Label text of a JSON scalar (None: not extracted, like arrays and null)."""
    if isinstance(value, str):
        return value.replace("\ufffd", "") if "\ufffd" in value else value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, RawNumber):
        return value.text
    return None


class RawNumber:
    """A JSON number kept as written (Loki uses the raw text as the label value)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _first_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object keeping the first of a repeated key (Loki's json parser: first wins)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key not in out:
            out[key] = value
    return out


def _loads_exact(line: str) -> Any:
    """The document with numbers as written and the first of any repeated key."""
    return json.loads(
        line, parse_float=RawNumber, parse_int=RawNumber, object_pairs_hook=_first_pairs
    )


def _key_count(obj: Any) -> int:
    """Keys of every object in a parsed document (nested ones and those in arrays too)."""
    count = 0
    stack = [obj]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            count += len(node)
            node = node.values()
        for value in node:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append(value)
    return count


def repeats_keys(line: str, obj: dict[str, Any]) -> bool:
    """Whether an object of ``line`` may hold a key twice (orjson keeps the last one,
    Loki the first). Every key is written as a string followed by ``:`` (or `` :``); more
    such marks than keys in ``obj`` means a repeated key, or a string holding ``":`` (then
    the exact parse, :func:`_loads_exact`, decides at a small cost). A repeated key written
    with a tab or a newline (or two blanks) before its colon is not noticed."""
    marks = line.count('":') + line.count('" :')
    return marks > len(obj) and marks > _key_count(obj)


def _flatten(obj: dict[str, Any], prefix: str, out: list[tuple[str, str]]) -> None:
    for key, value in obj.items():
        part = sanitize_key(key)
        if isinstance(value, dict):
            name = prefix if not part else f"{prefix}_{part}" if prefix else part
            _flatten(value, name, out)
            continue
        text = _json_value(value)
        if text is None:
            continue
        name = (f"{prefix}_{part}" if part else prefix) if prefix else part
        if name:
            out.append((name, text))


def parse_json_object(line: str) -> dict[str, Any] | str:
    """Parse a line as a JSON object; returns an error message string on failure."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    if not isinstance(obj, dict):
        return "Value looks like object, but can't find closing '}' symbol"
    return obj


def json_labels(line: str) -> list[tuple[str, str]] | str:
    """All labels ``| json`` extracts from a line (flattened with ``_``), or an error."""
    obj = parse_json_object(line)
    if isinstance(obj, str):
        return obj
    out: list[tuple[str, str]] = []
    try:
        if _has_float(obj) or repeats_keys(line, obj):
            obj = _loads_exact(line)
        _flatten(obj, "", out)
    except RecursionError:
        return TOO_DEEP
    return out


TOO_DEEP = "objects nested too deeply for this engine (about 900 levels or more)"


def _has_float(obj: dict[str, Any]) -> bool:
    for value in obj.values():
        if isinstance(value, float) or (isinstance(value, dict) and _has_float(value)):
            return True
    return False


def _json_stage(stage: ast.JsonStage, hints: Hints | None = None) -> StageFn:
    if stage.exprs:
        return _json_expr_stage(stage.exprs)
    if hints is not None:
        return hinted_json_stage(hints)

    def run(entry: Entry) -> bool:
        result = json_labels(entry.line)
        if isinstance(result, str):
            entry.set_error(JSON_ERR, result)
            return True
        labels = entry.labels
        base = entry.base
        done: set[str] = set()
        for name, value in result:
            if name in done:
                continue  # a label written twice in the line: the first one wins, as in Loki
            done.add(name)
            labels[name + "_extracted" if name in base else name] = value
        return True

    return run


@dataclass(frozen=True)
class Hints:
    """Labels a metric query needs from ``| json`` (Loki's parser hints).

    ``numeric`` names are only compared as numbers or unwrapped, so their text form does
    not matter; every other needed name keeps the exact text of the line.
    """

    names: frozenset[str]
    numeric: frozenset[str]


def hinted_json_stage(hints: Hints) -> StageFn:
    """``| json`` extracting only ``hints.names`` (what a metric query reads)."""
    names = hints.names
    exact = names - hints.numeric
    prefixes = tuple(n + "_" for n in names)

    def run(entry: Entry) -> bool:
        try:
            return extract(entry)
        except RecursionError:
            entry.set_error(JSON_ERR, TOO_DEEP)
            return True

    def extract(entry: Entry) -> bool:
        obj = parse_json_object(entry.line)
        if isinstance(obj, str):
            entry.set_error(JSON_ERR, obj)
            return True
        base = entry.base
        exact_doc: Any = None
        if repeats_keys(entry.line, obj):
            obj = exact_doc = _loads_exact(entry.line)  # the first of a repeated key
        out: dict[str, str] = {}  # name -> text; the first label of a name wins
        for key, value in obj.items():
            name = key if key.isascii() and key.isidentifier() else sanitize_key(key)
            if isinstance(value, dict):
                if any(p.startswith(name + "_") for p in prefixes):
                    found: list[tuple[str, str]] = []
                    _flatten(_loads_exact(entry.line)[key], name, found)
                    for flat, text in found:
                        out.setdefault(flat, text)
                continue
            if name in out or (name + "_extracted" if name in base else name) not in names:
                continue
            if isinstance(value, float):
                if (name + "_extracted" if name in base else name) in exact:
                    if exact_doc is None:
                        exact_doc = _loads_exact(entry.line)
                    text = _json_value(exact_doc[key])
                else:
                    text = repr(value)
            else:
                text = _json_value(value)
            if text is not None:
                out[name] = text
        labels = entry.labels
        for name, text in out.items():
            target = name + "_extracted" if name in base else name
            if target in names:
                labels[target] = text
        return True

    return run


def label_filter_names(flt: ast.LabelFilter, numeric: set[str], other: set[str]) -> None:
    """Collect label names a filter reads, split into numeric-only and textual uses."""
    if isinstance(flt, ast.LFAnd | ast.LFOr):
        label_filter_names(flt.left, numeric, other)
        label_filter_names(flt.right, numeric, other)
    elif isinstance(flt, ast.LFString):
        other.add(flt.matcher.name)
    elif isinstance(flt, ast.LFIp):
        other.add(flt.name)
    else:
        numeric.add(flt.name)


_JSON_PATH_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_json_path(path: str) -> list[str | int]:
    """Parse ``a.b[0]["c d"]`` into keys and indexes."""
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _JSON_PATH_TOKEN.match(path, pos)
        if not match or (pos == 0 and path.startswith(".")):
            raise ValueError(f"cannot parse expression [{path}]")
        if match.group(1) is not None:
            out.append(match.group(1))
        elif match.group(2) is not None:
            out.append(int(match.group(2)))
        else:
            out.append(match.group(3).replace('\\"', '"'))
        pos = match.end()
    if not out:
        raise ValueError(f"cannot parse expression [{path}]")
    return out


def _json_expr_stage(exprs: tuple[tuple[str, str], ...]) -> StageFn:
    paths = [(name, parse_json_path(path)) for name, path in exprs]

    def run(entry: Entry) -> bool:
        line = entry.line
        if not line:
            return True
        if line[0] not in '"{[':
            entry.labels[ERROR] = JSON_ERR
            return True
        try:
            doc = _loads_exact(line)
            values = [(name, _walk(doc, path)) for name, path in paths]
        except ValueError as exc:
            entry.set_error(JSON_ERR, str(exc))
            return True
        except RecursionError:
            entry.set_error(JSON_ERR, TOO_DEEP)
            return True
        labels = entry.labels
        for name, value in values:
            if value is not None:
                labels[_target(entry, name)] = value
            elif name not in labels:  # a missing path: an empty label, unless one exists
                labels[name] = ""
        return True

    return run


def _walk(doc: Any, path: list[str | int]) -> str | None:
    """Text of ``path`` in the document; None when the path does not exist."""
    node = doc
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return None
        elif not isinstance(node, dict) or step not in node:
            return None
        node = node[step]  # type: ignore[index]
    if node is None:
        return ""
    if isinstance(node, dict | list):
        return json.dumps(_unraw(node), separators=(",", ":"), ensure_ascii=False)
    text = _json_value(node)
    return "" if text is None else text


def _unraw(node: Any) -> Any:
    if isinstance(node, RawNumber):
        return json.loads(node.text)
    if isinstance(node, dict):
        return {k: _unraw(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unraw(v) for v in node]
    return node


# ----------------------------------------------------------------------------- logfmt

_LOGFMT_KEY = re.compile(r'[^\s="]+')
_LOGFMT_BARE = re.compile(r'[^\s"=]*')
_LOGFMT_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unquote_logfmt(raw: str) -> str:
    try:
        return str(json.loads('"' + raw + '"'))
    except ValueError:
        return raw.replace('\\"', '"').replace("\\\\", "\\")


def logfmt_pairs(line: str, strict: bool) -> tuple[list[tuple[str, str | None]], str | None]:
    """Scan ``key=value`` pairs; value None is a standalone key. Returns (pairs, error)."""
    pairs: list[tuple[str, str | None]] = []
    pos = 0
    n = len(line)
    while pos < n:
        while pos < n and line[pos] <= " ":
            pos += 1
        if pos >= n:
            break
        match = _LOGFMT_KEY.match(line, pos)
        if not match:
            err = f"logfmt syntax error at pos {pos + 1} : unexpected {line[pos]!r}"
            if strict:
                return pairs, err
            pos = _skip_token(line, pos)
            continue
        key = match.group()
        pos = match.end()
        if pos >= n or line[pos] != "=":
            if pos < n and line[pos] == '"':
                err = f"logfmt syntax error at pos {pos + 1} : unexpected '\"'"
                if strict:
                    return pairs, err
                pos = _skip_token(line, pos)
                continue
            pairs.append((key, None))
            continue
        pos += 1
        if pos < n and line[pos] == '"':
            quoted = _LOGFMT_QUOTED.match(line, pos)
            if not quoted:
                err = f"logfmt syntax error at pos {n + 1} : unterminated quoted value"
                if strict:
                    return pairs, err
                break
            pairs.append((key, _unquote_logfmt(quoted.group(1))))
            pos = quoted.end()
            continue
        bare = _LOGFMT_BARE.match(line, pos)
        assert bare is not None
        end = bare.end()
        if end < n and line[end] > " ":
            err = f"logfmt syntax error at pos {end + 1} : unexpected {line[end]!r}"
            if strict:
                return pairs, err
            pairs.append((key, bare.group()))
            pos = _skip_token(line, end)
            continue
        pairs.append((key, bare.group()))
        pos = end
    return pairs, None


def _skip_token(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] > " ":
        pos += 1
    return pos


def _logfmt_stage(stage: ast.LogfmtStage) -> StageFn:
    if stage.exprs:
        wanted = {path: name for name, path in stage.exprs}

        def run_exprs(entry: Entry) -> bool:
            for name, _path in stage.exprs:
                if name not in entry.base:
                    entry.labels[name] = ""
            pairs, err = logfmt_pairs(entry.line, stage.strict)
            done: set[str] = set()
            for key, value in pairs:
                name = wanted.get(sanitize_key(key))
                if name is None or name in done:
                    continue  # a key repeated in the line: the first one wins, as in Loki
                done.add(name)
                entry.labels[_target(entry, name)] = value or ""
            if err:
                entry.set_error(LOGFMT_ERR, err)
            return True

        return run_exprs

    def run(entry: Entry) -> bool:
        pairs, err = logfmt_pairs(entry.line, stage.strict)
        labels = entry.labels
        base = entry.base
        done: set[str] = set()
        for key, value in pairs:
            if value is None and not stage.keep_empty:
                continue
            name = sanitize_key(key)
            if not name or name in done:
                continue  # a key repeated in the line: the first one wins, as in Loki
            done.add(name)
            labels[name + "_extracted" if name in base else name] = value or ""
        if err:
            entry.set_error(LOGFMT_ERR, err)
        return True

    return run


# ----------------------------------------------------------------------------- regexp, pattern


def _regexp_stage(stage: ast.RegexpStage) -> StageFn:
    regex = compile_re2(stage.pattern)
    names = [(name, index) for name, index in regex.groupindex.items()]

    def run(entry: Entry) -> bool:
        match = regex.search(entry.line)
        if match is None:
            return True
        for name, index in names:
            value = match.group(index)
            entry.labels[_target(entry, name)] = value if value is not None else ""
        return True

    return run


def compile_pattern(pattern: str) -> list[tuple[str, str]]:
    """Validate a ``| pattern`` expression (needs a named capture, none consecutive)."""
    parts = _pattern_parts(pattern)
    names = [text for kind, text in parts if kind == "cap" and text != "_"]
    if not names:
        raise ValueError("at least one capture is required")
    if len(set(names)) != len(names):
        raise ValueError("duplicate capture name")
    return parts


def pattern_matches(parts: list[tuple[str, str]], line: str) -> list[tuple[str, str]]:
    """Captures (name, text) the way Loki's pattern matcher assigns them."""
    if not line or not parts:
        return []
    out: list[tuple[str, str]] = []
    rest = line
    index = 0
    if parts[0][0] == "lit":
        if not rest.startswith(parts[0][1]):
            return []
        rest = rest[len(parts[0][1]) :]
        index = 1
    while index < len(parts):
        name = parts[index][1]
        if index + 1 >= len(parts):
            if name != "_":
                out.append((name, rest))
            return out
        literal = parts[index + 1][1]
        found = rest.find(literal)
        if found < 0:
            if name != "_":
                out.append((name, rest))
            return out
        if name != "_":
            out.append((name, rest[:found]))
        rest = rest[found + len(literal) :]
        index += 2
    return out


def _pattern_stage(stage: ast.PatternStage) -> StageFn:
    parts = compile_pattern(stage.pattern)

    def run(entry: Entry) -> bool:
        for name, value in pattern_matches(parts, entry.line):
            entry.labels[_target(entry, name)] = value
        return True

    return run


def _unpack_stage(_stage: ast.UnpackStage) -> StageFn:
    def run(entry: Entry) -> bool:
        if not entry.line:
            return True
        obj = parse_json_object(entry.line)
        if isinstance(obj, str):
            entry.set_error(JSON_ERR, obj)
            return True
        new_line = None
        for key, value in obj.items():
            if not isinstance(value, str):
                continue
            if key == "_entry":
                new_line = value
                continue
            name = sanitize_key(key)
            if name:
                entry.labels[_target(entry, name)] = value
        if new_line is not None:
            entry.line = new_line
        return True

    return run


# ----------------------------------------------------------------------------- label filters

COMPARISONS: dict[str, Callable[[float, float], bool]] = {  # label filter operators
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def compile_ip_matcher(pattern: str) -> Callable[[Any], bool]:
    """``ip("10.0.0.1")``, ``ip("10.0.0.0/8")`` or ``ip("10.0.0.1-10.0.0.9")``.

    The returned test takes a label value (text) or an address from :func:`line_ips`;
    text that is not an IP address never matches.
    """
    text = pattern.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return lambda v: _in_net(v, net)
        if "-" in text:
            lo_text, hi_text = text.split("-", 1)
            lo, hi = ipaddress.ip_address(lo_text.strip()), ipaddress.ip_address(hi_text.strip())
            if lo.version != hi.version or lo > hi:
                raise ValueError
            return lambda v: _in_range(v, lo, hi)
        single = ipaddress.ip_address(text)
        return lambda v: _as_ip(v) == single
    except ValueError:
        raise ValueError(f"invalid ip pattern {pattern!r}") from None


def _as_ip(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _in_net(value: str, net: Any) -> bool:
    ip = _as_ip(value)
    return ip is not None and ip.version == net.version and ip in net


def _in_range(value: str, lo: Any, hi: Any) -> bool:
    ip = _as_ip(value)
    return ip is not None and ip.version == lo.version and lo <= ip <= hi


def compile_label_filter(flt: ast.LabelFilter) -> StageFn:
    """A label filter expression as a stage function."""
    if isinstance(flt, ast.LFAnd):
        left, right = compile_label_filter(flt.left), compile_label_filter(flt.right)

        def both(entry: Entry) -> bool:
            lok = left(entry)
            rok = right(entry)
            return lok and rok

        return both
    if isinstance(flt, ast.LFOr):
        left, right = compile_label_filter(flt.left), compile_label_filter(flt.right)
        return lambda entry: left(entry) or right(entry)
    if isinstance(flt, ast.LFString):
        matcher = flt.matcher
        name = matcher.name
        return lambda entry: matcher.matches(entry.labels.get(name, ""))
    if isinstance(flt, ast.LFIp):
        return _ip_label_filter(flt)
    return _converted_filter(flt)


def _ip_label_filter(flt: ast.LFIp) -> StageFn:
    """``label = ip("...")`` / ``label != ip("...")`` as Loki applies it: an entry that
    already carries ``__error__`` passes (only string matchers filter errors out), an
    entry without the label is dropped whatever the operator, and a value that is not an
    IP address does not match (so ``!=`` keeps it)."""
    test = compile_ip_matcher(flt.pattern)
    name = flt.name
    equal = flt.op == "="

    def run(entry: Entry) -> bool:
        labels = entry.labels
        if ERROR in labels:
            return True
        value = labels.get(name)
        if value is None:
            return False
        return test(value) == equal

    return run


def _converted_filter(flt: ast.LFNumber | ast.LFDuration | ast.LFBytes) -> StageFn:
    cmp = COMPARISONS[flt.op]
    name = flt.name
    target: float = float(flt.value)
    convert: Callable[[str], float | int | None]
    if isinstance(flt, ast.LFNumber):
        convert = parse_float
    elif isinstance(flt, ast.LFDuration):
        convert = go_duration_ns
    else:
        convert = parse_bytes

    def run(entry: Entry) -> bool:
        labels = entry.labels
        if ERROR in labels:
            return True
        raw = labels.get(name)
        if raw is None:
            return False
        value = convert(raw)
        if value is None:
            entry.set_error(LABEL_FILTER_ERR, label_filter_error(flt, raw))
            return True
        return cmp(value, target)

    return run


def label_filter_error(flt: ast.LFNumber | ast.LFDuration | ast.LFBytes, raw: str) -> str:
    """``__error_details__`` of a number, duration or bytes filter whose label does not convert."""
    if isinstance(flt, ast.LFNumber):
        return f'strconv.ParseFloat: parsing "{raw}": invalid syntax'
    if isinstance(flt, ast.LFDuration):
        return f'time: invalid duration "{raw}"'
    return f"unhandled size name: {raw}"


# ----------------------------------------------------------------------------- formatting


def _line_format_stage(stage: ast.LineFormatStage) -> StageFn:
    template = compile_template(stage.template)

    def run(entry: Entry) -> bool:
        try:
            entry.line = template.render(Ctx(entry.labels, entry.line, entry.ts))
        except (TemplateRuntimeError, TypeError, ValueError) as exc:
            entry.set_error(TEMPLATE_ERR, str(exc))
        return True

    return run


def _label_format_stage(stage: ast.LabelFormatStage) -> StageFn:
    compiled = [
        (dst, compile_template(value) if is_tpl else value, is_tpl)
        for dst, value, is_tpl in stage.formats
    ]

    def run(entry: Entry) -> bool:
        labels = entry.labels
        snapshot = dict(labels)
        for dst, value, is_tpl in compiled:
            if not is_tpl:
                src = str(value)
                if src in labels:
                    labels[dst] = labels[src]
                    if src != dst:
                        del labels[src]
                continue
            try:
                labels[dst] = value.render(Ctx(snapshot, entry.line, entry.ts))  # type: ignore[union-attr]
            except (TemplateRuntimeError, TypeError, ValueError) as exc:
                entry.set_error(TEMPLATE_ERR, str(exc))
        return True

    return run


def _drop_stage(stage: ast.DropStage) -> StageFn:
    def run(entry: Entry) -> bool:
        labels = entry.labels
        for name, matcher in stage.names:
            if name not in labels:
                continue
            if matcher is None or matcher.matches(labels[name]):
                del labels[name]
        return True

    return run


def _keep_stage(stage: ast.KeepStage) -> StageFn:
    plain = {name for name, matcher in stage.names if matcher is None}
    matchers = [m for _n, m in stage.names if m is not None]

    def run(entry: Entry) -> bool:
        labels = entry.labels
        for name in list(labels):
            if name in (ERROR, ERROR_DETAILS) or name in plain:
                continue
            if any(m.name == name and m.matches(labels[name]) for m in matchers):
                continue
            del labels[name]
        return True

    return run


def _line_filter_stage(stage: ast.LineFilterStage) -> StageFn:
    pred = line_filter_predicate(stage)
    return lambda entry: pred(entry.line)


def _decolorize_stage(_stage: ast.DecolorizeStage) -> StageFn:
    def run(entry: Entry) -> bool:
        entry.line = _ANSI.sub("", entry.line)
        return True

    return run


_BUILDERS: dict[type, Callable[[Any], StageFn]] = {
    ast.LineFilterStage: _line_filter_stage,
    ast.JsonStage: _json_stage,
    ast.LogfmtStage: _logfmt_stage,
    ast.RegexpStage: _regexp_stage,
    ast.PatternStage: _pattern_stage,
    ast.UnpackStage: _unpack_stage,
    ast.DecolorizeStage: _decolorize_stage,
    ast.LineFormatStage: _line_format_stage,
    ast.LabelFormatStage: _label_format_stage,
    ast.DropStage: _drop_stage,
    ast.KeepStage: _keep_stage,
    ast.LabelFilterStage: lambda s: compile_label_filter(s.filter),
}


@dataclass
class CompiledPipeline:
    """Stages compiled to functions, plus facts the evaluator uses to take shortcuts."""

    stages: tuple[ast.Stage, ...]
    fns: list[StageFn]
    line_only: bool  # only line filters: labels never change

    def line_predicates(self) -> list[Callable[[str], bool]]:
        return [line_filter_predicate(s) for s in self.stages if isinstance(s, ast.LineFilterStage)]


PARSER_STAGES = (ast.JsonStage, ast.LogfmtStage, ast.RegexpStage, ast.PatternStage)


def parser_stage(stage: ast.Stage, hints: Hints | None = None) -> StageFn:
    """The general path's function for one parser stage (``json``, ``logfmt``, ``regexp``,
    ``pattern``): the reference the columnar path checks itself against and defers to
    for lines it does not read itself. ``hints`` narrows a plain ``| json`` as in
    :func:`compile_pipeline`.
    """
    if isinstance(stage, ast.JsonStage):
        return _json_stage(stage, hints)
    return _BUILDERS[type(stage)](stage)


def compile_pipeline(stages: tuple[ast.Stage, ...], hints: Hints | None = None) -> CompiledPipeline:
    """Compile AST stages into a :class:`CompiledPipeline` (``hints``: see :class:`Hints`)."""
    fns = [
        _json_stage(stage, hints)
        if isinstance(stage, ast.JsonStage)
        else _BUILDERS[type(stage)](stage)
        for stage in stages
    ]
    line_only = all(isinstance(s, ast.LineFilterStage) for s in stages)
    return CompiledPipeline(stages, fns, line_only)


def run_entry(fns: list[StageFn], entry: Entry) -> bool:
    """Run an entry through the stages; False when a stage dropped it."""
    return all(fn(entry) for fn in fns)
